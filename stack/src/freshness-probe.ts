/**
 * The freshness probe as experiments and `flatline freshness` ask it: the
 * query service's report, with a read retried when a replica hangs, and the
 * steady-state verdict (the worst age at most maxAgeSeconds, no flat never
 * fetched).
 */
import { existsSync, statSync } from 'node:fs';
import { credentials, InterceptingCall, status, type Interceptor } from '@grpc/grpc-js';
import { QueryServiceClient, type FreshnessReport } from '@flatline/proto';
import { FAULT_INJECTED, LastMinute, loadCredentials, unaryCall } from '@flatline/platform';
import { grpcFaultInterceptor, Injector, readFaultFile, type Fault } from '@flatline/mesh';
import { MAX_FLATS_PER_REQUEST } from '@flatline/query';

/** What to ask: these flats only (empty: every flat query knows), minus excluded ones, listing the limit stalest. */
export interface FreshnessRequest {
  readonly flatIds: readonly string[];
  readonly excludeFlatIds: readonly string[];
  readonly limit: number;
}

/** One attempt's deadline, and how many: three of 2.5 s keep the worst under 8 s. */
export const FRESHNESS_ATTEMPT_MS = 2500;
export const FRESHNESS_ATTEMPTS = 3;

/**
 * Calls again (GetFreshness is a read) when an attempt met UNAVAILABLE or its
 * own deadline: a replica that hangs (a frozen node) holds one attempt until
 * the balancer's health check takes it out, as a gRPC client with a retry
 * policy would ride out.
 */
async function withRetry<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (attempt >= FRESHNESS_ATTEMPTS || (code !== status.UNAVAILABLE && code !== status.DEADLINE_EXCEEDED)) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

/**
 * The query service's freshness report at address (a client of its own,
 * closed after), or from a long-lived client (an xDS one keeps its routes),
 * through interceptors (faults, a bearer token), retried as above.
 */
export async function queryFreshness(address: string | QueryServiceClient, request: FreshnessRequest, interceptors: Interceptor[] = []): Promise<FreshnessReport> {
  const client = typeof address === 'string' ? new QueryServiceClient(address, credentials.createInsecure()) : address;
  try {
    const res = await withRetry(() =>
      unaryCall(client, client.getFreshness, { flatIds: [...request.flatIds], excludeFlatIds: [...request.excludeFlatIds], limit: request.limit }, FRESHNESS_ATTEMPT_MS, interceptors),
    );
    if (res.report === undefined) throw new Error('the query service answered without a report');
    return res.report;
  } finally {
    if (typeof address === 'string') client.close();
  }
}

/**
 * The local plane's query faults (query-slow, …) for a client of query: on a
 * cluster the caller's sidecar applies them; here the caller does. The fault
 * file is read once, now. An unreadable file applies no fault; onError hears why.
 */
export function queryFaultInterceptor(faultsFile: string, onError: (err: Error) => void = () => {}): Interceptor {
  let faults: Fault[] = [];
  try {
    faults = readFaultFile(faultsFile);
  } catch (err) {
    onError(err as Error);
  }
  return grpcFaultInterceptor(new Injector('query', () => faults, undefined));
}

/** What a client of the plane saw of the mesh's faults in the last minute: calls its xDS fault filter aborted, and every call's time. */
export interface ClientObservations {
  readonly aborted: LastMinute;
  readonly seconds: LastMinute;
}

/** The JSON of ClientObservations, as the supervisor's /observed answers it per service. */
export interface ObservedLastMinute {
  readonly calls: number;
  readonly abortedByFault: number;
  readonly slowestSeconds: number;
}

/** A new, empty ClientObservations. */
export function clientObservations(): ClientObservations {
  return { aborted: new LastMinute(), seconds: new LastMinute() };
}

/** ClientObservations as JSON. */
export function observedLastMinute(o: ClientObservations): ObservedLastMinute {
  const seconds = o.seconds.read();
  return { calls: seconds.n, abortedByFault: o.aborted.read().n, slowestSeconds: seconds.max };
}

/**
 * Records each call's time and whether the xDS fault filter aborted it: on
 * the Istio plane the fault filter acts inside the client, below the
 * interceptors, so a delay shows in the time and an abort in the status.
 */
export function observingInterceptor(seen: ClientObservations): Interceptor {
  return (options, nextCall) => {
    const started = performance.now();
    return new InterceptingCall(nextCall(options), {
      start(metadata, _listener, next) {
        next(metadata, {
          onReceiveStatus(s, nextStatus) {
            seen.seconds.add((performance.now() - started) / 1000);
            if (s.code !== status.OK && s.details === FAULT_INJECTED) seen.aborted.add();
            nextStatus(s);
          },
        });
      },
    });
  };
}

/**
 * The flats a local stack polls (its credentials file), so that a flat never
 * fetched counts: the query service knows only the flats it has seen
 * fetched. Undefined without the file, or beyond what one request may name.
 */
export function expectedFlats(credentialsFile: string): string[] | undefined {
  if (!existsSync(credentialsFile)) return undefined;
  // Probed once a second or more: parse the file again only when it changed.
  const mtimeMs = statSync(credentialsFile).mtimeMs;
  if (known?.file !== credentialsFile || known.mtimeMs !== mtimeMs) known = { file: credentialsFile, mtimeMs, ids: [...loadCredentials(credentialsFile).keys()] };
  return known.ids.length <= MAX_FLATS_PER_REQUEST ? known.ids : undefined;
}

let known: { file: string; mtimeMs: number; ids: string[] } | undefined;

/** Whether report holds the steady state: no flat staler than maxAgeSeconds, none never fetched (always, without a maximum). */
export function freshEnough(report: FreshnessReport, maxAgeSeconds: number | undefined): boolean {
  return maxAgeSeconds === undefined || (report.worstAgeSeconds <= maxAgeSeconds && report.neverFetchedCount === 0);
}
