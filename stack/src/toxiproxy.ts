/**
 * Toxiproxy (tools/install-toxiproxy.sh) for TCP-level faults on a link:
 * starting toxiproxy-server on loopback, and a typed client of its HTTP API
 * (https://github.com/Shopify/toxiproxy#http-api) over Node's fetch. The npm
 * client toxiproxy-node-client is not used: on an error status it throws
 * "Request failed with status code 400" and drops Toxiproxy's own message.
 *
 * Toxic attributes keep Toxiproxy's names (latency, rate, average_size, ...)
 * so that its documentation reads one to one; their units are in the comments.
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import { freePort } from './haproxy.ts';
import { TOOLS_BIN } from './paths.ts';
import { spawnReady, type ManagedProcess } from './processes.ts';

/** Which direction a toxic acts on: upstream is client → server, downstream server → client. */
export type ToxicStream = 'upstream' | 'downstream';

/** The attributes of each toxic type Toxiproxy 2.5 has, under Toxiproxy's own names. */
export interface ToxicAttributes {
  /** Delays every chunk of data by latency ± jitter (both in ms). */
  readonly latency: { readonly latency: number; readonly jitter?: number };
  /** Limits the throughput to rate KB/s. */
  readonly bandwidth: { readonly rate: number };
  /** Delays the close of the socket by delay ms. */
  readonly slow_close: { readonly delay: number };
  /** Lets no data through, and closes the connection after timeout ms (0: never, until the toxic is removed). */
  readonly timeout: { readonly timeout: number };
  /** Resets the connection (TCP RST) timeout ms after the first data (0: at once). */
  readonly reset_peer: { readonly timeout: number };
  /** Cuts data into pieces of average_size ± size_variation bytes, delay µs (microseconds) apart. */
  readonly slicer: { readonly average_size: number; readonly size_variation?: number; readonly delay?: number };
  /** Closes the connection once bytes bytes went through. */
  readonly limit_data: { readonly bytes: number };
}

/** A toxic type Toxiproxy knows. */
export type ToxicType = keyof ToxicAttributes;

/** A toxic to add: its type and attributes; name (default `<type>_<stream>`), stream (default downstream), toxicity (a fraction 0..1 of connections, default 1). */
export type ToxicSpec = {
  [T in ToxicType]: {
    readonly type: T;
    readonly name?: string;
    readonly stream?: ToxicStream;
    readonly toxicity?: number;
    readonly attributes: ToxicAttributes[T];
  };
}[ToxicType];

/** A toxic as Toxiproxy reports it (every attribute present, with Toxiproxy's defaults filled in). */
export type Toxic = {
  [T in ToxicType]: {
    readonly type: T;
    readonly name: string;
    readonly stream: ToxicStream;
    /** Fraction (0..1) of connections it acts on. */
    readonly toxicity: number;
    readonly attributes: ToxicAttributes[T];
  };
}[ToxicType];

/** A change to an existing toxic: the attributes to change (the others keep their values) and/or its toxicity (0..1). */
export interface ToxicUpdate {
  readonly attributes?: Readonly<Record<string, number>>;
  readonly toxicity?: number;
}

/** A proxy to create: it listens on listen (default 127.0.0.1:0, a free port) and forwards to upstream (host:port). */
export interface ProxySpec {
  readonly name: string;
  readonly upstream: string;
  readonly listen?: string;
  /** Default true. */
  readonly enabled?: boolean;
}

/** A proxy as Toxiproxy reports it; listen is the address it really listens on (the port it picked for :0). */
export interface ToxiproxyProxy {
  readonly name: string;
  readonly listen: string;
  readonly upstream: string;
  readonly enabled: boolean;
  readonly toxics: readonly Toxic[];
}

/**
 * A call to Toxiproxy that failed: the HTTP status and Toxiproxy's own
 * message when it answered with an error (status undefined when it did not
 * answer at all, or answered something that is not its API).
 */
export class ToxiproxyError extends Error {
  override name = 'ToxiproxyError';

