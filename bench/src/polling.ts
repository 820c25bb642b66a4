/**
 * The "polling" suite: one ingestion process polling N flats next to
 * Prometheus scraping the same N simulated flats, at the same interval, over
 * the same HTTPS and Basic auth, on the same machine in the same run.
 *
 * For each N and repeat it starts the local stack (one node, one ingestion
 * replica), waits until every flat was fetched once and measures flatline
 * over a window; then it stops ingestion (the simulator stays), starts
 * Prometheus with file-based discovery of the same N flats, waits until every
 * target was scraped once and measures Prometheus over a window of the same
 * length. CPU and resident memory come from /proc for both; completed polls
 * from ingestion's own counter, completed scrapes from Prometheus's `up`
 * series (one sample per scrape, 1 when it succeeded). On 2 shared cores a
 * poller can keep up in one run and collapse in the next, so every repeat is
 * reported, never only the best.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCredentials } from '@flatline/platform';
import { cpuSeconds, rssBytes, freshnessReport, sumMetric, freePort, spawnReady, type ManagedProcess, FREE_PORTS, LocalStack } from '@flatline/stack';
import { ensureTool, mb, showSecondsAsMs, toolVersionLine } from './bench-tools.ts';
import { sleep, type BenchContext, type BenchSuite, type DetailTable, type Figure, type SuiteResult } from './suite.ts';

/** What a run of the suite does. */
export interface PollingPlan {
  readonly flats: readonly number[];
  readonly repeats: number;
  readonly intervalMs: number;
  /** How often each simulated device takes a reading. */
  readonly devicePeriodMs: number;
  readonly windowMs: number;
  /** The longest wait for every flat to be fetched (or scraped) once before measuring. */
  readonly warmUpMs: number;
}

/** The plan for quick (200 flats, one repeat, 20 s) or full (1,000 and 10,000 flats, three repeats, 30 s) runs. */
export function pollingPlan(quick: boolean): PollingPlan {
  return quick
    ? { flats: [200], repeats: 1, intervalMs: 5000, devicePeriodMs: 5000, windowMs: 20_000, warmUpMs: 60_000 }
    : { flats: [1000, 10_000], repeats: 3, intervalMs: 5000, devicePeriodMs: 5000, windowMs: 30_000, warmUpMs: 120_000 };
}

/** The ingestion RSS goal at 10,000 flats. */
const RSS_GOAL_MB = 150;
const RSS_GOAL_FLATS = 10_000;
/** Prometheus's scrape timeout, as ingestion's poll timeout (min(2 s, 0.6 × interval), see stack.ts). */
const SCRAPE_TIMEOUT_S = 2;

/** One system's measurements over a window. */
export interface SideResult {
  /** Polls (scrapes) that succeeded within the window. */
  readonly completed: number;
  /** Polls (scrapes) that ended within the window, failed ones too. */
  readonly attempts: number;
  readonly windowS: number;
  /** CPU seconds of the poller itself (ingestion, or Prometheus). */
  readonly cpuS: number;
  /** CPU seconds of ingestion + storage + query + FerretDB (flatline only). */
  readonly stackCpuS?: number;
  /** The simulator's CPU seconds in the same window (the same devices answer both). */
  readonly devicesCpuS: number;
  /** The largest resident set of the poller sampled each second. */
  readonly rssMaxBytes: number;
  /** Mean duration of one poll (scrape) in seconds. */
  readonly meanDurationS: number;
  /** Why some figures are missing (the counters could not be read). */
  readonly problem?: string;
}

/** One repeat at one flat count. */
export interface RepeatResult {
  readonly flats: number;
  readonly repeat: number;
  readonly flatline?: SideResult;
  readonly prometheus?: SideResult;
  /** Bytes of one answer: flatline's JSON window, Prometheus's text. */
  readonly answerBytes?: { readonly measurements: number; readonly metrics: number };
  /** What went wrong, when a side has no figures. */
  readonly errors: readonly string[];
}

