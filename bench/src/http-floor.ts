/**
 * The "http-floor" suite: wrk (a C load generator, Debian's package) against
 * the device simulator over HTTPS with keep-alive connections, cycling over
 * the flats with each flat's own credential. What the simulator answers per
 * second when its client costs next to nothing is the ceiling of the polling
 * suite: if it is well above the load of 10,000 flats every 5 s, the
 * simulator is not what limits flatline or Prometheus there.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flatIds, writeCredentials } from '@flatline/platform';
import { startService, type RunningService, cpuSeconds } from '@flatline/stack';
import { ensureTool, showSecondsAsMs, toolVersionLine } from './bench-tools.ts';
import type { BenchContext, BenchSuite, DetailTable, Figure, SuiteResult } from './suite.ts';

/** What a run does. */
export interface HttpFloorPlan {
  readonly flats: number;
  readonly seconds: number;
  readonly connections: number;
  readonly threads: number;
  readonly devicePeriodMs: number;
  /** The polling load to compare with: flats per interval, as requests per second. */
  readonly loadFlats: number;
  readonly loadIntervalMs: number;
}

/** The plan for quick (3 s per path) or full (10 s per path) runs. */
export function httpFloorPlan(quick: boolean): HttpFloorPlan {
  // One wrk thread: on 2 cores a second one would take CPU from the simulator it measures.
  return { flats: quick ? 200 : 10_000, seconds: quick ? 3 : 10, connections: 8, threads: 1, devicePeriodMs: 5000, loadFlats: 10_000, loadIntervalMs: 5000 };
}

/** The goal: the simulator answers at least this multiple of the polling load. */
const GOAL_MULTIPLE = 2;
/** Marks the line our Lua done() prints. */
const MARK = 'FLATLINE_WRK ';

/** What wrk measured. */
export interface WrkSummary {
  readonly requests: number;
  readonly durationUs: number;
  readonly errors: { readonly connect: number; readonly read: number; readonly write: number; readonly status: number; readonly timeout: number };
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
}

/**
 * A wrk Lua script that cycles over the given requests (path and
 * Authorization header each), formatted once per thread in init(), and
 * prints its summary and latency percentiles as one JSON line in done().
 */
export function wrkScript(requests: ReadonlyArray<{ path: string; authorization: string }>): string {
  const entries = requests.map((r) => `{${luaString(r.path)},${luaString(r.authorization)}}`).join(',\n');
  return `-- written by flatline bench (http-floor)
local entries = {
${entries}
}
local formatted = {}
local i = 0
function init(args)
  for k, e in ipairs(entries) do
    formatted[k] = wrk.format("GET", e[1], { ["Host"] = wrk.host, ["Authorization"] = e[2] })
  end
end
function request()
  i = i % #formatted + 1
  return formatted[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('${MARK}{"requests":%.0f,"durationUs":%.0f,"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},"p50Us":%.0f,"p99Us":%.0f,"maxUs":%.0f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
`;
}

/** A Lua string literal (our paths and base64 headers hold no quote, but escape anyway). */
function luaString(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Reads the summary line our script's done() printed among wrk's output. */
export function parseWrkSummary(stdout: string): WrkSummary {
  const line = stdout.split('\n').find((l) => l.startsWith(MARK));
  if (line === undefined) throw new Error(`wrk printed no summary line; its output:\n${stdout.slice(-2000)}`);
  const s = JSON.parse(line.slice(MARK.length)) as WrkSummary;
  for (const k of ['requests', 'durationUs', 'p50Us', 'p99Us', 'maxUs'] as const) {
    if (typeof s[k] !== 'number' || !Number.isFinite(s[k])) throw new Error(`wrk summary: ${k} is not a number in ${line}`);
  }
  return s;
}

/** Runs wrk; resolves with its stdout (rejects with its output on a non-zero exit). */
function runWrk(bin: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`wrk exited ${code}: ${out.slice(-1000)}`))));
  });
}

/** One load: a path kind against the simulator. */
interface LoadResult {
  readonly path: string;
  readonly summary: WrkSummary;
  /** Simulator CPU seconds during the run. */
  readonly simulatorCpuS: number;
}

async function load(bin: string, dir: string, sim: RunningService, plan: HttpFloorPlan, kind: 'measurements/' | 'metrics', credentials: ReadonlyMap<string, { username: string; password: string }>): Promise<LoadResult> {
  const script = join(dir, `${kind.replace('/', '')}.lua`);
  const basic = (c: { username: string; password: string }) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
  writeFileSync(script, wrkScript([...credentials].map(([id, c]) => ({ path: `/flat/${id}/${kind}`, authorization: basic(c) }))));
  const pid = sim.process.pid!;
  const cpu0 = cpuSeconds(pid);
  const out = await runWrk(bin, ['-t', String(plan.threads), '-c', String(plan.connections), '-d', `${plan.seconds}s`, '--timeout', '5s', '-s', script, `https://${sim.addresses['https']}`]);
  return { path: `/flat/<ID>/${kind}`, summary: parseWrkSummary(out), simulatorCpuS: cpuSeconds(pid) - cpu0 };
}

/** Requests per second of a wrk run. */
function rps(s: WrkSummary): number {
  return s.durationUs > 0 ? s.requests / (s.durationUs / 1e6) : Number.NaN;
}

