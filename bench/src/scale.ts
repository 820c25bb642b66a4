/**
 * The "scale" suite (issue [P]): the stack `npm start` runs (2 nodes, 2
 * replicas of each service, FerretDB on PostgreSQL) polling N flats × 3
 * devices, a reading per device every 5 s, for M minutes, then Prometheus and
 * VictoriaMetrics scraping the same simulated devices, one after the other,
 * on the same machine in the same run.
 *
 * flatline's figure is knowledge freshness as query reports it (GetFreshness:
 * the age of each flat's last successful fetch, p50 and p99 over the flats),
 * sampled every 5 s and reported per minute (the worst p99 of the minute);
 * beside it the outbox backlog of each ingestion replica, CPU and RSS of each
 * component (process trees: postgres forks a backend per connection). At the
 * end the device link is cut (Toxiproxy), the outboxes drain, and PostgreSQL
 * counts the gaps. The peers' equivalent figure is the age of each target's
 * last scrape in their TSDB, `time() - timestamp(up)` (of `up == 1` it would be the query time).
 *
 * Three systems at once on 2 cores would measure the competition for them,
 * so they take turns against the same simulator: flatline, then (its
 * ingestion stopped, the rest idle) Prometheus, then VictoriaMetrics.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  DEFAULT_STACK_MESH,
  FREE_PORTS,
  freePort,
  freshnessReport,
  LocalStack,
  metricValue,
  readingGapsSql,
  spawnReady,
  treeStats,
  treeStatsOf,
  type ManagedProcess,
  type SqlGapReport,
} from '@flatline/stack';
import { ensureTool, mb, showSecondsAsMs, toolVersionLine } from './bench-tools.ts';
import { promQuery, startPrometheus, warmUpScraper, writeScrapeConfig } from './polling.ts';
import { percentile, sleep, type BenchContext, type BenchSuite, type DetailTable, type Figure, type SuiteResult } from './suite.ts';

/** What a run of the suite does. */
export interface ScalePlan {
  readonly flats: number;
  readonly minutes: number;
  readonly repeats: number;
  /** Minutes each peer scrapes (after its warm-up). */
  readonly peerMinutes: number;
  readonly intervalMs: number;
  readonly devicePeriodMs: number;
  readonly devicesPerFlat: number;
  readonly nodes: number;
  readonly replicas: number;
  readonly sampleMs: number;
  /** The longest wait for every target to be scraped once before a peer's window. */
  readonly peerWarmUpMs: number;
  /** The longest wait for the outboxes to drain once the device link is cut. */
  readonly drainMs: number;
}

/** Sizes given on the command line (`flatline bench --only scale --flats N --minutes M --repeats R`). */
export interface ScaleSizes {
  readonly flats?: number;
  readonly minutes?: number;
  readonly repeats?: number;
}

/** The plan: quick (2,000 flats, 2 minutes, one repeat) or full (10,000 flats, 10 minutes, three repeats), as sizes override. */
export function scalePlan(quick: boolean, sizes: ScaleSizes = {}): ScalePlan {
  const base = quick ? { flats: 2000, minutes: 2, repeats: 1, peerMinutes: 1 } : { flats: 10_000, minutes: 10, repeats: 3, peerMinutes: 3 };
  const minutes = sizes.minutes ?? base.minutes;
  return {
    ...base,
    flats: sizes.flats ?? base.flats,
    minutes,
    repeats: sizes.repeats ?? base.repeats,
    peerMinutes: Math.min(base.peerMinutes, minutes),
    intervalMs: 5000,
    devicePeriodMs: 5000,
    devicesPerFlat: 3,
    nodes: 2,
    replicas: 2,
    sampleMs: 5000,
    peerWarmUpMs: 180_000,
    drainMs: 300_000,
  };
}

/** The goals of the issue. */
export const SCALE_GOALS = { freshnessP99S: 10, stretchP99S: 6, ingestionRssMb: 150 } as const;

/** One sample of a system's knowledge freshness (seconds), and for flatline its outboxes. */
export interface ScaleSample {
  /** Seconds since the window began. */
  readonly t: number;
  readonly p50?: number;
  readonly p99?: number;
  readonly worst?: number;
  /** Flats (targets) with a successful fetch (scrape). */
  readonly visible?: number;
  /** Readings in each ingestion replica's outbox (flatline only; undefined for a replica that did not answer). */
  readonly outbox?: ReadonlyArray<number | undefined>;
  readonly error?: string;
}