  constructor(
    message: string,
    /** HTTP status of Toxiproxy's answer, when there was one. */
    readonly status: number | undefined,
    /** Toxiproxy's error text (its JSON "error" field), when it gave one. */
    readonly toxiproxyMessage: string | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const TOXIC_SCHEMA = z.object({
  name: z.string(),
  type: z.string(),
  stream: z.enum(['upstream', 'downstream']),
  toxicity: z.number(),
  attributes: z.record(z.string(), z.number()),
});
const PROXY_SCHEMA = z.object({
  name: z.string(),
  listen: z.string(),
  upstream: z.string(),
  enabled: z.boolean(),
  toxics: z.array(TOXIC_SCHEMA),
});

type ParsedProxy = z.infer<typeof PROXY_SCHEMA>;

function toProxy(p: ParsedProxy): ToxiproxyProxy {
  return { name: p.name, listen: p.listen, upstream: p.upstream, enabled: p.enabled, toxics: p.toxics as Toxic[] };
}

/** Throws a RangeError unless toxicity is a fraction in 0..1 (a percentage such as 50 would mean "always" to Toxiproxy). */
function checkToxicity(toxicity: number | undefined): void {
  if (toxicity !== undefined && !(toxicity >= 0 && toxicity <= 1)) {
    throw new RangeError(`toxicity must be a fraction from 0 to 1, got ${toxicity}`);
  }
}

/** The text of an error answer: Toxiproxy's JSON {"error": "...", "status": N}, or the body as it came. */
function errorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // not JSON: the body itself is the best message there is
  }
  return body.trim() || '(empty body)';
}

/** A client of one Toxiproxy server's HTTP API; every call has a deadline and fails with a ToxiproxyError. */
export class ToxiproxyClient {
  /** baseUrl: http://host:port of the API; requestTimeoutMs: the deadline of each call. */
  constructor(
    readonly baseUrl: string,
    private readonly requestTimeoutMs = 10000,
  ) {}

  /** Sends one request; the answer's body (text), or a ToxiproxyError with the status and Toxiproxy's message. */
  private async send(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<string> {
    const what = `Toxiproxy ${method} ${path}`;
    try {
      const response = await fetch(`${this.baseUrl}${path}`, {
        method,
        ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.requestTimeoutMs),
      });
      const text = await response.text();
      if (!response.ok) {
        const message = errorText(text);
        throw new ToxiproxyError(`${what}: ${response.status} ${message}`, response.status, message);
      }
      return text;
    } catch (err) {
      if (err instanceof ToxiproxyError) throw err;
      const reason = err instanceof Error ? (err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message) : String(err);
      throw new ToxiproxyError(`${what}: no answer from ${this.baseUrl} (deadline ${this.requestTimeoutMs} ms): ${reason}`, undefined, undefined, { cause: err });
    }
  }

