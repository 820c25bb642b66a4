/**
 * The gRPC server every flatline service runs on: bind with error checks,
 * standard health checking (NOT_SERVING until the service says otherwise),
 * reflection from buf's descriptor set, handlers that map errors in one place
 * and record metrics, server streams bounded in number and in what they
 * queue for a slow reader, and graceful shutdown with a forced deadline.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import type { EnumTypeDefinition, PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { Counter, Gauge } from 'prom-client';
import type { Observable } from 'rxjs';
import type { Logger } from './logger.ts';
import type { ServiceMetrics } from './metrics.ts';
import { ResourceExhaustedError, toStatus } from './status.ts';

/** What a handler knows about the call it serves. */
export interface CallContext {
  /** The caller's deadline, if it set one. */
  readonly deadline: Date | undefined;
  /** Aborted when the caller cancels or the deadline passes. */
  readonly signal: AbortSignal;
}

/** A unary handler: a promise of the response, or a thrown DomainError. */
export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;
/** A server-streaming handler: an observable of responses, ended by the caller's cancel. */
export type StreamHandler<Req, Res> = (request: Req, ctx: CallContext) => Observable<Res>;

type SurfaceCall = grpc.ServerUnaryCall<unknown, unknown>;

function deadlineOf(call: SurfaceCall): Date | undefined {
  const d = call.getDeadline();
  if (d instanceof Date) return d;
  return Number.isFinite(d) ? new Date(d) : undefined;
}

function contextOf(call: SurfaceCall): { ctx: CallContext; done: () => void } {
  const controller = new AbortController();
  const cancel = (): void => controller.abort(new Error('call cancelled'));
  call.once('cancelled', cancel);
  return { ctx: { deadline: deadlineOf(call), signal: controller.signal }, done: () => call.off('cancelled', cancel) };
}

/** The FileDescriptorProtos of a descriptor set, as the exact bytes buf wrote. */
function descriptorFiles(exportName: string): Buffer[] {
  const set = readFileSync(fileURLToPath(import.meta.resolve(`@flatline/proto/${exportName}`)));
  const files: Buffer[] = [];
  const reader = new BinaryReader(set);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) files.push(Buffer.from(reader.bytes()));
    else reader.skip(wireType);
  }
  return files;
}

/**
 * The reflection index: flatline's files and grpc.health.v1 exactly as buf
 * compiled them (`npm run gen`). @grpc/reflection's own path rebuilds
 * descriptors from proto-loader's definitions and serves files that grpcurl
 * cannot link (grpc-node #2595), so it is handed the original bytes instead;
 * it reads nothing but fileDescriptorProtos of each entry.
 */
function reflectionIndex(): PackageDefinition {
  const entry = (files: Buffer[]): EnumTypeDefinition => ({ format: 'Protocol Buffer 3 EnumDescriptorProto', type: {}, fileDescriptorProtos: files });
  return {
    'flatline.descriptors': entry(descriptorFiles('flatline.binpb')),
    'grpc.health.descriptors': entry(descriptorFiles('grpc-health.binpb')),
  };
}

/** Options of a GrpcHost. */
export interface GrpcHostOptions {
  readonly logger: Logger;
  readonly metrics: ServiceMetrics;
  /** Fully-qualified names of the services reflection lists (health is always listed). */
  readonly reflect: readonly string[];
  /** Server streams open at once in this process; one more is refused with RESOURCE_EXHAUSTED (default 64). */
  readonly maxStreams?: number;
  /** The setting that changes maxStreams (such as FLATLINE_QUERY_MAX_STREAMS), named in the refusal. */
  readonly maxStreamsSetting?: string;
}

/** Server streams open at once in a process when GrpcHostOptions.maxStreams is not given. */
export const DEFAULT_MAX_STREAMS = 64;

/** A gRPC server with health, reflection, metrics and lifecycle. */
export class GrpcHost {
  readonly server: grpc.Server;
  private readonly health = new HealthImplementation({ '': 'NOT_SERVING' });
  private readonly serviceNames: string[] = [''];
  private readonly logger: Logger;
  private readonly metrics: ServiceMetrics;
  private serving = false;
  private readonly maxStreams: number;
  private readonly maxStreamsSetting: string | undefined;
  private openStreams = 0;
  private refusingStreams = false;
  private readonly streamsOpen: Gauge;
  private readonly messagesReplaced: Counter<'method'>;

  constructor(options: GrpcHostOptions) {
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.maxStreams = options.maxStreams ?? DEFAULT_MAX_STREAMS;
    this.maxStreamsSetting = options.maxStreamsSetting;
    const registers = [options.metrics.registry];
    this.streamsOpen = new Gauge({ name: 'flatline_grpc_streams_open', help: 'Server streams open in this process', registers });
    this.messagesReplaced = new Counter({
      name: 'flatline_grpc_stream_messages_replaced_total',
      help: 'Stream messages dropped for a newer one because the caller had not taken the one before (a slow or stopped reader), by method',
      labelNames: ['method'],
      registers,
    });
    this.server = new grpc.Server({ 'grpc.keepalive_permit_without_calls': 1 });
    this.health.addToServer(this.server);
    const services = [...options.reflect, 'grpc.health.v1.Health'];
    new ReflectionService(reflectionIndex(), { services }).addToServer(this.server);
  }