/** One minute of samples. */
export interface MinuteRow {
  readonly minute: number;
  /** Median of the samples' p50. */
  readonly p50: number;
  /** The worst sample's p99. */
  readonly p99: number;
  readonly worst: number;
  /** The fewest visible in a sample. */
  readonly visibleMin: number;
  /** The largest outbox of each replica in the minute. */
  readonly outboxMax?: readonly number[];
  readonly failedSamples: number;
}

/** Samples grouped by minute (1-based); a minute's figures come from its samples that answered. */
export function perMinute(samples: readonly ScaleSample[]): MinuteRow[] {
  const minutes = new Map<number, ScaleSample[]>();
  for (const s of samples) {
    const m = Math.floor(s.t / 60) + 1;
    minutes.set(m, [...(minutes.get(m) ?? []), s]);
  }
  return [...minutes.entries()]
    .sort(([a], [b]) => a - b)
    .map(([minute, list]) => {
      const ok = list.filter((s) => s.error === undefined && s.p99 !== undefined);
      const replicas = Math.max(0, ...list.map((s) => s.outbox?.length ?? 0));
      return {
        minute,
        p50: percentile(ok.map((s) => s.p50!), 50),
        p99: ok.length === 0 ? Number.NaN : Math.max(...ok.map((s) => s.p99!)),
        worst: ok.length === 0 ? Number.NaN : Math.max(...ok.map((s) => s.worst ?? Number.NaN)),
        visibleMin: ok.length === 0 ? 0 : Math.min(...ok.map((s) => s.visible ?? 0)),
        ...(replicas === 0 ? {} : { outboxMax: Array.from({ length: replicas }, (_, i) => Math.max(0, ...list.map((s) => s.outbox?.[i] ?? 0))) }),
        failedSamples: list.length - ok.length,
      };
    });
}

/** The worst minute's p99 after the first (NaN when there is none, or one had no answer). */
export function worstSteadyP99(rows: readonly MinuteRow[]): number {
  const steady = rows.filter((r) => r.minute > 1);
  if (steady.length === 0) return Number.NaN;
  return Math.max(...steady.map((r) => r.p99));
}

/** A component's CPU seconds over the window and its largest RSS. */
export interface ComponentUse {
  readonly name: string;
  readonly cpuS: number;
  readonly rssMaxBytes: number;
}

/** flatline's side of one repeat. */
export interface FlatlineSide {
  readonly samples: readonly ScaleSample[];
  readonly windowS: number;
  readonly components: readonly ComponentUse[];
  /** Successful polls of all replicas over the window after the first minute, and ingestion's CPU over it. */
  readonly steadyPolls: number;
  readonly steadyIngestionCpuS: number;
  /** Readings in each replica's outbox at the end of the window. */
  readonly outboxAtEnd: ReadonlyArray<number | undefined>;
  /**
   * Readings a device no longer had when polled (a flat not polled within its
   * window), and fetches refused by a full outbox, since ingestion started
   * (with the stack, just before the window): gaps flatline never held, as
   * ingestion counted them.
   */
  readonly missed: number;
  readonly outboxFull: number;
  /** Seconds the outboxes took to drain once the device link was cut (undefined: not within plan.drainMs). */
  readonly drainS?: number;
  readonly gaps?: SqlGapReport;
  readonly problems: readonly string[];
}

/** A peer's side of one repeat. */
export interface PeerSide {
  readonly name: 'Prometheus' | 'VictoriaMetrics';
  readonly version: string;
  readonly samples: readonly ScaleSample[];
  readonly windowS: number;
  readonly cpuS: number;
  readonly rssMaxBytes: number;
  readonly scrapes: number;
  readonly problems: readonly string[];
}

/** One repeat. */
export interface ScaleRepeat {
  readonly repeat: number;
  readonly flatline?: FlatlineSide;
  readonly peers: readonly PeerSide[];
  readonly errors: readonly string[];
}

/** Processes of a stack by name, e.g. ingestion-0, storage-1, ferretdb, postgres. */
function stackProcesses(stack: LocalStack): Array<{ name: string; pid: number }> {
  return stack
    .processes()
    .filter((p): p is ManagedProcess & { pid: number } => p.pid !== undefined)
    .map((p) => ({ name: p.name, pid: p.pid }));
}

/** Outbox readings of each ingestion replica (undefined for one that is down or does not answer). */
async function outboxes(stack: LocalStack): Promise<Array<number | undefined>> {
  return Promise.all(stack.ingestion.map((r) => (r?.process.running ? metricValue(r.metrics, 'flatline_ingestion_outbox_readings').catch(() => undefined) : Promise.resolve(undefined))));
}

