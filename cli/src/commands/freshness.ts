/**
 * `flatline freshness`: how old each flat's last successful fetch is, from
 * the query service: through the supervisor's GET /freshness when a local
 * stack runs (the same answer the chaos experiments probe), else (--query: a
 * cluster, or no local stack) from the query service directly. With
 * --from outboxes, from ingestion's side instead (GET /fetched: each flat's
 * last fetch kept in an outbox), which a database outage does not stop.
 */
import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { FreshnessReport } from '@flatline/proto';
import { join } from 'node:path';
import {
  DEFAULT_STATE_DIR,
  DEFAULT_PORTS,
  callSupervisor,
  expectedFlats,
  freshEnough,
  queryFaultInterceptor,
  queryFreshness,
  readStackFile,
  stackRunning,
} from '@flatline/stack';
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
  from: 'query' | 'outboxes';
}

/** The query address: --query, else the running stack's, else the default. */
export function queryAddress(explicit: string | undefined, stateDir: string): string {
  return explicit ?? readStackFile(stateDir)?.query ?? `127.0.0.1:${DEFAULT_PORTS.query}`;
}

/** A number of seconds ≥ 0 (a typo must not pass as "no maximum"). */
function seconds(value: string): number {
  if (!/^\d+(\.\d+)?$/.test(value)) throw new InvalidArgumentError('expected a number of seconds such as 20 or 2.5');
  return Number(value);
}

const list = (value: string, previous: string[] = []): string[] => [...previous, ...value.split(',').filter(Boolean)];

/** The supervisor of the local stack running in stateDir, if one runs and serves probes. */
function localSupervisor(stateDir: string): string | undefined {
  const file = readStackFile(stateDir);
  return file !== undefined && stackRunning(file) ? file.supervisor : undefined;
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
    .addOption(new Option('--max-age <seconds>', 'exit 1 when the worst age (or a never-fetched flat) exceeds this').argParser(seconds))
    .addOption(
      new Option('--from <source>', "query: what storage holds, as the query service answers; outboxes: each flat's last fetch kept in an ingestion outbox (a local stack's GET /fetched), which goes on while the database is away")
        .default('query')
        .choices(['query', 'outboxes']),
    )
    .action(async (o: FreshnessOptions) => {
      const supervisor = o.query === undefined ? localSupervisor(o.stateDir) : undefined;
      if (o.from === 'outboxes' && supervisor === undefined) {
        process.stderr.write(`flatline freshness: --from outboxes reads a local stack's outboxes, and ${o.query !== undefined ? '--query names a remote query service' : `no stack runs in ${o.stateDir}`}\n`);
        process.exitCode = 2;
        return;
      }
      // Without --flats, a local stack's every flat is named (by the supervisor, or below), so that a flat never fetched counts.
      const localFlats = (): string[] | undefined => (o.query === undefined ? expectedFlats(join(o.stateDir, 'devices', 'credentials.json')) : undefined);
      let knowsEveryFlat = o.flats.length > 0;
      const print = (report: FreshnessReport): void => {
        process.stdout.write(`${o.json ? JSON.stringify(FreshnessReport.toJSON(report), null, 2) : render(report, knowsEveryFlat)}\n`);
        if (!freshEnough(report, o.maxAge)) process.exitCode = 1;
      };
      if (supervisor !== undefined) {
        const params = { flats: o.flats.join(','), exclude: o.exclude.join(','), limit: String(o.limit), max_age: o.maxAge === undefined ? undefined : String(o.maxAge) };
        try {
          const { status, body } = await callSupervisor(supervisor, o.from === 'outboxes' ? '/fetched' : '/freshness', params);
          if (status !== 200 && status !== 409) throw new Error((body as { error?: string }).error ?? `answered ${status}`);
          knowsEveryFlat ||= localFlats() !== undefined;
          print(FreshnessReport.fromJSON(body));
        } catch (err) {
          process.stderr.write(`flatline freshness: the supervisor at ${supervisor}: ${(err as Error).message}\n`);
          process.exitCode = 2;
        }
        return;
      }
      const address = queryAddress(o.query, o.stateDir);
      // This command is a client of query: the local plane applies query faults
      // (query-slow) here, as a client sidecar would on a cluster.
      const faults = queryFaultInterceptor(join(o.stateDir, 'faults.json'), (err) => process.stderr.write(`flatline freshness: ignoring the fault file: ${err.message}\n`));
      try {
        const flats = o.flats.length > 0 ? o.flats : (localFlats() ?? []);
        knowsEveryFlat = flats.length > 0;
        print(await queryFreshness(address, { flatIds: flats, excludeFlatIds: o.exclude, limit: o.limit }, [faults, ...(o.token === undefined ? [] : [bearer(o.token)])]));
      } catch (err) {
        process.stderr.write(`flatline freshness: query service at ${address}: ${(err as Error).message}\n`);
        process.exitCode = 2;
      }
    });
}