  /** Sends one request and checks its JSON answer against schema. */
  private async json<S extends z.ZodType>(method: 'GET' | 'POST', path: string, schema: S, body?: unknown): Promise<z.infer<S>> {
    const text = await this.send(method, path, body);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new ToxiproxyError(`Toxiproxy ${method} ${path}: expected JSON, got ${JSON.stringify(text.slice(0, 200))}`, undefined, undefined);
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ToxiproxyError(
        `Toxiproxy ${method} ${path}: unexpected answer (${issue?.path.join('.') || '(top)'}: ${issue?.message ?? 'invalid'}): ${text.slice(0, 200)}`,
        undefined,
        undefined,
      );
    }
    return parsed.data;
  }

  private static proxyPath(proxy: string): string {
    return `/proxies/${encodeURIComponent(proxy)}`;
  }

  /** The server's version (GET /version), e.g. "2.5.0". */
  async version(): Promise<string> {
    const text = (await this.send('GET', '/version')).trim();
    // 2.5 answers plain text; later versions answer {"version": "..."}.
    try {
      const parsed = JSON.parse(text) as { version?: unknown };
      if (typeof parsed.version === 'string') return parsed.version;
    } catch {
      // plain text
    }
    return text;
  }

  /** Creates a proxy (POST /proxies); the answer carries the address it really listens on. A name in use fails (409). */
  async createProxy(spec: ProxySpec): Promise<ToxiproxyProxy> {
    const body = { name: spec.name, listen: spec.listen ?? '127.0.0.1:0', upstream: spec.upstream, enabled: spec.enabled ?? true };
    return toProxy(await this.json('POST', '/proxies', PROXY_SCHEMA, body));
  }

  /**
   * Creates or replaces several proxies at once (POST /populate). One whose
   * listen and upstream are unchanged is kept as it is; one with listen :0
   * never counts as unchanged (Toxiproxy compares with the port it picked),
   * so it is replaced, on a new port. Answers the proxies as they are after
   * the call, read back: Toxiproxy's own answer reports a kept proxy as it
   * was asked for, not as it runs.
   */
  async populate(specs: readonly ProxySpec[]): Promise<ToxiproxyProxy[]> {
    const body = specs.map((s) => ({ name: s.name, listen: s.listen ?? '127.0.0.1:0', upstream: s.upstream, enabled: s.enabled ?? true }));
    await this.send('POST', '/populate', body);
    const all = await this.listProxies();
    return specs.map((s) => {
      const proxy = all[s.name];
      if (proxy === undefined) throw new ToxiproxyError(`Toxiproxy POST /populate: proxy ${s.name} is missing afterwards`, undefined, undefined);
      return proxy;
    });
  }

  /** One proxy with its toxics (GET /proxies/{name}); 404 when there is none. */
  async getProxy(name: string): Promise<ToxiproxyProxy> {
    return toProxy(await this.json('GET', ToxiproxyClient.proxyPath(name), PROXY_SCHEMA));
  }

  /** Every proxy by name (GET /proxies). */
  async listProxies(): Promise<Record<string, ToxiproxyProxy>> {
    const all = await this.json('GET', '/proxies', z.record(z.string(), PROXY_SCHEMA));
    return Object.fromEntries(Object.entries(all).map(([name, p]) => [name, toProxy(p)]));
  }

  /** Enables (listens, accepts) or disables (closes the listener and every connection) a proxy. */
  async setProxyEnabled(name: string, enabled: boolean): Promise<ToxiproxyProxy> {
    return toProxy(await this.json('POST', ToxiproxyClient.proxyPath(name), PROXY_SCHEMA, { enabled }));
  }

  /** Deletes a proxy and closes its connections. */
  async deleteProxy(name: string): Promise<void> {
    await this.send('DELETE', ToxiproxyClient.proxyPath(name));
  }

  /** Adds a toxic to a proxy; it acts on the proxy's open connections too. A name in use fails (409), an unknown type 400. */
  async addToxic(proxy: string, toxic: ToxicSpec): Promise<Toxic> {
    checkToxicity(toxic.toxicity);
    return (await this.json('POST', `${ToxiproxyClient.proxyPath(proxy)}/toxics`, TOXIC_SCHEMA, toxic)) as Toxic;
  }

  /** Changes a toxic's attributes and/or toxicity; what update leaves out keeps its value. */
  async updateToxic(proxy: string, name: string, update: ToxicUpdate): Promise<Toxic> {
    checkToxicity(update.toxicity);
    const path = `${ToxiproxyClient.proxyPath(proxy)}/toxics/${encodeURIComponent(name)}`;
    return (await this.json('POST', path, TOXIC_SCHEMA, update)) as Toxic;
  }

  /** Removes a toxic from a proxy; 404 when it has none of that name. */
  async removeToxic(proxy: string, name: string): Promise<void> {
    await this.send('DELETE', `${ToxiproxyClient.proxyPath(proxy)}/toxics/${encodeURIComponent(name)}`);
  }

  /** The toxics of a proxy, in the order they act. */
  async listToxics(proxy: string): Promise<Toxic[]> {
    return (await this.json('GET', `${ToxiproxyClient.proxyPath(proxy)}/toxics`, z.array(TOXIC_SCHEMA))) as Toxic[];
  }

  /**
   * Bytes each proxy has received from its clients so far (Toxiproxy's
   * toxiproxy_proxy_received_bytes_total, served with -proxy-metrics, which
   * startToxiproxy passes), by proxy name.
   */
  async receivedBytes(): Promise<Record<string, number>> {
    const text = await this.send('GET', '/metrics');
    const out: Record<string, number> = {};
    for (const line of text.split('\n')) {
      if (!line.startsWith('toxiproxy_proxy_received_bytes_total{')) continue;
      const proxy = /proxy="([^"]*)"/.exec(line)?.[1];
      if (proxy === undefined) continue;
      out[proxy] = (out[proxy] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return out;
  }

  /** Removes every toxic of every proxy and enables every proxy (POST /reset); the proxies themselves stay. */
  async reset(): Promise<void> {
    await this.send('POST', '/reset');
  }
}

