/**
 * Benchmark suite "query": latency of GetLatest and GetFreshness at a fixed
 * rate, and GetLatest's maximum throughput, measured with ghz (a real load
 * generator, its own Go process) against the query service and against a
 * trivial grpc-js handler of the same method on the same machine, the floor
 * (issue [E] item 3).
 *
 * The floor runs in a child process of its own: in the bench process it
 * would share an event loop (and a core) with everything else here, and it
 * would not be the same kind of thing as the query service, which is one
 * Node process too. It serves GetLatest with the same request and response
 * types, encoded by the same generated code, answering a constant response
 * copied from a real answer of the query service, so both send the same bytes.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { credentials } from '@grpc/grpc-js';
import { GetLatestResponse, QueryServiceClient } from '@flatline/proto';
import { unaryCall } from '@flatline/platform';
import { REPO_ROOT, TOOLS_BIN, spawnReady, type ManagedProcess, cpuSeconds, scrapeText, sumMetric } from '@flatline/stack';
import { ensureTool, toolVersionLine } from './bench-tools.ts';
import { BenchDatabase, appendAll, ferretdbVersion, median, packageVersion, skipped, whole, workloadBatches, workloadReadings, type Workload } from './storage.ts';
import type { BenchSuite, DetailTable, Figure, SuiteResult } from './suite.ts';

const run = promisify(execFile);

/** ghz's binary, as tools/install-ghz.sh links it. */
export const GHZ = join(TOOLS_BIN, 'ghz');
/** buf's descriptor set of flatline's protos (with their imports): ghz reads the service from it. */
export const PROTOSET = join(REPO_ROOT, 'proto', 'gen', 'flatline.binpb');

/** Fully-qualified methods the suite calls. */
export const GET_LATEST = 'flatline.query.v1.QueryService/GetLatest';
export const GET_FRESHNESS = 'flatline.query.v1.QueryService/GetFreshness';

/** One ghz run. */
export interface GhzRun {
  /** host:port. */
  readonly target: string;
  /** package.Service/Method. */
  readonly call: string;
  /** Request as JSON; ghz templates ({{randomInt 1 1001}}) are expanded per request. */
  readonly data: string;
  /** Requests per second; 0 for as many as the server answers. */
  readonly rps: number;
  readonly durationSeconds: number;
  /** Workers sending requests (ghz -c). */
  readonly concurrency: number;
  /** HTTP/2 connections the workers share (ghz --connections). */
  readonly connections: number;
  /** Where ghz writes its JSON report. */
  readonly output: string;
}

/** ghz's command line for a run (plaintext, the protoset, a JSON report). */
export function ghzArgs(r: GhzRun): string[] {
  return [
    '--insecure',
    '--protoset',
    PROTOSET,
    '--call',
    r.call,
    '-d',
    r.data,
    '--rps',
    String(r.rps),
    '-z',
    `${r.durationSeconds}s`,
    '-c',
    String(r.concurrency),
    '--connections',
    // ghz refuses more connections than workers (a one-caller run).
    String(Math.min(r.connections, r.concurrency)),
    // Let requests in flight when the time is up finish and count: the
    // default ("close") reports each of them as an Unavailable error.
    '--duration-stop',
    'wait',
    '-O',
    'json',
    '-o',
    r.output,
    r.target,
  ];
}

/** What the suite keeps of a ghz report. */
export interface GhzSummary {
  /** Requests sent (answered with any status). */
  readonly count: number;
  /** Requests answered OK. */
  readonly ok: number;
  /** Requests that failed (any status but OK). */
  readonly errors: number;
  readonly seconds: number;
  /** OK answers per second. */
  readonly okRps: number;
  /** Latencies of OK answers, in milliseconds. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly averageMs: number;
  readonly slowestMs: number;
  /** Status name → count, as ghz reports it. */
  readonly statuses: Readonly<Record<string, number>>;
  /** Error message → count, as ghz reports it. */
  readonly errorMessages: Readonly<Record<string, number>>;
}

const NS_PER_MS = 1e6;

/**
 * Reads ghz's JSON report (--format json). Durations are Go nanoseconds;
 * the latency percentiles are over OK answers only; count includes errors.
 */