/** The value of an instant-vector answer of Prometheus's /api/v1/query (0 for an empty vector, as sum() of nothing). */
export function instantValue(answer: unknown): number {
  const a = answer as { status?: unknown; error?: unknown; data?: { resultType?: unknown; result?: unknown } } | null;
  if (a === null || typeof a !== 'object') throw new Error('Prometheus answered something that is not JSON object');
  if (a.status !== 'success') throw new Error(`Prometheus query failed: ${String(a.error ?? a.status)}`);
  const data = a.data;
  if (data?.resultType === 'scalar') return Number((data.result as [number, string])[1]);
  if (data?.resultType !== 'vector' || !Array.isArray(data.result)) throw new Error(`Prometheus answered a ${String(data?.resultType)}, not a vector`);
  const first = data.result[0] as { value?: [number, string] } | undefined;
  return first?.value === undefined ? 0 : Number(first.value[1]);
}

/** Runs an instant query at timeS (seconds since the epoch) against Prometheus at address. */
export async function promQuery(address: string, query: string, timeS?: number): Promise<number> {
  const time = timeS === undefined ? '' : `&time=${timeS.toFixed(3)}`;
  const res = await fetch(`http://${address}/api/v1/query?query=${encodeURIComponent(query)}${time}`, { signal: AbortSignal.timeout(15_000) });
  return instantValue(await res.json());
}

/** CPU seconds of pid so far; NaN once it is gone (a crash shows as n/a rather than a failed suite). */
function cpuOf(pid: number): number {
  try {
    return cpuSeconds(pid);
  } catch {
    return Number.NaN;
  }
}

/** What /proc shows over a window: CPU seconds per pid and the largest RSS of one pid. */
async function overWindow(pids: readonly number[], rssPid: number, windowMs: number, tick: (leftS: number) => void): Promise<{ cpu: number[]; rssMax: number; seconds: number }> {
  const start = Date.now();
  const cpu0 = pids.map(cpuOf);
  let rssMax = 0;
  const end = start + windowMs;
  while (Date.now() < end) {
    try {
      rssMax = Math.max(rssMax, rssBytes(rssPid));
    } catch {
      // Gone: its CPU shows n/a.
    }
    tick(Math.ceil((end - Date.now()) / 1000));
    await sleep(Math.min(1000, Math.max(0, end - Date.now())));
  }
  return { cpu: pids.map((p, i) => cpuOf(p) - cpu0[i]!), rssMax, seconds: (Date.now() - start) / 1000 };
}

