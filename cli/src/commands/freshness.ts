/** `flatline freshness`: how old each flat's last successful fetch is, from the query service. */
import { credentials, InterceptingCall, status, type Interceptor } from '@grpc/grpc-js';
import { Command, Option } from 'commander';
import { GetFreshnessResponse, QueryServiceClient, type FreshnessReport } from '@flatline/proto';
import { unaryCall, loadCredentials } from '@flatline/platform';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_FLATS_PER_REQUEST } from '@flatline/query';
import { type Fault, readFaultFile, grpcFaultInterceptor, Injector } from '@flatline/mesh';
import { DEFAULT_STATE_DIR, readStackFile, DEFAULT_PORTS } from '@flatline/stack';
import { wholeNumber } from './up.ts';

interface FreshnessOptions {
  query: string | undefined;
  token: string | undefined;
  stateDir: string;
  exclude: string[];
  flats: string[];
  limit: number;
  json: boolean;
  maxAge: number | undefined;
}

/** The query address: --query, else the running stack's, else the default. */
export function queryAddress(explicit: string | undefined, stateDir: string): string {
  return explicit ?? readStackFile(stateDir)?.query ?? `127.0.0.1:${DEFAULT_PORTS.query}`;
}

const ATTEMPT_MS = 2500;
const ATTEMPTS = 3;

/**
 * Calls again (GetFreshness is a read) when an attempt met UNAVAILABLE or its
 * own deadline: a replica that hangs (a frozen node) holds one attempt until
 * the balancer's health check takes it out, as a gRPC client with a retry
 * policy would ride out. Three attempts of 2.5 s keep the worst under 8 s.
 */
async function withRetry<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (attempt >= ATTEMPTS || (code !== status.UNAVAILABLE && code !== status.DEADLINE_EXCEEDED)) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

const list = (value: string, previous: string[] = []): string[] => [...previous, ...value.split(',').filter(Boolean)];

/**
 * The flats a local stack polls (its credentials file), so that a flat never
 * fetched counts: the query service knows only the flats it has seen
 * fetched. Undefined with --query (another deployment), without the file, or
 * beyond what one request may name.
 */
function expectedFlats(o: FreshnessOptions): string[] | undefined {
  if (o.query !== undefined) return undefined;
  const file = join(o.stateDir, 'devices', 'credentials.json');
  if (!existsSync(file)) return undefined;
  const ids = [...loadCredentials(file).keys()];
  return ids.length <= MAX_FLATS_PER_REQUEST ? ids : undefined;
}

function render(r: FreshnessReport, knowsEveryFlat: boolean): string {
  const s = (n: number): string => `${n.toFixed(1)} s`;
  const never = knowsEveryFlat ? `${r.neverFetchedCount} never fetched` : 'never fetched: unknown (the query service knows only fetched flats; name them with --flats)';
  const lines = [
    `${r.flatCount} flats fetched, ${never}, as of ${r.asOf?.toISOString() ?? '?'}`,
    `age of the last successful fetch: p50 ${s(r.p50AgeSeconds)}   p99 ${s(r.p99AgeSeconds)}   worst ${s(r.worstAgeSeconds)}`,
  ];
  if (r.stalest.length > 0) {
    lines.push('stalest flats:', `  ${'flat'.padEnd(10)} ${'last fetch'.padEnd(26)} age`);
    for (const f of r.stalest) lines.push(`  ${f.flatId.padEnd(10)} ${(f.lastFetchAt?.toISOString() ?? '-').padEnd(26)} ${s(f.ageSeconds)}`);
  }
  if (r.neverFetchedFlatIds.length > 0) lines.push(`never fetched: ${r.neverFetchedFlatIds.join(', ')}${r.neverFetchedCount > r.neverFetchedFlatIds.length ? ', …' : ''}`);
  return lines.join('\n');
}

/** Sends token as a Bearer token on every call (the cluster's gateway requires one; see the README). */
function bearer(token: string): Interceptor {
  return (options, next) =>
    new InterceptingCall(next(options), {
      start: (metadata, listener, nextStart) => {
        metadata.set('authorization', `Bearer ${token}`);
        nextStart(metadata, listener);
      },
    });
}

/** The `freshness` command. */
export function freshnessCommand(): Command {
  return new Command('freshness')
    .description('show the worst flats and the freshness percentiles (age of the last successful fetch), from the query service')
    .option('--query <host:port>', 'query service address (default: the running stack\'s, else 127.0.0.1:7102)')
    .option('--state-dir <dir>', 'state folder of the running stack', DEFAULT_STATE_DIR)
    .addOption(new Option('--token <jwt>', 'a JWT sent as "authorization: Bearer" (query through a cluster\'s gateway requires one)').env('FLATLINE_QUERY_TOKEN'))
    .option('--exclude <ids>', 'leave these flats out (comma-separated, repeatable)', list, [])
    .option('--flats <ids>', 'only these flats (comma-separated, repeatable; default: every flat of the local stack, so a flat never fetched counts)', list, [])
    .addOption(new Option('--limit <n>', 'how many of the stalest flats to list').default(10).argParser(wholeNumber(0, 1000)))
    .option('--json', 'print the report as JSON (for scripts)', false)
    .addOption(new Option('--max-age <seconds>', 'exit 1 when the worst age (or a never-fetched flat) exceeds this').argParser(Number))
    .action(async (o: FreshnessOptions) => {
      const address = queryAddress(o.query, o.stateDir);
      // This command is a client of query: the local plane applies query faults
      // (query-slow) here, as a client sidecar would on a cluster.
      let faults: Fault[] = [];
      try {
        faults = readFaultFile(join(o.stateDir, 'faults.json'));
      } catch (err) {
        process.stderr.write(`flatline freshness: ignoring the fault file: ${(err as Error).message}\n`);
      }
      const client = new QueryServiceClient(address, credentials.createInsecure(), {
        interceptors: [grpcFaultInterceptor(new Injector('query', () => faults, undefined)), ...(o.token === undefined ? [] : [bearer(o.token)])],
      });
      try {
        const flats = o.flats.length > 0 ? o.flats : (expectedFlats(o) ?? []);
        const res = await withRetry(() => unaryCall(client, client.getFreshness, { flatIds: flats, excludeFlatIds: o.exclude, limit: o.limit }, ATTEMPT_MS));
        const report = res.report!;
        process.stdout.write(`${o.json ? JSON.stringify((GetFreshnessResponse.toJSON(res) as { report?: unknown }).report ?? {}, null, 2) : render(report, flats.length > 0)}\n`);
        if (o.maxAge !== undefined && (report.worstAgeSeconds > o.maxAge || report.neverFetchedCount > 0)) process.exitCode = 1;
      } catch (err) {
        process.stderr.write(`flatline freshness: query service at ${address}: ${(err as Error).message}\n`);
        process.exitCode = 2;
      } finally {
        client.close();
      }
    });
}
