/**
 * Client of the device gateway: keep-alive connections, Basic auth per flat,
 * a body size limit, and errors sorted into the outcomes the poller counts.
 * Over https:// it trusts the gateway's CA (never an unverified
 * connection); over http:// it speaks plain HTTP to a sidecar that
 * originates the TLS (on Kubernetes with Istio, which can fault only the
 * HTTP it reads).
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { Agent, errors, request, type Dispatcher } from 'undici';
import type { CredentialsMap } from '@flatline/platform';

/** Why a poll failed, as counted in metrics. */
export type FailureKind = 'timeout' | 'http_error' | 'auth_failed' | 'not_found' | 'malformed' | 'network_error';

/** A failed poll. */
export class PollError extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
  ) {
    super(message);
    this.name = 'PollError';
  }
}

/** Largest answer body accepted unless the options say otherwise. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

/** Options of the device client. */
export interface DeviceClientOptions {
  /** https://host[:port], or http://host[:port] to a TLS-originating sidecar. */
  readonly baseUrl: string;
  /** The CA that signed the gateway's certificate: required with https://, not read with http://. */
  readonly caFile: string | undefined;
  readonly credentials: CredentialsMap;
  readonly connections: number;
  /** Largest answer body accepted, in bytes (default 4 MiB); a larger one is a malformed poll, read no further. */
  readonly maxBodyBytes?: number;
  /** Extra dispatcher wrapping (the local fault injector hooks in here). */
  readonly compose?: (dispatcher: Dispatcher) => Dispatcher;
  /** host:port a flat is polled at instead of baseUrl's (the local plane's per-flat TCP faults); undefined: baseUrl. */
  readonly linkOf?: (flatId: string) => string | undefined;
  /**
   * Longest a connection (TCP and TLS handshake), the answer's headers or a
   * pause in its body may take, in ms: the poll timeout. Default: undici's own
   * (10 s to connect, 300 s for headers and body), which would cut a longer
   * configured poll timeout short at the handshake, or outlast a shorter one.
   */
  readonly timeoutMs?: number;
}

/** Fetches one flat's answer body. */
export class DeviceClient {
  private readonly dispatcher: Dispatcher;
  private readonly agent: Agent;
  private readonly authorization = new Map<string, string>();
  /** Largest answer body accepted, in bytes. */
  readonly maxBodyBytes: number;
  private readonly scheme: string;

  constructor(private readonly options: DeviceClientOptions) {
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    if (!Number.isSafeInteger(this.maxBodyBytes) || this.maxBodyBytes < 1) throw new Error(`maxBodyBytes must be a whole number of bytes of at least 1, got ${this.maxBodyBytes}`);
    const scheme = new URL(options.baseUrl).protocol;
    this.scheme = scheme;
    if (scheme !== 'https:' && scheme !== 'http:') throw new Error(`device gateway URL must be http:// or https://, got ${options.baseUrl}`);
    if (scheme === 'https:' && options.caFile === undefined) throw new Error('an https:// device gateway needs the CA file that signed its certificate');
    const timeoutMs = options.timeoutMs;
    if (timeoutMs !== undefined && (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1)) throw new Error(`timeoutMs must be a whole number of ms of at least 1, got ${timeoutMs}`);
    this.agent = new Agent({
      connect: {
        // One TLS context for every connection. Given only `ca`, tls.connect builds a context (parsing the CA) for each
        // connection, before it even connects: when devices are unreachable every poll is a new connection attempt, and
        // at 10,000 flats those contexts took most of a core per replica (~700 µs of CPU per refused connect, ~200 µs
        // with one context; measured on this machine).
        ...(scheme === 'https:' ? { secureContext: createSecureContext({ ca: readFileSync(options.caFile!) }), rejectUnauthorized: true } : {}),
        ...(timeoutMs !== undefined ? { timeout: timeoutMs } : {}),
      },
      ...(timeoutMs !== undefined ? { headersTimeout: timeoutMs, bodyTimeout: timeoutMs } : {}),
      connections: options.connections,
      pipelining: 1,
      keepAliveTimeout: 30000,
      keepAliveMaxTimeout: 60000,
    });
    this.dispatcher = options.compose ? options.compose(this.agent) : this.agent;
    for (const [flat, c] of options.credentials) {
      this.authorization.set(flat, `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`);
    }
  }

  /** The body of GET /flat/<flatId>/measurements/, or a PollError; signal aborts it. */
  async fetch(flatId: string, signal: AbortSignal): Promise<string> {
    const authorization = this.authorization.get(flatId);
    if (authorization === undefined) throw new PollError('auth_failed', `no credentials for flat ${flatId}`);
    const link = this.options.linkOf?.(flatId);
    const base = link === undefined ? this.options.baseUrl : `${this.scheme}//${link}`;
    const url = `${base}/flat/${encodeURIComponent(flatId)}/measurements/`;
    try {
      const res = await request(url, { method: 'GET', headers: { authorization, accept: 'application/json' }, signal, dispatcher: this.dispatcher });
      if (res.statusCode !== 200) {
        await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
        if (res.statusCode === 401 || res.statusCode === 403) throw new PollError('auth_failed', `HTTP ${res.statusCode}: credentials refused`);
        if (res.statusCode === 404) throw new PollError('not_found', 'HTTP 404: unknown flat');
        throw new PollError('http_error', `HTTP ${res.statusCode}`);
      }
      const length = Number(res.headers['content-length'] ?? 0);
      if (length > this.maxBodyBytes) {
        res.body.destroy();
        throw new PollError('malformed', `answer of ${length} bytes exceeds ${this.maxBodyBytes}`);
      }
      return await this.readCapped(res.body);
    } catch (err) {
      throw this.classify(err, signal);
    }
  }

  /**
   * Reads body up to the cap. Content-Length is not enough: a chunked answer
   * declares no length, so the bytes are counted as they arrive and the body
   * is destroyed (closing the connection) as soon as they pass the cap.
   */
  private async readCapped(body: Dispatcher.ResponseData['body']): Promise<string> {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > this.maxBodyBytes) {
        body.destroy();
        throw new PollError('malformed', `answer of more than ${this.maxBodyBytes} bytes (no Content-Length; reading stopped at ${total})`);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, total).toString('utf8');
  }

  private classify(err: unknown, signal: AbortSignal): PollError {
    if (err instanceof PollError) return err;
    if (signal.aborted) return new PollError('timeout', 'timed out');
    if (err instanceof errors.ResponseContentLengthMismatchError || err instanceof errors.RequestContentLengthMismatchError) {
      return new PollError('malformed', 'truncated answer (content-length mismatch)');
    }
    const e = err as { code?: string; message?: string };
    if (e.code === 'UND_ERR_SOCKET' || e.code === 'ECONNRESET') return new PollError('malformed', `answer cut off: ${e.message ?? e.code}`);
    return new PollError('network_error', `${e.code ?? 'error'}: ${e.message ?? String(err)}`);
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    await this.agent.close();
  }
}