export function parseGhzReport(text: string): GhzSummary {
  const r = JSON.parse(text) as {
    count?: number;
    total?: number;
    average?: number;
    slowest?: number;
    statusCodeDistribution?: Record<string, number> | null;
    errorDistribution?: Record<string, number> | null;
    latencyDistribution?: Array<{ percentage: number; latency: number }> | null;
  };
  if (typeof r.count !== 'number' || typeof r.total !== 'number') throw new Error('not a ghz JSON report (no count or total)');
  const statuses = r.statusCodeDistribution ?? {};
  const ok = statuses['OK'] ?? 0;
  const at = (p: number): number => {
    const hit = (r.latencyDistribution ?? []).find((d) => d.percentage === p);
    return hit === undefined ? Number.NaN : hit.latency / NS_PER_MS;
  };
  const seconds = r.total / 1e9;
  return {
    count: r.count,
    ok,
    errors: r.count - ok,
    seconds,
    okRps: seconds > 0 ? ok / seconds : Number.NaN,
    p50Ms: at(50),
    p99Ms: at(99),
    averageMs: (r.average ?? Number.NaN) / NS_PER_MS,
    slowestMs: (r.slowest ?? Number.NaN) / NS_PER_MS,
    statuses,
    errorMessages: r.errorDistribution ?? {},
  };
}

/** "3 errors (Unavailable 2, DeadlineExceeded 1)" or '' when there is none. */
export function errorText(s: GhzSummary): string {
  if (s.errors === 0) return '';
  const kinds = Object.entries(s.statuses)
    .filter(([status]) => status !== 'OK')
    .map(([status, n]) => `${status} ${n}`)
    .join(', ');
  return `${s.errors} error${s.errors === 1 ? '' : 's'}${kinds === '' ? '' : ` (${kinds})`}`;
}

/** Milliseconds with a precision that suits them. */
export function showMs(milliseconds: number): string {
  if (!Number.isFinite(milliseconds)) return '–';
  return `${milliseconds < 10 ? milliseconds.toFixed(2) : milliseconds.toFixed(1)} ms`;
}

/** CPU seconds spread over requests, in ms per request. */
export function perRequest(cpuSeconds: number, requests: number): string {
  return requests > 0 && Number.isFinite(cpuSeconds) ? `${((cpuSeconds * 1000) / requests).toFixed(2)} ms` : '–';
}