/** A counter summed over the running ingestion replicas (NaN when one does not answer). */
async function ingestionCounter(stack: LocalStack, name: string, labels = ''): Promise<number> {
  const each = await Promise.all(stack.ingestion.map((r) => (r?.process.running ? metricValue(r.metrics, name, labels).catch(() => Number.NaN) : 0)));
  return each.reduce((a, b) => a + b, 0);
}

/** Samples knowledge freshness (and outboxes) every plan.sampleMs for ms; CPU and RSS of every stack process as it goes. */
async function watchFlatline(stack: LocalStack, plan: ScalePlan, say: (line: string) => void): Promise<FlatlineSide> {
  const windowMs = plan.minutes * 60_000;
  const start = Date.now();
  const problems: string[] = [];
  const samples: ScaleSample[] = [];
  /** CPU seconds of each component since the window began, and its process tree's last reading. */
  const cpuUsed = new Map<string, number>();
  const cpuRaw = new Map<string, number>();
  const rssMax = new Map<string, number>();
  let steadyPolls0: number | undefined;
  let steadyCpu0: number | undefined;
  const ingestionCpu = (): number => [...cpuUsed].filter(([n]) => n.startsWith('ingestion')).reduce((a, [, v]) => a + v, 0);
  const account = (): void => {
    const processes = stackProcesses(stack);
    const stats = treeStatsOf(processes.map((p) => p.pid));
    for (const p of processes) {
      const use = stats.get(p.pid)!;
      const last = cpuRaw.get(p.name);
      // A restarted process counts from zero again: what it used since is all new.
      const used = last === undefined ? 0 : use.cpuS >= last ? use.cpuS - last : use.cpuS;
      cpuRaw.set(p.name, use.cpuS);
      cpuUsed.set(p.name, (cpuUsed.get(p.name) ?? 0) + used);
      rssMax.set(p.name, Math.max(rssMax.get(p.name) ?? 0, use.rssBytes));
    }
  };
  account();
  while (Date.now() - start < windowMs) {
    const t = (Date.now() - start) / 1000;
    const [report, outbox] = await Promise.all([freshnessReport(stack.queryAddress, { limit: 1 }, plan.sampleMs).catch((err: unknown) => err as Error), outboxes(stack)]);
    account();
    if (report instanceof Error) samples.push({ t, outbox, error: report.message });
    else samples.push({ t, p50: report.p50AgeSeconds, p99: report.p99AgeSeconds, worst: report.worstAgeSeconds, visible: report.flatCount, outbox });
    if (steadyPolls0 === undefined && t >= 60) {
      steadyPolls0 = await ingestionCounter(stack, 'flatline_ingestion_polls_total', 'outcome="ok"');
      steadyCpu0 = ingestionCpu();
    }
    const last = samples.at(-1)!;
    if (samples.length % 6 === 1) {
      say(
        last.error === undefined
          ? `minute ${Math.floor(t / 60) + 1}: freshness p50 ${last.p50!.toFixed(1)} s, p99 ${last.p99!.toFixed(1)} s, ${last.visible} of ${plan.flats} flats visible; outboxes ${outbox.map((o) => o ?? 'n/a').join(', ')}`
          : `minute ${Math.floor(t / 60) + 1}: query did not answer: ${last.error}`,
      );
    }
    await sleep(Math.max(0, Math.min(plan.sampleMs - (Date.now() - start - t * 1000), start + windowMs - Date.now())));
  }
  const windowS = (Date.now() - start) / 1000;
  account();
  const outboxAtEnd = await outboxes(stack);
  const polls = await ingestionCounter(stack, 'flatline_ingestion_polls_total', 'outcome="ok"');
  const missed = await ingestionCounter(stack, 'flatline_ingestion_readings_missed_total');
  const outboxFull = await ingestionCounter(stack, 'flatline_ingestion_outbox_full_fetches_total');
  if (steadyPolls0 === undefined) problems.push('the window was shorter than a minute: no steady part to count polls over');
  return {
    samples,
    windowS,
    components: [...cpuUsed.keys()].sort().map((name) => ({ name, cpuS: cpuUsed.get(name)!, rssMaxBytes: rssMax.get(name)! })),
    steadyPolls: steadyPolls0 === undefined ? Number.NaN : polls - steadyPolls0,
    steadyIngestionCpuS: steadyCpu0 === undefined ? Number.NaN : ingestionCpu() - steadyCpu0,
    outboxAtEnd,
    missed,
    outboxFull,
    problems,
  };
}