/** Bytes of the body of an HTTPS GET verified against ca. */
function answerBytes(url: string, user: string, password: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, agent: false, headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => (res.statusCode === 200 ? resolve(n) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`${url}: no answer in 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Waits until every flat was fetched once (its first answer carries a whole window of readings), at most plan.warmUpMs. */
async function warmUpFlatline(stack: LocalStack, flats: number, plan: PollingPlan, say: (line: string) => void): Promise<void> {
  const end = Date.now() + plan.warmUpMs;
  for (;;) {
    const fetched = (await freshnessReport(stack.queryAddress).catch(() => undefined))?.flatCount ?? 0;
    if (fetched >= flats) return;
    if (Date.now() > end) return say(`only ${fetched} of ${flats} flats fetched after the warm-up; measuring anyway`);
    say(`warming up flatline, ${fetched} of ${flats} flats fetched`);
    await sleep(2000);
  }
}

/** Ingestion's poll counters. */
type Counters = Record<'ok' | 'all' | 'durationSum' | 'durationCount', number>;

/** A collapsing ingestion (its event loop busy with reconnects) answers /metrics late: wait longer than probes.ts does. */
const COUNTERS_TIMEOUT_MS = 20_000;
const COUNTERS_TRIES = 3;

/** Ingestion's poll counters from its /metrics; undefined when it does not answer after a few tries. */
async function ingestionCounters(address: string): Promise<Counters | undefined> {
  for (let i = 0; i < COUNTERS_TRIES; i++) {
    try {
      const text = await (await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(COUNTERS_TIMEOUT_MS) })).text();
      return {
        ok: sumMetric(text, 'flatline_ingestion_polls_total', 'outcome="ok"'),
        all: sumMetric(text, 'flatline_ingestion_polls_total'),
        durationSum: sumMetric(text, 'flatline_ingestion_poll_duration_seconds_sum'),
        durationCount: sumMetric(text, 'flatline_ingestion_poll_duration_seconds_count'),
      };
    } catch {
      // Try again: a late answer is still an answer.
    }
  }
  return undefined;
}

/** flatline over a window: ingestion's counters and /proc of its processes. */
async function measureFlatline(stack: LocalStack, plan: PollingPlan, say: (line: string) => void): Promise<SideResult> {
  const ingestion = stack.ingestion[0]!;
  const devices = stack.devices.process.pid!;
  // storage, query and FerretDB: what ingestion's polls cost downstream.
  const rest = stack.processes().filter((p) => p !== stack.devices.process && p !== ingestion.process && p.pid !== undefined);
  const before = await ingestionCounters(ingestion.metrics);
  const pids = [ingestion.process.pid!, devices, ...rest.map((p) => p.pid!)];
  const w = await overWindow(pids, ingestion.process.pid!, plan.windowMs, (left) => {
    if (left % 5 === 0) say(`measuring flatline, ${left} s left`);
  });
  const after = before === undefined ? undefined : await ingestionCounters(ingestion.metrics);
  const [ingestionCpu, devicesCpu, ...restCpu] = w.cpu;
  const delta = (k: keyof Counters) => (before === undefined || after === undefined ? Number.NaN : after[k] - before[k]);
  const durations = delta('durationCount');
  return {
    ...(after === undefined ? { problem: `ingestion's /metrics did not answer within ${COUNTERS_TIMEOUT_MS / 1000} s (${COUNTERS_TRIES} tries): polls not counted` } : {}),
    completed: delta('ok'),
    attempts: delta('all'),
    windowS: w.seconds,
    cpuS: ingestionCpu!,
    stackCpuS: restCpu.reduce((a, b) => a + b, ingestionCpu!),
    devicesCpuS: devicesCpu!,
    rssMaxBytes: w.rssMax,
    meanDurationS: durations > 0 ? delta('durationSum') / durations : Number.NaN,
  };
}

/** The Prometheus configuration: one scrape job over the flats of targetsFile, with the shared credential. */
export function prometheusConfig(o: { intervalMs: number; caFile: string; user: string; passwordFile: string; targetsFile: string }): string {
  // JSON is YAML: no YAML library needed, and no quoting to get wrong.
  const config = {
    global: { scrape_interval: `${o.intervalMs / 1000}s`, scrape_timeout: `${SCRAPE_TIMEOUT_S}s` },
    scrape_configs: [
      {
        job_name: 'flats',
        scheme: 'https',
        // The exposed flat label is the target's own; the devices stamp each reading with when it was taken.
        honor_labels: true,
        tls_config: { ca_file: o.caFile },
        basic_auth: { username: o.user, password_file: o.passwordFile },
        file_sd_configs: [{ files: [o.targetsFile], refresh_interval: '5m' }],
        relabel_configs: [{ source_labels: ['flat'], regex: '(.+)', target_label: '__metrics_path__', replacement: '/flat/${1}/metrics' }],
      },
    ],
  };
  return `${JSON.stringify(config, null, 1)}\n`;
}

/** The file_sd targets: every flat at the simulator's address, told apart by its flat label. */
export function fileSdTargets(address: string, flatIds: readonly string[]): string {
  return JSON.stringify(flatIds.map((flat) => ({ targets: [address], labels: { flat } })));
}

/** Writes into dir the scrape configuration of every flat of stack (prometheus.yml, its targets and password files); returns its path. */
export function writeScrapeConfig(dir: string, stack: LocalStack, user: string, password: string): string {
  mkdirSync(dir, { recursive: true });
  const passwordFile = join(dir, 'scrape-password');
  writeFileSync(passwordFile, password, { mode: 0o600 });
  const targetsFile = join(dir, 'flats.json');
  writeFileSync(targetsFile, fileSdTargets(stack.devices.addresses['https']!, [...loadCredentials(stack.credentialsFile).keys()]));
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, prometheusConfig({ intervalMs: stack.options.intervalMs, caFile: join(stack.options.stateDir, 'devices', 'ca.pem'), user, passwordFile, targetsFile }));
  return configFile;
}

