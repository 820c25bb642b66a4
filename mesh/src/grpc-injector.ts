/**
 * The local plane for gRPC: a grpc-js client interceptor that applies the
 * injector's decision as an Istio client sidecar would — the call held back
 * by the delay before it leaves, an abort ending it with the declared status
 * (message "fault filter abort") without reaching the server.
 */
import { InterceptingCall, Metadata, status, type Interceptor } from '@grpc/grpc-js';
import type { Injector } from './injector.ts';

/** The interceptor, for a client's `interceptors` option. */
export function grpcFaultInterceptor(injector: Injector): Interceptor {
  return (options, nextCall) => {
    const decision = injector.decide({ path: options.method_definition.path, headers: {} });
    if (decision === undefined) return new InterceptingCall(nextCall(options));
    const code = decision.abort?.grpcStatus !== undefined ? (status[decision.abort.grpcStatus as keyof typeof status] as number) : undefined;
    if (code !== undefined && decision.delayMs === 0) {
      return new InterceptingCall(nextCall(options), {
        start: (_metadata, listener) => listener.onReceiveStatus({ code, details: 'fault filter abort', metadata: new Metadata() }),
        sendMessage: () => {},
        halfClose: () => {},
      });
    }
    // grpc-js arms the caller's deadline only once the call starts, so a call
    // held back here honours it itself, as the caller would with a sidecar.
    const deadline = options.deadline instanceof Date ? options.deadline.getTime() : typeof options.deadline === 'number' ? options.deadline : Infinity;
    const remaining = deadline - Date.now();
    const expires = remaining <= decision.delayMs;
    const ends = code !== undefined || expires;
    return new InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        setTimeout(
          () => {
            if (expires) listener.onReceiveStatus({ code: status.DEADLINE_EXCEEDED, details: 'Deadline exceeded (while delayed by a fault)', metadata: new Metadata() });
            else if (code !== undefined) listener.onReceiveStatus({ code, details: 'fault filter abort', metadata: new Metadata() });
            else next(metadata, listener);
          },
          Math.max(0, expires ? remaining : decision.delayMs),
        ).unref();
      },
      ...(ends ? { sendMessage: () => {}, halfClose: () => {} } : {}),
    });
  };
}