/** Cuts ingestion's device link, waits for the outboxes to drain and counts the gaps in PostgreSQL. */
async function drainAndCount(stack: LocalStack, plan: ScalePlan, say: (line: string) => void): Promise<{ drainS?: number; gaps?: SqlGapReport; problems: string[] }> {
  const problems: string[] = [];
  const toxiproxy = stack.toxiproxy;
  if (toxiproxy === undefined) return { problems: ['no Toxiproxy in this stack: the device link cannot be cut, so neither drain nor gaps are measured'] };
  await toxiproxy.client.setProxyEnabled('ingestion-devices', false);
  say('device link cut (Toxiproxy ingestion-devices disabled): waiting for the outboxes to drain');
  const start = Date.now();
  let drainS: number | undefined;
  let saidAt = start;
  while (Date.now() - start < plan.drainMs) {
    const held = await outboxes(stack);
    if (held.every((h) => h === 0)) {
      drainS = (Date.now() - start) / 1000;
      break;
    }
    if (Date.now() - saidAt >= 30_000) {
      saidAt = Date.now();
      say(`draining for ${Math.round((saidAt - start) / 1000)} s: outboxes ${held.map((h) => h ?? 'n/a').join(', ')}`);
    }
    await sleep(1000);
  }
  if (drainS === undefined) {
    // Older fetches still waiting while newer ones are stored read as holes: a count now would accuse what is only late.
    const held = (await outboxes(stack)).map((h) => h ?? 'n/a').join(' / ');
    return { problems: [...problems, `the outboxes did not drain within ${plan.drainMs / 1000} s of cutting the device link (they still hold ${held} readings): gaps not counted`] };
  }
  const url = stack.postgresqlUrl;
  if (url === undefined) return { ...(drainS === undefined ? {} : { drainS }), problems: [...problems, 'FerretDB runs on SQLite here: gaps are counted on PostgreSQL only'] };
  say('counting gaps in PostgreSQL');
  const gaps = await readingGapsSql(url, new URL(stack.db.uri).pathname.slice(1)).catch((err: unknown) => {
    problems.push(`gap count failed: ${(err as Error).message}`);
    return undefined;
  });
  return { ...(drainS === undefined ? {} : { drainS }), ...(gaps === undefined ? {} : { gaps }), problems };
}

/** The peer's freshness over its targets, as flatline's: ages of the last successful scrape. */
async function peerSample(address: string, t: number): Promise<ScaleSample> {
  // timestamp() of a selector is its sample's time, here each target's last scrape; of `up == 1` it would be the
  // query's own time (a comparison makes new samples), and every age 0 s (seen). Failed scrapes show in `visible`.
  const age = 'time() - timestamp(up{job="flats"})';
  try {
    const [p50, p99, worst, visible] = await Promise.all([promQuery(address, `quantile(0.5, ${age})`), promQuery(address, `quantile(0.99, ${age})`), promQuery(address, `max(${age})`), promQuery(address, `count(up{job="flats"} == 1)`)]);
    return { t, p50, p99, worst, visible };
  } catch (err) {
    return { t, error: (err as Error).message };
  }
}

/** Starts VictoriaMetrics (single node) scraping what prometheus.yml in dir names, on a free loopback port. */
async function startVictoriaMetrics(bin: string, dir: string, stack: LocalStack, user: string, password: string): Promise<{ process: ManagedProcess; address: string }> {
  const configFile = writeScrapeConfig(dir, stack, user, password);
  // The same job, less what VictoriaMetrics refuses to parse: file_sd's refresh_interval (it rereads the file on its own).
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as { scrape_configs: Array<{ file_sd_configs?: Array<Record<string, unknown>> }> };
  for (const job of config.scrape_configs) for (const sd of job.file_sd_configs ?? []) delete sd['refresh_interval'];
  writeFileSync(configFile, `${JSON.stringify(config, null, 1)}\n`);
  const address = `127.0.0.1:${await freePort('127.0.0.1')}`;
  const { process } = await spawnReady({
    name: 'victoria-metrics',
    command: bin,
    args: [
      `-promscrape.config=${configFile}`,
      `-storageDataPath=${join(dir, 'data')}`,
      `-httpListenAddr=${address}`,
      // Its default hides the last 30 s from queries: the age of the last scrape would read 30 s too old.
      '-search.latencyOffset=0s',
    ],
    logFile: join(dir, 'victoria-metrics.log'),
    ready: (line) => (line.includes('starting http server at') ? 'ready' : undefined),
    readyTimeoutMs: 60_000,
  });
  return { process, address };
}