  /** Adds a service; its health starts NOT_SERVING like the server's. */
  addService(definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation, healthName: string): void {
    this.server.addService(definition, implementation);
    this.serviceNames.push(healthName);
    this.health.setStatus(healthName, this.serving ? 'SERVING' : 'NOT_SERVING');
  }

  /** Binds address (host:port; port 0 picks one) and returns the bound port. */
  listen(address: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
        if (err) reject(new Error(`cannot listen for gRPC on ${address}: ${err.message}`));
        else resolve(port);
      });
    });
  }

  /** Sets every health name SERVING or NOT_SERVING; logs a change. */
  setServing(serving: boolean, reason?: string): void {
    if (serving !== this.serving) this.logger.info({ serving, reason }, serving ? 'serving' : 'not serving');
    this.serving = serving;
    for (const name of this.serviceNames) this.health.setStatus(name, serving ? 'SERVING' : 'NOT_SERVING');
  }

  /** Whether the health status is SERVING. */
  isServing(): boolean {
    return this.serving;
  }

  /** Wraps a promise-based handler as a grpc-js unary handler. */
  unary<Req, Res>(method: string, handler: UnaryHandler<Req, Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const stop = this.metrics.rpcSeconds.startTimer({ method });
      const { ctx, done } = contextOf(call);
      handler(call.request, ctx).then(
        (response) => {
          done();
          stop();
          this.metrics.rpcs.inc({ method, code: 'OK' });
          callback(null, response);
        },
        (err: unknown) => {
          done();
          stop();
          const s = toStatus(err, this.logger, method);
          this.metrics.rpcs.inc({ method, code: grpc.status[s.code] });
          callback(s);
        },
      );
    };
  }

  /**
   * Wraps an observable-based handler as a grpc-js server-streaming handler.
   *
   * A caller that reads slowly, or not at all, must not make the server
   * queue: grpc-js buffers every write in memory (write() only turns false
   * after 16 queued messages, and nothing stops a handler that ignores it),
   * and HTTP/2 flow control keeps them there while the caller does not read.
   * So one message at a time is handed to grpc-js; its write callback fires
   * once the transport took it (within the caller's flow-control window).
   * Until then only the newest message waits, older ones are dropped and
   * counted (flatline_grpc_stream_messages_replaced_total): a stream of
   * reports is worth its latest value. At most maxStreams streams run at
   * once; one more is refused with RESOURCE_EXHAUSTED.
   */
  serverStream<Req, Res>(method: string, handler: StreamHandler<Req, Res>): grpc.handleServerStreamingCall<Req, Res> {
    return (call) => {
      if (this.openStreams >= this.maxStreams) {
        const s = toStatus(
          new ResourceExhaustedError(
            `too many streams: this process serves at most ${this.maxStreams} streams at once${this.maxStreamsSetting === undefined ? '' : ` (${this.maxStreamsSetting})`}; close another stream or retry later`,
          ),
          this.logger,
          method,
        );
        if (!this.refusingStreams) this.logger.warn({ method, maxStreams: this.maxStreams }, 'stream limit reached: refusing new streams');
        this.refusingStreams = true;
        this.metrics.rpcs.inc({ method, code: grpc.status[s.code] });
        call.emit('error', s);
        return;
      }
      this.openStreams += 1;
      this.streamsOpen.set(this.openStreams);
      const { ctx, done } = contextOf(call);
      let ended = false;
      const finish = (code: string): void => {
        if (ended) return;
        ended = true;
        done();
        this.openStreams -= 1;
        this.streamsOpen.set(this.openStreams);
        if (this.refusingStreams) this.logger.info({ method, open: this.openStreams }, 'below the stream limit again');
        this.refusingStreams = false;
        this.metrics.rpcs.inc({ method, code });
      };
      // One message in grpc-js at a time; while it is there, only the newest waits.
      let sending = false;
      let waiting: { readonly response: Res } | undefined;
      const send = (response: Res): void => {
        sending = true;
        call.write(response, () => {
          sending = false;
          const next = waiting;
          waiting = undefined;
          if (next !== undefined && !ended) send(next.response);
        });
      };
      const subscription = handler(call.request, ctx).subscribe({
        next: (response) => {
          if (!sending) return send(response);
          if (waiting !== undefined) this.messagesReplaced.inc({ method });
          waiting = { response };
        },
        error: (err: unknown) => {
          const s = toStatus(err, this.logger, method);
          finish(grpc.status[s.code]);
          call.emit('error', s);
        },
        complete: () => {
          // grpc-js keeps the order of writes and the end: the newest message still goes out first.
          if (waiting !== undefined) call.write(waiting.response);
          waiting = undefined;
          finish('OK');
          call.end();
        },
      });
      call.once('cancelled', () => {
        subscription.unsubscribe();
        waiting = undefined;
        finish('CANCELLED');
      });
    };
  }

  /**
   * Graceful shutdown: health goes NOT_SERVING, calls in flight may finish
   * within graceMs, then the server is forced down.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.setServing(false, 'shutting down');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.logger.warn({ graceMs }, 'calls still open after the grace period: forcing shutdown');
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