/** The headline figures: the simulator's requests/s next to the polling load. */
export function httpFloorFigures(loads: readonly LoadResult[], plan: HttpFloorPlan): Figure[] {
  const need = plan.loadFlats / (plan.loadIntervalMs / 1000);
  return loads.map((l) => {
    const r = rps(l.summary) / need;
    return {
      name: `simulator requests/s (wrk, ${plan.connections} connections), ${l.path}`,
      flatline: `${rps(l.summary).toFixed(0)} /s`,
      versus: `${need.toFixed(0)} /s (${plan.loadFlats} flats every ${plan.loadIntervalMs / 1000} s)`,
      ratio: Number.isFinite(r) ? r : undefined,
      goal: `≥ ${GOAL_MULTIPLE}× the polling load`,
      met: Number.isFinite(r) ? r >= GOAL_MULTIPLE : undefined,
    };
  });
}

function details(loads: readonly LoadResult[], plan: HttpFloorPlan): DetailTable {
  return {
    title: `http-floor: wrk against the simulator (${plan.flats} flats cycled, ${plan.threads} thread, ${plan.connections} keep-alive connections, ${plan.seconds} s per path)`,
    head: ['path', 'requests', 'requests/s', 'latency p50', 'latency p99', 'latency max', 'errors (connect/read/write/status/timeout)', 'simulator CPU/request', 'simulator CPU share'],
    rows: loads.map((l) => {
      const s = l.summary;
      const e = s.errors;
      return [
        l.path,
        String(s.requests),
        rps(s).toFixed(0),
        showSecondsAsMs(s.p50Us / 1e6, 2),
        showSecondsAsMs(s.p99Us / 1e6, 2),
        showSecondsAsMs(s.maxUs / 1e6, 1),
        `${e.connect}/${e.read}/${e.write}/${e.status}/${e.timeout}`,
        showSecondsAsMs(s.requests > 0 ? l.simulatorCpuS / s.requests : Number.NaN),
        `${((l.simulatorCpuS / (s.durationUs / 1e6)) * 100).toFixed(0)} % of a core`,
      ];
    }),
  };
}

/** The http-floor suite (issue [E] item 5). */
export const httpFloorSuite: BenchSuite = {
  name: 'http-floor',
  title: 'wrk against the device simulator: its requests/s next to the polling load of 10,000 flats every 5 s',
  plan(ctx: BenchContext): string {
    const p = httpFloorPlan(ctx.quick);
    return `wrk -t${p.threads} -c${p.connections} for ${p.seconds} s each on /flat/<ID>/measurements/ and /flat/<ID>/metrics, cycling over ${p.flats} flats with their own credentials; installs wrk (tools/install.sh wrk) when missing`;
  },
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const plan = httpFloorPlan(ctx.quick);
    const tool = ensureTool('wrk', ctx.say);
    if ('skipped' in tool) return { figures: [], details: [], notes: [], skipped: tool.skipped };
    const version = /^wrk (\S+)/.exec(toolVersionLine(tool.path, '-v'))?.[1] ?? 'unknown';
    const dir = mkdtempSync(join(tmpdir(), 'flatline-bench-http-floor-'));
    const say = (line: string) => ctx.say(`http-floor: ${line}`);
    let sim: RunningService | undefined;
    try {
      const credentials = writeCredentials(join(dir, 'credentials.json'), flatIds(plan.flats));
      say(`starting the simulator (${plan.flats} flats) in ${dir}`);
      sim = await startService({
        service: 'devices',
        env: {
          FLATLINE_LOG_LEVEL: 'warn',
          FLATLINE_DEVICES_LISTEN: '127.0.0.1:0',
          FLATLINE_DEVICES_CONTROL_LISTEN: '127.0.0.1:0',
          FLATLINE_DEVICES_METRICS_LISTEN: '127.0.0.1:0',
          FLATLINE_DEVICES_STATE_DIR: dir,
          FLATLINE_DEVICES_CREDENTIALS: join(dir, 'credentials.json'),
          FLATLINE_DEVICES_PERIOD_MS: String(plan.devicePeriodMs),
        },
        logFile: join(dir, 'devices.log'),
      });
      const loads: LoadResult[] = [];
      for (const kind of ['measurements/', 'metrics'] as const) {
        say(`wrk on /flat/<ID>/${kind} for ${plan.seconds} s`);
        loads.push(await load(tool.path, dir, sim, plan, kind, credentials));
      }
      return {
        figures: httpFloorFigures(loads, plan),
        details: [details(loads, plan)],
        notes: [
          `What it shows: the simulator's ceiling with a client that costs next to nothing (wrk, C, keep-alive). At ≥ ${GOAL_MULTIPLE}× the polling load it is not the bottleneck of the polling suite; there the poller and the simulator share the same cores, so the simulator gets less CPU than here.`,
          'wrk keeps its connections open (as ingestion and Prometheus do) and does not verify the server certificate; requests cycle over the flats, each with its own credential. wrk shares the machine\'s cores with the simulator.',
          `A device takes a reading every ${plan.devicePeriodMs / 1000} s; /measurements/ answers the simulator's whole window of readings (60 s by default) as JSON, /metrics the latest reading per device as Prometheus text.`,
        ],
        raw: { plan, loads },
        versions: { wrk: version },
      };
    } finally {
      await sim?.process.stop();
      if (ctx.keep) say(`kept ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    }
  },
};