/**
 * The Debian package version of a tool unpacked by tools/lib.sh (its
 * changelog's first line), for a binary that prints none: Debian's
 * VictoriaMetrics says `build version: ` and nothing more.
 */
function debianVersion(bin: string, pkg: string): string | undefined {
  try {
    const root = join(dirname(realpathSync(bin)), '..', 'root');
    return /\(([^)]+)\)/.exec(gunzipSync(readFileSync(join(root, 'usr', 'share', 'doc', pkg, 'changelog.Debian.gz'))).toString('utf8').split('\n')[0] ?? '')?.[1];
  } catch {
    return undefined;
  }
}

/** Runs one peer against the stack's simulator: warm-up, a window of samples, /proc of its process, its scrape count. */
async function runPeer(
  name: PeerSide['name'],
  bin: string,
  dir: string,
  stack: LocalStack,
  plan: ScalePlan,
  credential: { user: string; password: string },
  say: (line: string) => void,
): Promise<PeerSide> {
  const version = (name === 'Prometheus' ? /version (\S+)/.exec(toolVersionLine(bin))?.[1] : debianVersion(bin, 'victoria-metrics')) ?? 'unknown';
  say(`starting ${name} ${version}`);
  const running = name === 'Prometheus' ? await startPrometheus(bin, dir, stack, credential.user, credential.password) : await startVictoriaMetrics(bin, dir, stack, credential.user, credential.password);
  const problems: string[] = [];
  try {
    const short = await warmUpScraper(name, running.address, plan.flats, plan.peerWarmUpMs, say);
    if (short !== undefined) problems.push(short);
    const pid = running.process.pid!;
    const cpu0 = treeStats(pid).cpuS;
    let rssMax = 0;
    const samples: ScaleSample[] = [];
    const start = Date.now();
    const windowMs = plan.peerMinutes * 60_000;
    while (Date.now() - start < windowMs) {
      const t = (Date.now() - start) / 1000;
      const s = await peerSample(running.address, t);
      samples.push(s);
      rssMax = Math.max(rssMax, treeStats(pid).rssBytes);
      if (samples.length % 6 === 1) say(s.error === undefined ? `${name}: freshness p50 ${s.p50!.toFixed(1)} s, p99 ${s.p99!.toFixed(1)} s, ${s.visible} targets up` : `${name} did not answer: ${s.error}`);
      await sleep(Math.max(0, Math.min(plan.sampleMs - (Date.now() - start - t * 1000), start + windowMs - Date.now())));
    }
    const windowS = (Date.now() - start) / 1000;
    const cpuS = treeStats(pid).cpuS - cpu0;
    const endS = Date.now() / 1000;
    // A scrape started just before the end is stored when it finishes.
    await sleep(2500);
    const scrapes = await promQuery(running.address, `sum(sum_over_time(up{job="flats"}[${Math.round(windowS)}s]))`, endS).catch((err: unknown) => {
      problems.push(`scrape count failed: ${(err as Error).message}`);
      return Number.NaN;
    });
    return { name, version, samples, windowS, cpuS, rssMaxBytes: rssMax, scrapes, problems };
  } finally {
    await running.process.stop();
  }
}