/** Starts Prometheus on a free loopback port with its configuration and storage in dir. */
export async function startPrometheus(bin: string, dir: string, stack: LocalStack, user: string, password: string): Promise<{ process: ManagedProcess; address: string }> {
  const configFile = writeScrapeConfig(dir, stack, user, password);
  const address = `127.0.0.1:${await freePort('127.0.0.1')}`;
  const { process } = await spawnReady({
    name: 'prometheus',
    command: bin,
    args: [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=${address}`, '--log.level=info'],
    logFile: join(dir, 'prometheus.log'),
    ready: (line) => (line.includes('Server is ready to receive web requests') ? 'ready' : undefined),
    readyTimeoutMs: 60_000,
  });
  return { process, address };
}

/**
 * Waits until a scraper (Prometheus, or VictoriaMetrics: the same query API)
 * scraped every target once (each has an up series), at most warmUpMs;
 * resolves with what fell short, undefined when nothing did.
 */
export async function warmUpScraper(name: string, address: string, flats: number, warmUpMs: number, say: (line: string) => void): Promise<string | undefined> {
  const end = Date.now() + warmUpMs;
  for (;;) {
    const scraped = await promQuery(address, 'count(up{job="flats"})').catch(() => 0);
    if (scraped >= flats) return undefined;
    if (Date.now() > end) return `only ${scraped} of ${flats} targets scraped after ${warmUpMs / 1000} s of warm-up; measuring anyway`;
    say(`warming up ${name}, ${scraped} of ${flats} targets scraped`);
    await sleep(2000);
  }
}

/** Prometheus over a window: /proc of its process, and its own up and scrape_duration_seconds series. */
async function measurePrometheus(prometheus: { process: ManagedProcess; address: string }, stack: LocalStack, plan: PollingPlan, say: (line: string) => void): Promise<SideResult> {
  const pid = prometheus.process.pid!;
  const w = await overWindow([pid, stack.devices.process.pid!], pid, plan.windowMs, (left) => {
    if (left % 5 === 0) say(`measuring Prometheus, ${left} s left`);
  });
  const endS = Date.now() / 1000;
  // A scrape started just before the end is stored when it finishes (at most the scrape timeout later).
  await sleep(SCRAPE_TIMEOUT_S * 1000 + 500);
  const range = `${Math.round(w.seconds * 1000)}ms`;
  const q = (expr: string) => promQuery(prometheus.address, expr, endS);
  return {
    completed: await q(`sum(sum_over_time(up{job="flats"}[${range}]))`),
    attempts: await q(`sum(count_over_time(up{job="flats"}[${range}]))`),
    windowS: w.seconds,
    cpuS: w.cpu[0]!,
    devicesCpuS: w.cpu[1]!,
    rssMaxBytes: w.rssMax,
    meanDurationS: (await q(`sum(sum_over_time(scrape_duration_seconds{job="flats"}[${range}]))`)) / Math.max(1, await q(`sum(count_over_time(scrape_duration_seconds{job="flats"}[${range}]))`)),
  };
}

/** Starts Prometheus, waits until every flat was scraped once, measures it over the window and stops it. */
async function runPrometheus(
  bin: string,
  dir: string,
  stack: LocalStack,
  flats: number,
  plan: PollingPlan,
  credential: { user: string; password: string },
  say: (line: string) => void,
): Promise<SideResult> {
  say('starting Prometheus');
  const running = await startPrometheus(bin, dir, stack, credential.user, credential.password);
  try {
    const short = await warmUpScraper('Prometheus', running.address, flats, plan.warmUpMs, say);
    if (short !== undefined) say(short);
    const side = await measurePrometheus(running, stack, plan, say);
    say(`Prometheus: ${side.completed} scrapes completed`);
    return side;
  } finally {
    await running.process.stop();
  }
}

/** One repeat at one flat count: flatline, then Prometheus against the same simulator. */
async function runRepeat(flats: number, repeat: number, plan: PollingPlan, prometheusBin: string, ctx: BenchContext): Promise<RepeatResult> {
  const say = (line: string) => ctx.say(`polling ${flats} flats #${repeat}: ${line}`);
  const dir = mkdtempSync(join(tmpdir(), 'flatline-bench-polling-'));
  const user = 'prometheus';
  const password = randomBytes(18).toString('base64url');
  const errors: string[] = [];
  let flatline: SideResult | undefined;
  let prometheus: SideResult | undefined;
  let bytes: RepeatResult['answerBytes'];
  say(`starting the stack in ${dir}`);
  let stack: LocalStack | undefined;
  const failed =
    (side: string) =>
    (err: unknown): undefined => {
      const message = (err as Error).message;
      errors.push(`${side}: ${message.split('\n')[0]!}`);
      say(`${side} failed: ${message}`);
      return undefined;
    };
  try {
    stack = await LocalStack.start({
      stateDir: join(dir, 'stack'),
      host: '127.0.0.1',
      ports: FREE_PORTS,
      flats,
      intervalMs: plan.intervalMs,
      replicas: 1,
      nodes: 1,
      logLevel: 'warn',
      env: {
        devices: {
          FLATLINE_DEVICES_PERIOD_MS: String(plan.devicePeriodMs),
          // A window of one reading period: each answer of /measurements/ then
          // holds what /metrics holds (the latest reading per device), so both
          // pollers parse the same data.
          FLATLINE_DEVICES_WINDOW_MS: String(plan.devicePeriodMs),
          FLATLINE_DEVICES_SCRAPE_CREDENTIAL: `${user}:${password}`,
        },
      },
    });
    const started = stack;
    // The halves are independent: a flatline collapse still leaves Prometheus measured, and the other way round.
    flatline = await warmUpFlatline(started, flats, plan, say)
      .then(() => measureFlatline(started, plan, say))
      .catch(failed('flatline'));
    say(`flatline: ${flatline?.completed ?? 'no'} polls completed; stopping ingestion (the simulator stays)`);
    await started.ingestion[0]?.process.stop();
    bytes = await measureAnswers(started, user, password).catch(failed('answer sizes'));
    prometheus = await runPrometheus(prometheusBin, join(dir, 'prometheus'), started, flats, plan, { user, password }, say).catch(failed('Prometheus'));
  } catch (err) {
    failed('stack')(err);
  } finally {
    await stack?.stop();
    if (ctx.keep) say(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  return { flats, repeat, flatline, prometheus, answerBytes: bytes, errors };
}

/** Bytes of flat 1's JSON answer (its own credential) and of its exposition (the shared credential). */
async function measureAnswers(stack: LocalStack, user: string, password: string): Promise<{ measurements: number; metrics: number }> {
  const own = loadCredentials(stack.credentialsFile).get('1')!;
  const ca = readFileSync(join(stack.options.stateDir, 'devices', 'ca.pem'), 'utf8');
  const base = `https://${stack.devices.addresses['https']}/flat/1`;
  return {
    measurements: await answerBytes(`${base}/measurements/`, own.username, own.password, ca),
    metrics: await answerBytes(`${base}/metrics`, user, password, ca),
  };
}

/** Polls (scrapes) that succeeded per interval. */
function perInterval(side: SideResult, intervalMs: number): number {
  return side.completed / (side.windowS / (intervalMs / 1000));
}

/** CPU seconds per completed poll (NaN when none completed). */
function perPoll(cpuS: number, side: SideResult): number {
  return side.completed > 0 ? cpuS / side.completed : Number.NaN;
}

/** A ratio, undefined when either side is not a positive finite number. */
function ratio(a: number, b: number): number | undefined {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : undefined;
}

/** CPU per poll as text; a poller that burnt CPU and completed nothing says so rather than n/a. */
function cpuText(perPollS: number, side: SideResult | undefined, cpuS = side?.cpuS ?? Number.NaN): string {
  if (side !== undefined && side.completed === 0) return `${cpuS.toFixed(1)} s CPU, no poll completed`;
  return showSecondsAsMs(perPollS);
}

/** The headline figures: per flat count and repeat, flatline next to Prometheus. */
export function pollingFigures(results: readonly RepeatResult[], intervalMs: number): Figure[] {
  const figures: Figure[] = [];
  for (const r of results) {
    const at = `${r.flats} flats (repeat ${r.repeat})`;
    const f = r.flatline;
    const p = r.prometheus;
    const pCpu = p === undefined ? Number.NaN : perPoll(p.cpuS, p);
    const fCpu = f === undefined ? Number.NaN : perPoll(f.cpuS, f);
    const cpuRatio = ratio(fCpu, pCpu);
    figures.push({
      name: `ingestion CPU/poll vs Prometheus CPU/scrape, ${at}`,
      flatline: cpuText(fCpu, f),
      versus: cpuText(pCpu, p),
      ratio: cpuRatio,
      goal: '≤ 1.0× Prometheus',
      met: cpuRatio === undefined ? undefined : cpuRatio <= 1,
    });
    const sCpu = f?.stackCpuS === undefined ? Number.NaN : perPoll(f.stackCpuS, f);
    figures.push({ name: `stack CPU/poll (ingestion + storage + query + FerretDB) vs Prometheus CPU/scrape, ${at}`, flatline: cpuText(sCpu, f, f?.stackCpuS), versus: cpuText(pCpu, p), ratio: ratio(sCpu, pCpu) });
    const fRss = f?.rssMaxBytes ?? Number.NaN;
    const goal = r.flats === RSS_GOAL_FLATS ? `ingestion ≤ ${RSS_GOAL_MB} MB` : undefined;
    figures.push({
      name: `resident memory, ingestion vs Prometheus, ${at}`,
      flatline: mb(fRss),
      versus: mb(p?.rssMaxBytes ?? Number.NaN),
      ratio: ratio(fRss, p?.rssMaxBytes ?? Number.NaN),
      ...(goal === undefined ? {} : { goal, met: f === undefined ? undefined : fRss <= RSS_GOAL_MB * 2 ** 20 }),
    });
    const fDone = f === undefined ? Number.NaN : perInterval(f, intervalMs);
    const pDone = p === undefined ? Number.NaN : perInterval(p, intervalMs);
    figures.push({
      name: `completed polls (scrapes) per ${intervalMs / 1000} s interval, ${at}`,
      flatline: Number.isFinite(fDone) ? `${fDone.toFixed(0)} of ${r.flats}` : 'n/a',
      versus: Number.isFinite(pDone) ? `${pDone.toFixed(0)} of ${r.flats}` : 'n/a',
      ratio: ratio(fDone, pDone),
    });
  }
  return figures;
}

/** The detail table: every repeat, both systems. */
export function pollingDetails(results: readonly RepeatResult[], intervalMs: number): DetailTable {
  const head = ['flats', 'repeat', 'poller', 'completed/interval', 'failed', 'CPU/poll', 'stack CPU/poll', 'RSS max', 'mean poll time', 'simulator CPU/poll', 'answer bytes', 'window'];
  const rows: string[][] = [];
  for (const r of results) {
    const sides: Array<[string, SideResult | undefined, number | undefined]> = [
      ['flatline ingestion', r.flatline, r.answerBytes?.measurements],
      ['Prometheus', r.prometheus, r.answerBytes?.metrics],
    ];
    for (const [name, s, bytes] of sides) {
      if (s === undefined) {
        rows.push([String(r.flats), String(r.repeat), name, `failed: ${r.errors.join('; ') || 'not measured'}`]);
        continue;
      }
      rows.push([
        String(r.flats),
        String(r.repeat),
        name,
        Number.isFinite(s.completed) ? `${perInterval(s, intervalMs).toFixed(0)} (${((perInterval(s, intervalMs) / r.flats) * 100).toFixed(1)} %)` : `n/a: ${s.problem ?? 'not counted'}`,
        Number.isFinite(s.attempts) ? String(s.attempts - s.completed) : 'n/a',
        showSecondsAsMs(perPoll(s.cpuS, s)),
        s.stackCpuS === undefined ? '' : showSecondsAsMs(perPoll(s.stackCpuS, s)),
        mb(s.rssMaxBytes),
        showSecondsAsMs(s.meanDurationS, 1),
        showSecondsAsMs(perPoll(s.devicesCpuS, s)),
        bytes === undefined ? 'n/a' : String(bytes),
        `${s.windowS.toFixed(1)} s`,
      ]);
    }
  }
  return { title: 'polling: every repeat (CPU and RSS from /proc over the window; completed = succeeded)', head, rows };
}

/** Caveats printed under the table. */
function pollingNotes(plan: PollingPlan): string[] {
  return [
    'Prometheus scrapes every flat with one shared credential (FLATLINE_DEVICES_SCRAPE_CREDENTIAL: a scrape job takes one basic_auth), while flatline polls each flat with its own: the simulator checks one credential per request either way.',
    `Each simulated device takes a reading every ${plan.devicePeriodMs / 1000} s; both poll every ${plan.intervalMs / 1000} s with a ${SCRAPE_TIMEOUT_S} s timeout. The simulator's window is set to one reading period, so flatline's JSON answer and Prometheus's text answer both hold the latest reading of each device: the same data, in different formats (column "answer bytes").`,
    'Prometheus runs after flatline, against the same simulator, with ingestion stopped (storage, query and FerretDB stay up, idle); Prometheus stores what it scrapes in its own TSDB, flatline forwards to storage and MongoDB (the stack CPU figure).',
    'CPU is utime + stime from /proc/<pid>/stat over the window, RSS the largest VmRSS sampled each second; completed scrapes are the sum of Prometheus\'s up samples (1 per successful scrape) over the same window.',
  ];
}

/** Runs a polling plan (the suite runs pollingPlan(quick); other flat counts or windows are for development). */
export async function runPolling(plan: PollingPlan, ctx: BenchContext): Promise<SuiteResult> {
  const tool = ensureTool('prometheus', ctx.say);
  if ('skipped' in tool) return { figures: [], details: [], notes: [], skipped: tool.skipped };
  const version = /version (\S+)/.exec(toolVersionLine(tool.path))?.[1] ?? 'unknown';
  const results: RepeatResult[] = [];
  for (const flats of plan.flats) {
    for (let repeat = 1; repeat <= plan.repeats; repeat++) results.push(await runRepeat(flats, repeat, plan, tool.path, ctx));
  }
  const failed = results.filter((r) => r.errors.length > 0).map((r) => `${r.flats} flats, repeat ${r.repeat}: ${r.errors.join('; ')}`);
  return {
    figures: pollingFigures(results, plan.intervalMs),
    details: [pollingDetails(results, plan.intervalMs)],
    notes: [...pollingNotes(plan), ...failed.map((f) => `failed: ${f}`)],
    raw: { plan, results },
    versions: { prometheus: version },
  };
}

/** The polling suite (issue [E] item 1). */
export const pollingSuite: BenchSuite = {
  name: 'polling',
  title: 'one ingestion process polling N flats vs Prometheus scraping the same simulated flats',
  plan(ctx: BenchContext): string {
    const p = pollingPlan(ctx.quick);
    return (
      `flats ${p.flats.join(', ')} × ${p.repeats} repeat(s); interval ${p.intervalMs / 1000} s; a reading per device every ${p.devicePeriodMs / 1000} s; ` +
      `window ${p.windowMs / 1000} s after warm-up, flatline (one ingestion replica) then Prometheus (file_sd, https, one shared credential); ` +
      'installs Prometheus (tools/install.sh prometheus) when missing'
    );
  },
  run(ctx: BenchContext): Promise<SuiteResult> {
    return runPolling(pollingPlan(ctx.quick), ctx);
  },
};
