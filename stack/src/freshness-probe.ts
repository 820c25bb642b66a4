/**
 * The freshness probe as experiments and `flatline freshness` ask it: the
 * query service's report, with a read retried when a replica hangs, and the
 * steady-state verdict (the worst age at most maxAgeSeconds, no flat never
 * fetched).
 */
import { existsSync, statSync } from 'node:fs';
import { credentials, status, type Interceptor } from '@grpc/grpc-js';
import { QueryServiceClient, type FreshnessReport } from '@flatline/proto';
import { loadCredentials, unaryCall } from '@flatline/platform';
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
