/**
 * The supervisor's read-only probes over loopback HTTP, JSON in and out:
 * GET /freshness, /fetched, /gaps, /drained and /status. Chaos Toolkit's `http`
 * provider asks them with a status-code tolerance (200 when the steady state
 * holds, 409 when the answer came and says it does not, 503 when the answer
 * could not be had), with no process started per probe; the `flatline`
 * commands ask the same endpoints.
 *
 * Only reads live here: what changes the stack (a node drained, crashed,
 * frozen, restored) stays on the control socket (control.ts), which only the
 * user who runs the stack can reach, while any local user reaches a loopback
 * port. Every request is bounded in time, and in number (MAX_IN_FLIGHT);
 * requests naming another host than the loopback (a web page through DNS
 * rebinding) are refused.
 */
import { setMaxListeners } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { status as grpcStatus } from '@grpc/grpc-js';
import { FreshnessReport } from '@flatline/proto';
import { freshEnough, type FreshnessRequest, type ObservedLastMinute } from './freshness-probe.ts';
import type { GapReport } from './probes.ts';
import { allServing, type StatusRow } from './status.ts';

/** What the supervisor answers with; each may throw (the endpoint answers 503, or 400 for a request query refused). */
export interface SupervisorProbes {
  /** The freshness report as asked; flatIds empty: every flat the stack polls. */
  freshness(request: FreshnessRequest, signal: AbortSignal): Promise<FreshnessReport>;
  /**
   * The same report from ingestion's side: when each flat was last fetched and
   * kept in an outbox, whether or not storage has it yet (a database outage
   * stops query's freshness, not this one).
   */
  fetched(request: FreshnessRequest, signal: AbortSignal): Promise<FreshnessReport>;
  /** Gaps in what is stored, only readings taken at or after since if given. */
  gaps(since: Date | undefined, signal: AbortSignal): Promise<GapReport>;
  /** Fetch results waiting in the outboxes of the ingestion replicas that run, and the replicas that did not say. */
  outbox(signal: AbortSignal): Promise<{ waiting: number; unanswered: string[] }>;
  /** Every component's row, and whether the stack has started. */
  status(signal: AbortSignal): Promise<{ rows: StatusRow[]; started: boolean }>;
  /**
   * What the supervisor's own client of query saw of the mesh's faults in the
   * last minute (on the Istio plane, where the fault filter acts inside the
   * client): the proof `flatline fault touched query-slow` reads there.
   */
  observed?(): { query: ObservedLastMinute };
}

/** How long each endpoint may take (/drained: its timeout and this much more). */
export const PROBE_DEADLINES_MS: ProbeDeadlines = { freshness: 10000, gaps: 60000, status: 10000, drained: 5000 };

/** Per endpoint, how long it may take in milliseconds. */
export interface ProbeDeadlines {
  readonly freshness: number;
  readonly gaps: number;
  readonly status: number;
  /** Beyond the request's own timeout. */
  readonly drained: number;
}
/** The longest /drained?timeout= accepted. */
export const MAX_DRAIN_TIMEOUT_MS = 600000;
/** Requests answered at once; more get 429. */
export const MAX_IN_FLIGHT = 16;
/** How often /drained looks at the outboxes while it waits. */
const DRAIN_POLL_MS = 1000;
/** A flat ID as a request may name it, and how many one request may name. */
const FLAT_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_FLATS = 10000;

/** A request the endpoint refuses: its status and why. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The query parameters of one request: only the known ones, each at most once unless repeatable. */
class Params {
  constructor(
    private readonly search: URLSearchParams,
    known: readonly string[],
    repeatable: readonly string[] = [],
  ) {
    for (const key of new Set(search.keys())) {
      if (!known.includes(key)) throw new Refusal(400, `unknown parameter ${JSON.stringify(key)}; this endpoint takes ${known.length === 0 ? 'none' : known.join(', ')}`);
      if (!repeatable.includes(key) && search.getAll(key).length > 1) throw new Refusal(400, `parameter ${key} given ${search.getAll(key).length} times; give it once`);
    }
  }