/** A running toxiproxy-server. */
export interface RunningToxiproxy {
  readonly process: ManagedProcess;
  /** host:port of its HTTP API. */
  readonly address: string;
  /** A client of its API. */
  readonly client: ToxiproxyClient;
  /** What GET /version answered. */
  readonly version: string;
}

/** How to start toxiproxy-server. */
export interface ToxiproxyOptions {
  /** Where its output goes (appended). */
  readonly logFile: string;
  /** Address of its API (default 127.0.0.1); the proxies choose their own. */
  readonly host?: string;
  /** Port of its API; 0 or none: a free one. */
  readonly port?: number;
  readonly detached?: boolean;
  /** How long it may take to answer GET /version (default 15 s). */
  readonly readyTimeoutMs?: number;
}

/** toxiproxy-server could not bind the port it was given: another process took it after freePort() saw it free. */
class PortTaken extends Error {}

/**
 * Starts toxiproxy-server and resolves once its API answers GET /version.
 * It cannot report a port it picked itself (it logs the ":0" it was given),
 * so port 0 means a port freePort() found free; should another process take
 * it first, it starts again on another (three tries).
 */
export async function startToxiproxy(options: ToxiproxyOptions): Promise<RunningToxiproxy> {
  const host = options.host ?? '127.0.0.1';
  const tries = options.port ? 1 : 3;
  for (let attempt = 1; ; attempt++) {
    const port = options.port || (await freePort(host));
    try {
      return await startOn(host, port, options);
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt >= tries) throw err;
    }
  }
}

/** Why host:port cannot be bound now (e.g. "address already in use"), or undefined when it can. */
async function portTaken(host: string, port: number): Promise<string | undefined> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE' ? 'address already in use' : err.message));
    server.listen(port, host, () => server.close(() => resolve(undefined)));
  });
}

async function startOn(host: string, port: number, options: ToxiproxyOptions): Promise<RunningToxiproxy> {
  const readyTimeoutMs = options.readyTimeoutMs ?? 15000;
  const started = Date.now();
  const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const failure = (what: string, last: string, cause?: unknown): Error => {
    const message = `toxiproxy (API on ${address}): ${what}; last output:\n${last}`;
    return /address already in use/.test(last) ? new PortTaken(message, { cause }) : new Error(message, { cause });
  };
  // A taken port must fail here: toxiproxy-server logs its start before it binds, and until it exits on the
  // bind error the API probe below would be answered by whatever holds the port (another Toxiproxy: a false start).
  const taken = await portTaken(host, port);
  if (taken !== undefined) throw new PortTaken(`toxiproxy (API on ${address}): the port is taken (${taken})`);
  let process: ManagedProcess;
  try {
    ({ process } = await spawnReady({
      name: 'toxiproxy',
      detached: options.detached ?? false,
      command: join(TOOLS_BIN, 'toxiproxy-server'),
      // -proxy-metrics: bytes per proxy at /metrics, the proof that data went through a link while a toxic was on.
      args: ['-host', host, '-port', String(port), '-proxy-metrics'],
      logFile: options.logFile,
      // Logged just before it binds: the API answering is the real sign, polled below.
      ready: (line) => (line.includes('Starting HTTP server on endpoint') ? 'starting' : undefined),
      readyTimeoutMs,
    }));
  } catch (err) {
    // spawnReady's message already carries the last output.
    const what = (err as Error).message.replace(/^toxiproxy: /, '');
    const hint = /ENOENT/.test(what) ? ' (install it: bash tools/install.sh toxiproxy)' : '';
    const message = `toxiproxy (API on ${address}): ${what}${hint}`;
    throw /address already in use/.test(what) ? new PortTaken(message, { cause: err }) : new Error(message, { cause: err });
  }
  // A short deadline per poll; the loop's own bound is readyTimeoutMs.
  const probe = new ToxiproxyClient(`http://${address}`, 1000);
  for (;;) {
    if (!process.running) throw failure(`exited (${await process.exited}) before its API answered`, process.lastLines());
    try {
      const version = await probe.version();
      return { process, address, client: new ToxiproxyClient(`http://${address}`), version };
    } catch (err) {
      if (Date.now() - started >= readyTimeoutMs) {
        await process.stop(1000);
        throw failure(`its API did not answer within ${readyTimeoutMs} ms (${(err as Error).message})`, process.lastLines(), err);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