/** Runs ghz and reads its report; throws with ghz's own words if it fails. */
export async function runGhz(r: GhzRun): Promise<GhzSummary> {
  try {
    await run(GHZ, ghzArgs(r), { cwd: REPO_ROOT, timeout: (r.durationSeconds + 60) * 1000, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ghz ${r.call} at ${r.target} failed: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
  return parseGhzReport(readFileSync(r.output, 'utf8'));
}

/**
 * The floor: grpc-js serving QueryService.GetLatest with a constant answer
 * (argv[1], GetLatestResponse as proto JSON), through the same generated
 * service definition as the query service; every other method is
 * UNIMPLEMENTED. Run with `node --import tsx --input-type=module -e`.
 */
export const FLOOR_SCRIPT = `
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { GetLatestResponse, QueryServiceService } from '@flatline/proto';
const answer = GetLatestResponse.fromJSON(JSON.parse(process.argv[1]));
const server = new Server();
server.addService(QueryServiceService, { getLatest: (_call, callback) => callback(null, answer) });
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error('floor: cannot listen: ' + err.message);
    process.exit(1);
  }
  console.log('floor listening 127.0.0.1:' + port);
});
`;

/** Starts the floor server in a child process with the given constant GetLatest answer. */
export async function startFloor(answer: GetLatestResponse, logFile: string): Promise<{ process: ManagedProcess; address: string }> {
  const { process, ready } = await spawnReady({
    name: 'grpc-floor',
    command: globalThis.process.execPath,
    args: ['--import', 'tsx', '--input-type=module', '-e', FLOOR_SCRIPT, JSON.stringify(GetLatestResponse.toJSON(answer))],
    logFile,
    ready: (line) => /^floor listening (\S+)$/.exec(line)?.[1],
  });
  return { process, address: ready };
}

/** Settings of a query suite run. */
export interface QuerySettings {
  /** Readings loaded through storage before the query service starts. */
  readonly workload: Workload;
  /** Seconds of each fixed-rate run. */
  readonly fixedSeconds: number;
  /** The fixed rate. */
  readonly rps: number;
  /** Seconds of each unlimited (throughput) run. */
  readonly maxSeconds: number;
  /** Workers of the unlimited runs. */
  readonly maxConcurrency: number;
  /** Workers of the fixed-rate runs (enough to keep the rate when an answer is slow). */
  readonly fixedConcurrency: number;
  readonly connections: number;
  /** Pairs of throughput runs (query, floor), order alternating. */
  readonly repeats: number;
  /** Seconds of the unreported warm-up run against each target. */
  readonly warmupSeconds: number;
  /** Seconds of each one-caller run (unloaded latency, a detail). */
  readonly singleSeconds: number;
}

/** The settings of a quick or full run. */
export function querySettings(quick: boolean): QuerySettings {
  const rounds = quick ? 2 : 5;
  return {
    workload: { flats: 1000, rounds, fetchesPerAppend: 500, devicesPerFlat: 3, startMs: Date.now() - rounds * 5000 },
    fixedSeconds: quick ? 3 : 10,
    rps: 1000,
    maxSeconds: quick ? 3 : 10,
    maxConcurrency: 50,
    fixedConcurrency: 50,
    connections: 4,
    repeats: quick ? 1 : 3,
    warmupSeconds: quick ? 1 : 3,
    singleSeconds: quick ? 2 : 5,
  };
}

/** ghz's request of GetLatest: a random flat of the loaded ones per request. */
export function getLatestData(flats: number): string {
  return `{"flat_id":"{{randomInt 1 ${flats + 1}}}"}`;
}

/** GetFreshness as the chaos probes ask it: every flat, the 10 stalest listed. */
export const GET_FRESHNESS_DATA = '{"limit":10}';

/** How a ghz run loads its target. */
export type QueryMode = 'fixed' | 'max' | 'single';

/** One measured ghz run with where it ran. */
export interface QueryRun {
  readonly label: string;
  readonly target: 'query' | 'floor';
  readonly call: string;
  /** 'fixed' (at settings.rps), 'max' (no rate limit) or 'single' (one caller, no rate limit: the unloaded latency). */
  readonly mode: QueryMode;
  readonly repeat: number;
  readonly summary: GhzSummary;
  /** CPU seconds of the server process (query service or floor) during the run. */
  readonly serverCpuSeconds: number;
  /** CPU seconds the database (FerretDB and its PostgreSQL) used during the run. */
  readonly dbCpuSeconds: number;
  /** The query service's event loop and GC over the run (its /metrics), where they could be read. */
  readonly loop?: LoopStats;
}

/** prom-client's event-loop sampling interval (eventLoopMonitoringPrecision's default), ms. */
const LOOP_SAMPLE_MS = 10;

/** A service's event-loop delay (max and p99) and its GC pauses over a window, from its /metrics (prom-client's default metrics). */
export interface LoopStats {
  readonly delayMaxMs: number;
  readonly delayP99Ms: number;
  readonly gcMs: number;
  readonly gcPauses: number;
}

/**
 * Starts observing a service's event loop and GC: prom-client's delay
 * histogram restarts at every scrape, so the scrape here opens the window
 * and the one the answered function makes closes it. Undefined if /metrics
 * does not answer.
 */
export async function observeLoop(metricsAddress: string): Promise<(() => Promise<LoopStats | undefined>) | undefined> {
  const gc = (text: string) => ({ s: sumMetric(text, 'nodejs_gc_duration_seconds_sum'), n: sumMetric(text, 'nodejs_gc_duration_seconds_count') });
  const before = await scrapeText(metricsAddress).then(gc, () => undefined);
  if (before === undefined) return undefined;
  return async () => {
    const text = await scrapeText(metricsAddress).catch(() => undefined);
    if (text === undefined) return undefined;
    const after = gc(text);
    // Node's delay monitor counts its own sampling interval in every sample (an idle loop reads ~10 ms): the delay is what is beyond it.
    const beyond = (name: string) => Math.max(0, sumMetric(text, name) * 1000 - LOOP_SAMPLE_MS);
    return {
      delayMaxMs: beyond('nodejs_eventloop_lag_max_seconds'),
      delayP99Ms: beyond('nodejs_eventloop_lag_p99_seconds'),
      gcMs: (after.s - before.s) * 1000,
      gcPauses: after.n - before.n,
    };
  };
}

/** "event-loop delay max 31.2 ms, p99 12.1 ms; GC 120 ms in 85 pauses", or n/a. */
export function loopText(l: LoopStats | undefined): string {
  return l === undefined ? 'n/a' : `${showMs(l.delayMaxMs)} / ${showMs(l.delayP99Ms)}; ${showMs(l.gcMs)} in ${whole(l.gcPauses)}`;
}

/** Figures, details and notes of the query runs. */
export function queryResult(runs: readonly QueryRun[], settings: QuerySettings): SuiteResult {
  const find = (target: QueryRun['target'], call: string, mode: QueryRun['mode']): QueryRun | undefined =>
    runs.find((r) => r.target === target && r.call === call && r.mode === mode);
  const latest = find('query', GET_LATEST, 'fixed');
  const freshness = find('query', GET_FRESHNESS, 'fixed');
  const floor = find('floor', GET_LATEST, 'fixed');
  const maxRuns = (target: QueryRun['target']): QueryRun[] => runs.filter((r) => r.target === target && r.mode === 'max');
  const repeats = [...new Set(maxRuns('query').map((r) => r.repeat))].sort((a, b) => a - b);
  const maxOf = (target: QueryRun['target'], repeat: number): number => maxRuns(target).find((r) => r.repeat === repeat)?.summary.okRps ?? Number.NaN;
  const ratios = repeats.map((r) => maxOf('query', r) / maxOf('floor', r));
  const erring = (...rs: Array<QueryRun | undefined>): string => {
    const n = rs.reduce((sum, r) => sum + (r?.summary.errors ?? 0), 0);
    return n === 0 ? '' : ` — ${n} error${n === 1 ? '' : 's'}`;
  };
  const at = `at ${settings.rps} rps`;
  const p99 = latest?.summary.p99Ms ?? Number.NaN;
  const fig = (name: string, run: QueryRun | undefined, versus: QueryRun | undefined, pick: (s: GhzSummary) => number): Figure => {
    const a = run === undefined ? Number.NaN : pick(run.summary);
    const b = versus === undefined ? Number.NaN : pick(versus.summary);
    return { name: `${name}${erring(run)}`, flatline: showMs(a), versus: versus === undefined ? '' : `${showMs(b)} (floor)`, ratio: Number.isFinite(a / b) ? a / b : undefined };
  };
  const maxRatio = median(ratios);
  const allMax = [...maxRuns('query'), ...maxRuns('floor')];
  const latestErrors = (latest?.summary.errors ?? 0) > 0;
  const maxErrors = allMax.some((r) => r.summary.errors > 0);
  const figures: Figure[] = [
    {
      ...fig(`GetLatest p99 ${at}`, latest, floor, (s) => s.p99Ms),
      goal: '≤ 5 ms',
      // A goal is not met by a run in which requests failed.
      ...(Number.isFinite(p99) ? { met: p99 <= 5 && !latestErrors } : {}),
    },
    fig(`GetLatest p50 ${at}`, latest, floor, (s) => s.p50Ms),
    fig(`GetFreshness p50 ${at}`, freshness, floor, (s) => s.p50Ms),
    fig(`GetFreshness p99 ${at}`, freshness, floor, (s) => s.p99Ms),
    {
      name: `GetLatest max throughput vs trivial grpc-js handler${repeats.length > 1 ? ` (median of ${repeats.length})` : ''}${erring(...allMax)}`,
      flatline: `${whole(median(repeats.map((r) => maxOf('query', r))))} rps`,
      versus: `${whole(median(repeats.map((r) => maxOf('floor', r))))} rps`,
      ratio: Number.isFinite(maxRatio) ? maxRatio : undefined,
      goal: '≥ 0.5× floor',
      ...(Number.isFinite(maxRatio) ? { met: maxRatio >= 0.5 && !maxErrors } : {}),
    },
  ];
  const rows = runs.map((r) => [
    r.label,
    r.mode === 'fixed' ? `${settings.rps} rps` : r.mode === 'max' ? `max, c=${settings.maxConcurrency}` : 'one caller',
    String(r.repeat),
    whole(r.summary.count),
    whole(r.summary.okRps),
    showMs(r.summary.p50Ms),
    showMs(r.summary.p99Ms),
    showMs(r.summary.averageMs),
    showMs(r.summary.slowestMs),
    errorText(r.summary) || '0',
    perRequest(r.serverCpuSeconds, r.summary.count),
    perRequest(r.dbCpuSeconds, r.summary.count),
    r.target === 'query' ? loopText(r.loop) : '',
  ]);
  const details: DetailTable[] = [
    {
      title: 'query: every ghz run (in the order run)',
      head: ['target', 'load', 'repeat', 'requests', 'OK/s', 'p50', 'p99', 'mean', 'slowest', 'errors', 'server CPU/req', 'database CPU/req', 'query event-loop delay max / p99; GC'],
      rows,
    },
  ];
  if (repeats.length > 0) {
    details.push({
      title: 'query: GetLatest max throughput per repeat',
      head: ['repeat', 'query OK/s', 'floor OK/s', 'ratio'],
      rows: repeats.map((r, i) => [String(r), whole(maxOf('query', r)), whole(maxOf('floor', r)), ratios[i]!.toFixed(2)]),
    });
  }
  const w = settings.workload;
  const notes = [
    `ghz one-caller runs (--rps 0 -c 1, ${settings.singleSeconds} s; unloaded latency, details only); ${settings.rps} rps runs: ${settings.fixedSeconds} s, -c ${settings.fixedConcurrency}, ${settings.connections} connections; max runs: --rps 0, -c ${settings.maxConcurrency}, ${settings.connections} connections, ${settings.maxSeconds} s; each target warmed up ${settings.warmupSeconds} s first (not reported). Latencies are ghz's, over OK answers, measured from when a request was sent (a rate ghz could not keep shows as fewer requests, not as latency).`,
    `Data: ${w.flats} flats × ${w.devicesPerFlat} devices × ${w.rounds} readings loaded through storage Append; GetLatest asks a random flat per request (${getLatestData(w.flats)}); GetFreshness asks ${GET_FRESHNESS_DATA} (every flat, as the chaos probes do: it reads every flat-state bucket).`,
    'The floor is a grpc-js server in a process of its own serving GetLatest with a constant answer copied from a real one (same types, same generated codec, same bytes), no database; GetFreshness\'s latencies are shown next to that same floor. ghz, the database (FerretDB on PostgreSQL) and the servers share this machine\'s cores.',
  ];
  // Where GetLatest's tail comes from: a stall of the service's own event loop (GC, a snapshot refresh) holds every call that arrives meanwhile.
  if (latest?.loop !== undefined) {
    const l = latest.loop;
    notes.push(
      `GetLatest at ${settings.rps} rps: the query service's event loop was delayed at most ${showMs(l.delayMaxMs)} (p99 of its samples every ${LOOP_SAMPLE_MS} ms: ${showMs(l.delayP99Ms)}), GC paused it ${showMs(l.gcMs)} in ${whole(l.gcPauses)} pauses over ${settings.fixedSeconds} s; ` +
        (l.delayMaxMs >= p99 ? 'stalls of the service itself reach the p99.' : `no stall of the service reached the p99 (${showMs(p99)}): the rest of the tail is outside its event loop (ghz, the scheduler of ${availableParallelism()} shared cores).`),
    );
  }
  const failed = runs.filter((r) => r.summary.errors > 0);
  for (const r of failed) notes.push(`${r.label} (${r.mode}, repeat ${r.repeat}) had ${errorText(r.summary)}: ${Object.entries(r.summary.errorMessages).map(([m, n]) => `${n}× ${m}`).join('; ').slice(0, 300)}`);
  const short = runs.filter((r) => r.mode === 'fixed' && r.summary.count < 0.95 * settings.rps * r.summary.seconds);
  for (const r of short) {
    const dbMs = (r.dbCpuSeconds * 1000) / r.summary.count;
    const serverMs = (r.serverCpuSeconds * 1000) / r.summary.count;
    notes.push(
      `${r.label} at ${settings.rps} rps: the rate was not held (ghz got ${whole(r.summary.count / r.summary.seconds)} answers/s; a saturated server's latency is queueing). ` +
        `Per request it took ${serverMs.toFixed(2)} ms CPU in the service and ${dbMs.toFixed(2)} ms in the database: ${settings.rps} rps would need ${((settings.rps * (serverMs + dbMs)) / 1000).toFixed(1)} cores for those two alone (this machine has ${availableParallelism()}).`,
    );
  }
  return { figures, details, notes, raw: { settings, runs } };
}

/** CPU seconds of a process, NaN once it is gone. */
function cpuOf(pid: number | undefined): number {
  try {
    return pid === undefined ? Number.NaN : cpuSeconds(pid);
  } catch {
    return Number.NaN;
  }
}

/** The query suite. */
export const querySuite: BenchSuite = {
  name: 'query',
  title: 'query GetLatest/GetFreshness latency at 1,000 rps and GetLatest max throughput vs a trivial grpc-js handler (ghz)',
  plan(ctx) {
    const s = querySettings(ctx.quick);
    const w = s.workload;
    return [
      `query: one FerretDB on PostgreSQL (as npm start runs it); storage loads ${whole(workloadReadings(w))} readings (${w.flats} flats × ${w.devicesPerFlat} devices × ${w.rounds}); one query service; a trivial grpc-js GetLatest (constant answer) in a child process as the floor;`,
      `  ghz (${relative(REPO_ROOT, GHZ)}; bash tools/install.sh ghz if missing; skipped if that fails) with --protoset ${relative(REPO_ROOT, PROTOSET)}:`,
      `  --rps 0 -c 1 -z ${s.singleSeconds}s (unloaded latency) and --rps ${s.rps} -z ${s.fixedSeconds}s -c ${s.fixedConcurrency} --connections ${s.connections}: GetLatest (query, floor), GetFreshness (query): p50/p99;`,
      `  --rps 0 -c ${s.maxConcurrency} --connections ${s.connections} -z ${s.maxSeconds}s: GetLatest query vs floor, ${s.repeats} pair(s), order alternating;`,
      '  figures: GetLatest p99 at 1000 rps (goal ≤ 5 ms), GetFreshness p50/p99, GetLatest max rps ÷ floor max rps (goal ≥ 0.5×).',
    ].join('\n');
  },
  async run(ctx) {
    const settings = querySettings(ctx.quick);
    const tool = ensureTool('ghz', ctx.say);
    if ('skipped' in tool) return skipped(tool.skipped);
    let bench: BenchDatabase;
    try {
      bench = await BenchDatabase.start('query', ctx);
    } catch (err) {
      return skipped(`cannot start FerretDB on PostgreSQL (run tools/install.sh ferretdb postgresql): ${(err as Error).message.split('\n')[0]}`);
    }
    const stops: Array<() => Promise<unknown>> = [];
    try {
      const w = settings.workload;
      ctx.say(`query: loading ${whole(workloadReadings(w))} readings of ${w.flats} flats through storage…`);
      await bench.prepare('flatline');
      const storage = await bench.service('storage', 'flatline');
      try {
        await appendAll(storage.grpc, workloadBatches(w), 4);
      } finally {
        // Not needed any more: it would only take CPU from the measured ones.
        await storage.process.stop();
      }
      const query = await bench.service('query', 'flatline');
      stops.push(() => query.process.stop());
      const client = new QueryServiceClient(query.grpc, credentials.createInsecure());
      let answer: GetLatestResponse;
      try {
        answer = await unaryCall(client, client.getLatest, { flatId: '1' }, 5000);
      } finally {
        client.close();
      }
      if (answer.readings.length !== w.devicesPerFlat) throw new Error(`GetLatest of flat 1 returned ${answer.readings.length} readings, expected ${w.devicesPerFlat}`);
      const floor = await startFloor(answer, join(bench.dir, 'logs', 'grpc-floor.log'));
      stops.push(() => floor.process.stop());

      const servers = { query: { address: query.grpc, pid: query.process.pid }, floor: { address: floor.address, pid: floor.process.pid } };
      const runs: QueryRun[] = [];
      let n = 0;
      const measure = async (target: 'query' | 'floor', call: string, mode: QueryMode, repeat: number, seconds = mode === 'max' ? settings.maxSeconds : settings.fixedSeconds): Promise<QueryRun> => {
        const server = servers[target];
        const loop = target === 'query' ? await observeLoop(query.metrics) : undefined;
        const cpu0 = cpuOf(server.pid);
        const db0 = bench.cpuSeconds();
        const summary = await runGhz({
          target: server.address,
          call,
          data: call === GET_LATEST ? getLatestData(w.flats) : GET_FRESHNESS_DATA,
          rps: mode === 'fixed' ? settings.rps : 0,
          durationSeconds: seconds,
          concurrency: mode === 'fixed' ? settings.fixedConcurrency : mode === 'max' ? settings.maxConcurrency : 1,
          connections: settings.connections,
          output: join(bench.dir, `ghz-${++n}.json`),
        });
        const label = `${target === 'query' ? 'query' : 'floor'} ${call.slice(call.lastIndexOf('/') + 1)}`;
        const serverCpuSeconds = cpuOf(server.pid) - cpu0;
        const dbCpuSeconds = bench.cpuSeconds() - db0;
        const stats = await loop?.();
        return { label, target, call, mode, repeat, summary, serverCpuSeconds, dbCpuSeconds, ...(stats === undefined ? {} : { loop: stats }) };
      };

      for (const target of ['query', 'floor'] as const) {
        ctx.say(`query: warming up ${target} (${settings.warmupSeconds} s)…`);
        await measure(target, GET_LATEST, 'max', 0, settings.warmupSeconds);
      }
      const latencyRuns: Array<['query' | 'floor', string, 'single' | 'fixed']> = [
        ['query', GET_LATEST, 'single'],
        ['floor', GET_LATEST, 'single'],
        ['query', GET_FRESHNESS, 'single'],
        ['query', GET_LATEST, 'fixed'],
        ['floor', GET_LATEST, 'fixed'],
        ['query', GET_FRESHNESS, 'fixed'],
      ];
      for (const [target, call, mode] of latencyRuns) {
        const seconds = mode === 'fixed' ? settings.fixedSeconds : settings.singleSeconds;
        ctx.say(`query: ${target} ${call} ${mode === 'fixed' ? `at ${settings.rps} rps` : 'one caller'} for ${seconds} s…`);
        const r = await measure(target, call, mode, 1, seconds);
        ctx.say(`query:   p50 ${showMs(r.summary.p50Ms)}, p99 ${showMs(r.summary.p99Ms)}, ${whole(r.summary.okRps)} OK/s${r.summary.errors > 0 ? `, ${errorText(r.summary)}` : ''}`);
        runs.push(r);
      }
      for (let repeat = 1; repeat <= settings.repeats; repeat++) {
        const order: Array<'query' | 'floor'> = repeat % 2 === 1 ? ['query', 'floor'] : ['floor', 'query'];
        for (const target of order) {
          ctx.say(`query: ${target} GetLatest, no rate limit, ${settings.maxSeconds} s (repeat ${repeat}/${settings.repeats})…`);
          const r = await measure(target, GET_LATEST, 'max', repeat);
          ctx.say(`query:   ${whole(r.summary.okRps)} OK/s${r.summary.errors > 0 ? `, ${errorText(r.summary)}` : ''}`);
          runs.push(r);
        }
      }
      const result = queryResult(runs, settings);
      return {
        ...result,
        versions: { ghz: toolVersionLine(GHZ), '@grpc/grpc-js': packageVersion('@grpc/grpc-js'), mongodb: packageVersion('mongodb'), ferretdb: ferretdbVersion() },
      };
    } finally {
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
      await bench.close(ctx);
    }
  },
};