  private one(key: string): string | undefined {
    return this.search.get(key) ?? undefined;
  }

  /** Comma-separated flat IDs, repeatable; empty entries dropped. */
  flats(key: string): string[] {
    const ids = this.search.getAll(key).flatMap((v) => v.split(',').map((s) => s.trim()).filter(Boolean));
    const bad = ids.find((id) => !FLAT_ID.test(id));
    if (bad !== undefined) throw new Refusal(400, `${key}: a flat ID is 1 to 64 letters, digits, '_', '.' or '-', got ${JSON.stringify(bad)}`);
    if (ids.length > MAX_FLATS) throw new Refusal(400, `${key}: at most ${MAX_FLATS} flats, got ${ids.length}`);
    return ids;
  }

  /** A number of seconds ≥ 0, or undefined when absent. */
  seconds(key: string): number | undefined {
    const v = this.one(key);
    if (v === undefined) return undefined;
    const n = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
    if (!Number.isFinite(n)) throw new Refusal(400, `${key}: expected a number of seconds such as 20 or 2.5, got ${JSON.stringify(v)}`);
    return n;
  }

  /** A whole number in [min, max], or fallback when absent. */
  whole(key: string, min: number, max: number, fallback: number): number {
    const v = this.one(key);
    if (v === undefined) return fallback;
    const n = /^\d+$/.test(v) ? Number(v) : NaN;
    if (!(n >= min && n <= max)) throw new Refusal(400, `${key}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
    return n;
  }

  /** An ISO time, or undefined when absent or empty. */
  time(key: string): Date | undefined {
    const v = this.one(key);
    if (v === undefined || v === '') return undefined;
    const t = new Date(v);
    if (Number.isNaN(t.getTime())) throw new Refusal(400, `${key}: expected an ISO time such as 2026-01-31T12:00:00Z (or empty: all), got ${JSON.stringify(v)}`);
    return t;
  }

  /** A duration (500ms, 90s, 2m; a bare number is seconds) in milliseconds, at most maxMs, or fallback when absent. */
  durationMs(key: string, maxMs: number, fallback: number): number {
    const v = this.one(key);
    if (v === undefined) return fallback;
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v);
    if (m === null) throw new Refusal(400, `${key}: expected a duration such as 500ms, 90s or 2m, got ${JSON.stringify(v)}`);
    const ms = Math.round(Number(m[1]) * (m[2] === 'm' ? 60000 : m[2] === 'ms' ? 1 : 1000));
    if (ms > maxMs) throw new Refusal(400, `${key}: at most ${maxMs / 1000} s, got ${JSON.stringify(v)}`);
    return ms;
  }
}

/** An endpoint's answer: its status and JSON body. */
interface Answer {
  readonly status: number;
  readonly body: unknown;
}

/** A probe that failed: 400 when query refused the request as invalid, else 503 (the answer could not be had). */
function unavailable(what: string, err: unknown): Refusal {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  return code === grpcStatus.INVALID_ARGUMENT ? new Refusal(400, `${what}: ${message}`) : new Refusal(503, `${what}: ${message}`);
}

/** probe(), a throw turned into a rejection: a probe that throws at once is a probe that failed. */
const ask = <T>(probe: () => Promise<T>): Promise<T> => Promise.resolve().then(probe);

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });

/** /freshness and /fetched: the same parameters and answer, from query or from the outboxes. */
function freshnessAnswer(report: (request: FreshnessRequest, signal: AbortSignal) => Promise<FreshnessReport>, source: string) {
  return async (search: URLSearchParams, signal: AbortSignal): Promise<Answer> => {
    const p = new Params(search, ['flats', 'exclude', 'limit', 'max_age'], ['flats', 'exclude']);
    const request = { flatIds: p.flats('flats'), excludeFlatIds: p.flats('exclude'), limit: p.whole('limit', 0, 1000, 10) };
    const maxAge = p.seconds('max_age');
    const answer = await ask(() => report(request, signal)).catch((err: unknown) => {
      throw unavailable(source, err);
    });
    return { status: freshEnough(answer, maxAge) ? 200 : 409, body: FreshnessReport.toJSON(answer) };
  };
}

/** The endpoints: each parses its parameters, asks the probe, and turns the answer into a status code. */
function endpoints(probes: SupervisorProbes, deadlines: ProbeDeadlines): Record<string, { deadlineMs: (p: URLSearchParams) => number; answer: (search: URLSearchParams, signal: AbortSignal) => Promise<Answer> }> {
  // One gap count at a time: each reads every stored reading (since) into memory.
  let gapsBusy: Promise<unknown> = Promise.resolve();
  return {
    '/freshness': { deadlineMs: () => deadlines.freshness, answer: freshnessAnswer((request, signal) => probes.freshness(request, signal), 'the query service') },
    '/fetched': { deadlineMs: () => deadlines.freshness, answer: freshnessAnswer((request, signal) => probes.fetched(request, signal), 'the outboxes') },
    '/gaps': {
      deadlineMs: () => deadlines.gaps,
      answer: async (search, signal) => {
        const since = new Params(search, ['since']).time('since');
        const turn = gapsBusy.then(() => (signal.aborted ? Promise.reject(new Refusal(504, 'gave up waiting for the gap count before it')) : ask(() => probes.gaps(since, signal))));
        gapsBusy = turn.catch(() => {});
        const report = await turn.catch((err: unknown) => {
          throw err instanceof Refusal ? err : unavailable('the database', err);
        });
        const missing = report.gaps.reduce((n, g) => n + g.missing, 0);
        return { status: missing === 0 ? 200 : 409, body: { ...report, missing } };
      },
    },
    '/drained': {
      deadlineMs: (search) => {
        try {
          return new Params(search, ['timeout']).durationMs('timeout', MAX_DRAIN_TIMEOUT_MS, 60000) + deadlines.drained;
        } catch {
          return deadlines.drained; // answer() refuses it with the reason
        }
      },
      answer: async (search, signal) => {
        const timeoutMs = new Params(search, ['timeout']).durationMs('timeout', MAX_DRAIN_TIMEOUT_MS, 60000);
        const started = Date.now();
        for (;;) {
          const { waiting, unanswered } = await ask(() => probes.outbox(signal)).catch((err: unknown) => {
            throw unavailable('the outboxes', err);
          });
          const waitedSeconds = Math.round((Date.now() - started) / 100) / 10;
          const empty = waiting === 0 && unanswered.length === 0;
          if (empty || Date.now() - started >= timeoutMs || signal.aborted) return { status: empty ? 200 : 409, body: { empty, waiting, unanswered, waitedSeconds } };
          await sleep(Math.min(DRAIN_POLL_MS, Math.max(0, timeoutMs - (Date.now() - started))), signal);
        }
      },
    },
    '/observed': {
      deadlineMs: () => deadlines.status,
      answer: async (search) => {
        new Params(search, []); // refuses any parameter
        if (probes.observed === undefined) throw new Refusal(404, 'this supervisor observes no client calls');
        return { status: 200, body: probes.observed() };
      },
    },
    '/status': {
      deadlineMs: () => deadlines.status,
      answer: async (search, signal) => {
        new Params(search, []); // refuses any parameter
        const { rows, started } = await ask(() => probes.status(signal)).catch((err: unknown) => {
          throw unavailable('the stack', err);
        });
        return { status: allServing(rows, started) ? 200 : 503, body: rows };
      },
    },
  };
}

/** A running probe server. */
export interface ProbeServer {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** Stops listening, ends every open connection and every request under way. */
  close(): Promise<void>;
}

/** Serves probes on 127.0.0.1:port (0: a free one) until closed; deadlines other than the defaults are for tests. */
export async function serveProbes(probes: SupervisorProbes, port = 0, deadlines: ProbeDeadlines = PROBE_DEADLINES_MS): Promise<ProbeServer> {
  const routes = endpoints(probes, deadlines);
  const stopping = new AbortController();
  // One listener per request under way.
  setMaxListeners(MAX_IN_FLIGHT + 1, stopping.signal);
  let inFlight = 0;
  let listening = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const reply = ({ status, body }: Answer): void => {
      if (res.headersSent || res.destroyed) return;
      // Exactly application/json: Chaos Toolkit's http provider parses the body only for that header value.
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
    };
    const host = req.headers.host ?? '';
    if (host !== `127.0.0.1:${listening}` && host !== `localhost:${listening}`) return reply({ status: 403, body: { error: `this server answers only requests for 127.0.0.1:${listening} (Host: ${JSON.stringify(host)})` } });
    const url = new URL(req.url ?? '/', `http://${host}`);
    const route = routes[url.pathname];
    if (route === undefined) return reply({ status: 404, body: { error: `no such path: ${url.pathname}; the probes are GET ${Object.keys(routes).join(', ')}` } });
    if (req.method !== 'GET') {
      res.setHeader('allow', 'GET');
      return reply({ status: 405, body: { error: `${url.pathname} answers GET only, got ${req.method}` } });
    }
    if (inFlight >= MAX_IN_FLIGHT) return reply({ status: 429, body: { error: `${MAX_IN_FLIGHT} requests under way already; ask again shortly` } });
    inFlight++;
    // Ends the probe's work when its time is up, the client goes away, or the server stops.
    const deadlineMs = route.deadlineMs(url.searchParams);
    const controller = new AbortController();
    const abort = (): void => controller.abort();
    const timer = setTimeout(abort, deadlineMs);
    stopping.signal.addEventListener('abort', abort, { once: true });
    res.once('close', abort);
    let expire: () => void = () => {};
    const deadline = new Promise<Answer>((resolve) => {
      expire = () => resolve({ status: stopping.signal.aborted ? 503 : 504, body: { error: stopping.signal.aborted ? 'the supervisor is stopping' : `no answer within ${deadlineMs / 1000} s` } });
      controller.signal.addEventListener('abort', expire, { once: true });
    });
    try {
      reply(await Promise.race([route.answer(url.searchParams, controller.signal), deadline]));
    } catch (err) {
      reply(err instanceof Refusal ? { status: err.status, body: { error: err.message } } : { status: 500, body: { error: `the supervisor failed: ${(err as Error).message}` } });
    } finally {
      inFlight--;
      clearTimeout(timer);
      stopping.signal.removeEventListener('abort', abort);
      controller.signal.removeEventListener('abort', expire);
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // Nothing a request does may take the supervisor down.
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(err) }));
      else res.destroy();
    });
  });
  // Receiving a request (a GET: headers only) is quick; a client that trickles it is cut off.
  server.headersTimeout = 5000;
  server.requestTimeout = 10000;
  server.maxConnections = 4 * MAX_IN_FLIGHT;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  listening = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${listening}`,
    close: () =>
      new Promise<void>((resolve) => {
        stopping.abort();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Asks the supervisor at url (its stack.json `supervisor`) path with params; resolves with the status and the JSON body. */
export async function callSupervisor(url: string, path: string, params: Record<string, string | undefined> = {}, timeoutMs = 15000): Promise<Answer> {
  const target = new URL(path, url);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) target.searchParams.set(k, v);
  const res = await fetch(target, { signal: AbortSignal.timeout(timeoutMs) }).catch((err: Error) => {
    throw new Error(err.name === 'TimeoutError' ? `the supervisor at ${url} did not answer within ${timeoutMs / 1000} s` : `cannot reach the supervisor at ${url}: ${(err.cause as Error | undefined)?.message ?? err.message}`);
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) as unknown };
  } catch {
    throw new Error(`the supervisor at ${url} answered ${res.status} with no JSON: ${text.slice(0, 200)}`);
  }
}