/** One repeat: the stack for plan.minutes, its drain and gaps, then each peer against the same simulator. */
async function runRepeat(repeat: number, plan: ScalePlan, peers: ReadonlyArray<{ name: PeerSide['name']; bin: string }>, ctx: BenchContext): Promise<ScaleRepeat> {
  const say = (line: string) => ctx.say(`scale ${plan.flats} flats #${repeat}: ${line}`);
  const dir = mkdtempSync(join(tmpdir(), 'flatline-bench-scale-'));
  const user = 'scraper';
  const password = randomBytes(18).toString('base64url');
  const errors: string[] = [];
  const sides: PeerSide[] = [];
  let flatline: FlatlineSide | undefined;
  let stack: LocalStack | undefined;
  say(`starting the stack (${plan.nodes} nodes, ${plan.replicas} replicas of each service) in ${dir}`);
  try {
    stack = await LocalStack.start({
      stateDir: join(dir, 'stack'),
      host: '127.0.0.1',
      ports: FREE_PORTS,
      flats: plan.flats,
      intervalMs: plan.intervalMs,
      replicas: plan.replicas,
      nodes: plan.nodes,
      // The plane npm start runs: Istio's.
      mesh: DEFAULT_STACK_MESH,
      logLevel: 'warn',
      env: {
        devices: { FLATLINE_DEVICES_PERIOD_MS: String(plan.devicePeriodMs), FLATLINE_DEVICES_PER_FLAT: String(plan.devicesPerFlat), FLATLINE_DEVICES_SCRAPE_CREDENTIAL: `${user}:${password}` },
      },
      say: (l) => say(l),
    });
    const watched = await watchFlatline(stack, plan, say);
    const drained = await drainAndCount(stack, plan, say).catch((err: unknown) => ({ problems: [`drain and gap count failed: ${(err as Error).message}`] }) as Awaited<ReturnType<typeof drainAndCount>>);
    flatline = { ...watched, ...drained, problems: [...watched.problems, ...drained.problems] };
    say(`flatline done: worst p99 after the first minute ${worstSteadyP99(perMinute(watched.samples)).toFixed(1)} s; stopping ingestion (the simulator stays)`);
    for (const r of stack.ingestion) await r?.process.stop();
    for (const peer of peers) {
      const side = await runPeer(peer.name, peer.bin, join(dir, peer.name.toLowerCase()), stack, plan, { user, password }, say).catch((err: unknown) => {
        errors.push(`${peer.name}: ${(err as Error).message.split('\n')[0]!}`);
        return undefined;
      });
      if (side !== undefined) sides.push(side);
    }
  } catch (err) {
    errors.push(`stack: ${(err as Error).message.split('\n')[0]!}`);
    say(`failed: ${(err as Error).message}`);
  } finally {
    await stack?.stop();
    if (ctx.keep) say(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  return { repeat, ...(flatline === undefined ? {} : { flatline }), peers: sides, errors };
}

const seconds = (s: number): string => (Number.isFinite(s) ? `${s.toFixed(1)} s` : 'n/a');

/** Readings in one interval of the whole stack, per ingestion replica: the backlog goal. */
export function backlogGoal(plan: ScalePlan): number {
  return Math.ceil((plan.flats * plan.devicesPerFlat * (plan.intervalMs / plan.devicePeriodMs)) / plan.replicas);
}

/** The headline figures of every repeat. */
export function scaleFigures(results: readonly ScaleRepeat[], plan: ScalePlan): Figure[] {
  const figures: Figure[] = [];
  for (const r of results) {
    const at = `${plan.flats} flats (repeat ${r.repeat})`;
    const f = r.flatline;
    const rows = f === undefined ? [] : perMinute(f.samples);
    const p99 = worstSteadyP99(rows);
    const peerP99 = r.peers.map((p) => ({ name: p.name, p99: worstSteadyP99(perMinute(p.samples).map((m) => ({ ...m, minute: m.minute + 1 }))) }));
    const bestPeer = peerP99.filter((p) => Number.isFinite(p.p99)).sort((a, b) => a.p99 - b.p99)[0];
    figures.push({
      name: `knowledge freshness p99, worst minute after the first, vs the better peer's age of last scrape, ${at}`,
      flatline: seconds(p99),
      versus: bestPeer === undefined ? 'n/a' : `${seconds(bestPeer.p99)} (${bestPeer.name})`,
      ...(bestPeer === undefined || !Number.isFinite(p99) ? {} : { ratio: p99 / bestPeer.p99 }),
      goal: `≤ ${SCALE_GOALS.freshnessP99S} s (stretch ≤ ${SCALE_GOALS.stretchP99S} s)`,
      ...(Number.isFinite(p99) ? { met: p99 <= SCALE_GOALS.freshnessP99S } : {}),
    });
    const last = f?.samples.filter((s) => s.error === undefined).at(-1);
    figures.push({
      name: `flats visible to query at the end, ${at}`,
      flatline: last === undefined ? 'n/a' : `${last.visible} of ${plan.flats}`,
      versus: '',
      goal: '100 %',
      ...(last === undefined ? {} : { met: (last.visible ?? 0) >= plan.flats }),
    });
    const backlog = f === undefined ? [] : f.outboxAtEnd;
    const largest = Math.max(...backlog.map((b) => b ?? Number.NaN));
    figures.push({
      name: `outbox backlog at the end, largest replica (readings), ${at}`,
      flatline: backlog.length === 0 ? 'n/a' : backlog.map((b) => (b === undefined ? 'n/a' : String(b))).join(' / '),
      versus: '',
      goal: `≤ ${backlogGoal(plan)} (one interval's readings per replica)`,
      ...(Number.isFinite(largest) ? { met: largest <= backlogGoal(plan) } : {}),
    });
    figures.push({
      name: `gaps after the outboxes drained (PostgreSQL count), ${at}`,
      flatline:
        f?.gaps === undefined
          ? 'n/a'
          : `${f.gaps.missing} missing of ${f.gaps.readings} readings (ingestion counted ${f.missed} gone from a device's window before a poll reached them, ${f.outboxFull} fetches refused by a full outbox)`,
      versus: '',
      goal: 'zero gaps',
      ...(f?.gaps === undefined ? {} : { met: f.gaps.missing === 0 }),
    });
    const ingestion = f?.components.filter((c) => c.name.startsWith('ingestion')) ?? [];
    const rss = Math.max(...ingestion.map((c) => c.rssMaxBytes));
    figures.push({
      name: `ingestion RSS, largest replica, ${at}`,
      flatline: mb(rss),
      versus: r.peers.map((p) => `${p.name} ${mb(p.rssMaxBytes)}`).join(', '),
      goal: `≤ ${SCALE_GOALS.ingestionRssMb} MB`,
      ...(ingestion.length === 0 ? {} : { met: rss <= SCALE_GOALS.ingestionRssMb * 2 ** 20 }),
    });
    const perPoll = f === undefined || !(f.steadyPolls > 0) ? Number.NaN : f.steadyIngestionCpuS / f.steadyPolls;
    const peerPerScrape = r.peers.map((p) => ({ name: p.name, v: p.scrapes > 0 ? p.cpuS / p.scrapes : Number.NaN })).filter((p) => Number.isFinite(p.v));
    const better = peerPerScrape.sort((a, b) => a.v - b.v)[0];
    figures.push({
      name: `ingestion CPU/poll vs the better peer's CPU/scrape, ${at}`,
      flatline: showSecondsAsMs(perPoll),
      versus: better === undefined ? 'n/a' : `${showSecondsAsMs(better.v)} (${better.name})`,
      ...(better === undefined || !Number.isFinite(perPoll) ? {} : { ratio: perPoll / better.v }),
      goal: '≤ 1.0× the better peer',
      ...(better === undefined || !Number.isFinite(perPoll) ? {} : { met: perPoll <= better.v }),
    });
  }
  return figures;
}

/** The detail tables: per minute for every system, and each component's use. */
export function scaleDetails(results: readonly ScaleRepeat[], plan: ScalePlan): DetailTable[] {
  const minuteRows: string[][] = [];
  const useRows: string[][] = [];
  for (const r of results) {
    const systems: Array<[string, readonly ScaleSample[]]> = [['flatline (query)', r.flatline?.samples ?? []], ...r.peers.map((p): [string, readonly ScaleSample[]] => [`${p.name} ${p.version}`, p.samples])];
    for (const [name, samples] of systems) {
      for (const m of perMinute(samples)) {
        minuteRows.push([
          String(r.repeat),
          name,
          String(m.minute),
          seconds(m.p50),
          seconds(m.p99),
          seconds(m.worst),
          `${m.visibleMin} of ${plan.flats}`,
          m.outboxMax === undefined ? '' : m.outboxMax.join(' / '),
          m.failedSamples === 0 ? '' : String(m.failedSamples),
        ]);
      }
    }
    const f = r.flatline;
    for (const c of f?.components ?? []) useRows.push([String(r.repeat), c.name, `${c.cpuS.toFixed(1)} s`, `${((c.cpuS / f!.windowS) * 100).toFixed(0)} %`, mb(c.rssMaxBytes)]);
    for (const p of r.peers) useRows.push([String(r.repeat), p.name, `${p.cpuS.toFixed(1)} s`, `${((p.cpuS / p.windowS) * 100).toFixed(0)} %`, mb(p.rssMaxBytes)]);
    if (f !== undefined) {
      useRows.push([
        String(r.repeat),
        'drain after the device link was cut',
        f.drainS === undefined ? 'not drained' : seconds(f.drainS),
        '',
        f.gaps === undefined ? '' : `${f.gaps.runs} runs, ${f.gaps.readings} readings, ${f.gaps.missing} missing`,
      ]);
    }
  }
  return [
    {
      title: 'scale: freshness per minute (p50: median of the samples; p99 and worst: the worst sample; outbox: largest per ingestion replica)',
      head: ['repeat', 'system', 'minute', 'p50', 'p99', 'worst', 'visible (fewest)', 'outbox readings', 'failed samples'],
      rows: minuteRows,
    },
    { title: 'scale: CPU and memory per component over its window (process trees)', head: ['repeat', 'component', 'CPU', 'of one core', 'RSS max'], rows: useRows },
  ];
}

/** Caveats printed under the table. */
function scaleNotes(plan: ScalePlan, results: readonly ScaleRepeat[]): string[] {
  return [
    `The stack \`npm start\` runs: ${plan.nodes} nodes, ${plan.replicas} replicas of each service, FerretDB on PostgreSQL, Toxiproxy on every link; ${plan.flats} flats × ${plan.devicesPerFlat} devices, a reading per device every ${plan.devicePeriodMs / 1000} s, polled every ${plan.intervalMs / 1000} s.`,
    `flatline's freshness is GetFreshness through the query frontend every ${plan.sampleMs / 1000} s for ${plan.minutes} minutes from the moment the stack is up; the goal counts the minutes after the first. The peers' is \`time() - timestamp(up{job="flats"})\`, the age of each target's last scrape, over their targets (a failed scrape shows as a target not visible, \`up == 1\` counted), every ${plan.sampleMs / 1000} s for ${plan.peerMinutes} minutes after every target was scraped once (their first minute counts).`,
    'The systems take turns against the same simulator (flatline, then Prometheus, then VictoriaMetrics, ingestion stopped meanwhile): at once, they would measure their competition for 2 cores. The peers scrape each flat with one shared credential (a scrape job takes one basic_auth).',
    'Gaps: once the window ends the device link is cut (Toxiproxy), the outboxes drain, and PostgreSQL counts per (flat, device, epoch) the seqs missing between the lowest and highest stored.',
    'CPU per poll counts ingestion (both replicas) over the window after its first minute, against the successful polls in it; a peer\'s CPU per scrape, its whole process over its window against the sum of its up samples.',
    ...results.flatMap((r) => [...r.errors, ...(r.flatline?.problems ?? []), ...r.peers.flatMap((p) => p.problems.map((x) => `${p.name}: ${x}`))].map((e) => `repeat ${r.repeat}: ${e}`)),
  ];
}

/** Runs a scale plan. */
export async function runScale(plan: ScalePlan, ctx: BenchContext): Promise<SuiteResult> {
  const peers: Array<{ name: PeerSide['name']; bin: string }> = [];
  const skipped: string[] = [];
  // Literal names: test/bootstrap-tools.test.ts reads them here to hold `npm run bench`'s tool set to what the suites spawn.
  const lookups = [
    { name: 'Prometheus', found: ensureTool('prometheus', ctx.say) },
    { name: 'VictoriaMetrics', found: ensureTool('victoria-metrics', ctx.say) },
  ] as const;
  for (const { name, found } of lookups) {
    if ('skipped' in found) skipped.push(found.skipped);
    else peers.push({ name, bin: found.path });
  }
  const results: ScaleRepeat[] = [];
  for (let repeat = 1; repeat <= plan.repeats; repeat++) results.push(await runRepeat(repeat, plan, peers, ctx));
  return {
    figures: scaleFigures(results, plan),
    details: scaleDetails(results, plan),
    notes: [...scaleNotes(plan, results), ...skipped.map((s) => `peer skipped: ${s}`)],
    raw: { plan, results },
    versions: Object.fromEntries(results.flatMap((r) => r.peers.map((p) => [p.name.toLowerCase(), p.version]))),
  };
}

/** The scale suite. */
export const scaleSuite: BenchSuite = {
  name: 'scale',
  title: 'the whole stack at N flats for M minutes (freshness per minute, outboxes, gaps, CPU and RSS) vs Prometheus and VictoriaMetrics scraping the same devices',
  plan(ctx: BenchContext): string {
    const p = scalePlan(ctx.quick, ctx.sizes);
    return (
      `${p.flats} flats × ${p.devicesPerFlat} devices (a reading each ${p.devicePeriodMs / 1000} s), ${p.nodes} nodes, ${p.replicas} replicas of each service, ` +
      `${p.minutes} minute(s) × ${p.repeats} repeat(s); then Prometheus and VictoriaMetrics ${p.peerMinutes} minute(s) each on the same devices; ` +
      'installs Prometheus and VictoriaMetrics (tools/install.sh) when missing'
    );
  },
  run(ctx: BenchContext): Promise<SuiteResult> {
    return runScale(scalePlan(ctx.quick, ctx.sizes), ctx);
  },
};
