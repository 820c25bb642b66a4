/**
 * The local plane for HTTP: an undici interceptor that applies the injector's
 * decision before the request leaves, as an Istio client sidecar would — the
 * delay first, then an abort answered without reaching the server (status as
 * declared, body "fault filter abort", like Envoy's).
 */
import type { Dispatcher } from 'undici';
import type { Injector } from './injector.ts';

const ABORT_BODY = Buffer.from('fault filter abort');

type Handler = Dispatcher.DispatchHandler & {
  onConnect?: (abort: (err?: Error) => void) => void;
  onHeaders?: (status: number, raw: Buffer[], resume: () => void, text: string) => boolean;
  onData?: (chunk: Buffer) => boolean;
  onComplete?: (trailers: Buffer[] | null) => void;
};

/** Answers a request with the abort status, through whichever handler API the caller's handler speaks. */
function answer(handler: Handler, status: number): void {
  const headers = { 'content-type': 'text/plain', 'content-length': String(ABORT_BODY.length), 'x-flatline-fault': 'abort' };
  if (typeof handler.onHeaders === 'function') {
    let aborted = false;
    handler.onConnect?.(() => {
      aborted = true;
    });
    if (aborted) return;
    const raw = Object.entries(headers).flatMap(([k, v]) => [Buffer.from(k), Buffer.from(v)]);
    handler.onHeaders(status, raw, () => {}, 'fault filter abort');
    handler.onData?.(ABORT_BODY);
    handler.onComplete?.([]);
    return;
  }
  const controller = { abort: () => {}, pause: () => {}, resume: () => {}, paused: false, aborted: false, reason: null, rawHeaders: [], rawTrailers: [] } as unknown as Dispatcher.DispatchController;
  handler.onRequestStart?.(controller, {});
  handler.onResponseStart?.(controller, status, headers, 'fault filter abort');
  handler.onResponseData?.(controller, ABORT_BODY);
  handler.onResponseEnd?.(controller, {});
}

/** The interceptor: `agent.compose(httpFaultInterceptor(injector))`. */
export function httpFaultInterceptor(injector: Injector): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) => {
    const headers: Record<string, string | undefined> = {};
    const h = opts.headers;
    if (h !== undefined && h !== null && !Array.isArray(h) && typeof h === 'object') {
      for (const [k, v] of Object.entries(h as Record<string, unknown>)) headers[k.toLowerCase()] = typeof v === 'string' ? v : undefined;
    }
    const decision = injector.decide({ path: (opts.path ?? '/').split('?')[0] ?? '/', headers });
    if (decision === undefined) return dispatch(opts, handler);
    const go = (): void => {
      if (decision.abort?.httpStatus !== undefined) answer(handler as Handler, decision.abort.httpStatus);
      else dispatch(opts, handler);
    };
    if (decision.delayMs > 0) setTimeout(go, decision.delayMs).unref();
    else go();
    return true;
  };
}
