/**
 * `flatline chaos campaign`: a seeded random schedule of overlapping faults
 * over the whole catalogue (HTTP and gRPC faults of the fault file, Toxiproxy
 * toxics, kill -9 and SIGSTOP of one process, node drain, crash and freeze,
 * the database frozen or killed), each healed after a random time, while the
 * invariants of stack/src/campaign.ts are checked continuously and, once
 * everything is healed and drained, at the end. Jepsen's way: hunt for the
 * overlap nobody wrote an experiment for, and judge by the data.
 *
 * Writes reports/<time>-campaign-seed<n>/: schedule.json (what --replay
 * reads), timeline.jsonl (every sample, every fault on and off), violations.json,
 * verdict.json, report.md and timeline.png (fault bands, worst healthy
 * freshness, outbox per replica, violations marked).
 */
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { scenario } from '@flatline/mesh';
import {
  CAMPAIGN_INVARIANTS,
  CAMPAIGN_KINDS,
  DEFAULT_STATE_DIR,
  KIND_MEANING,
  REPO_ROOT,
  activeAt,
  callControl,
  callSupervisor,
  drawSchedule,
  excusedAt,
  fetchExcusedAt,
  expectedFlats,
  layoutMismatch,
  persistentHoles,
  readStackFile,
  recordEvent,
  rssBytes,
  silencedAt,
  sumMetric,
  type CampaignFault,
  type CampaignInvariant,
  type CampaignKind,
  type CampaignLayout,
  type CampaignSchedule,
  type LocalStack,
  type StackFile,
  type Violation,
} from '@flatline/stack';
import { duration, wholeNumber } from './up.ts';
import { keepSupervising, stackChoiceOptions, say as chaosSay, sweep, timestamp, useOrStartStack, type StackChoice } from './chaos-common.ts';
import { setScenarioFault } from './plane-faults.ts';
import { linksOf, tcpFaultOff, tcpFaultOn } from './tcp-fault.ts';

interface CampaignOptions extends StackChoice {
  stateDir: string;
  duration: number;
  seed?: number;
  maxConcurrent: number;
  faults: CampaignKind[];
  replay?: string;
  reports: string;
  maxAge: number;
  recovery: number;
  drainTimeout: number;
  maxRss: number;
  failFast: boolean;
  keepStack: boolean;
}

const say = (line: string): void => chaosSay(`campaign: ${line}`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** The layout of the stack in stateDir, as a schedule needs it. */
export function layoutOf(stateDir: string, file: StackFile): CampaignLayout {
  const nodes: Record<string, string[]> = {};
  for (const r of file.replicas ?? []) (nodes[r.node] ??= []).push(r.name);
  for (const rs of Object.values(nodes)) rs.sort();
  const flats = expectedFlats(join(stateDir, 'devices', 'credentials.json')) ?? [];
  const supervised = new Set((file.components ?? []).map((c) => c.name));
  const others = ['devices', 'haproxy', 'toxiproxy'].filter((p) => supervised.has(p));
  return { nodes, flats, others };
}

/** A schedule stored by an earlier campaign: its folder or its schedule.json. */
function readSchedule(path: string): CampaignSchedule {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'schedule.json') : path;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as CampaignSchedule;
  } catch (err) {
    throw new InvalidArgumentError(`--replay: cannot read a schedule from ${file}: ${(err as Error).message}`);
  }
}

/** Where a process's pid is, now. */
function pidOf(file: StackFile | undefined, name: string): number | undefined {
  if (file === undefined) return undefined;
  if (name === 'ferretdb') return file.databasePid;
  return file.replicas?.find((r) => r.name === name)?.pid ?? file.components?.find((c) => c.name === name && c.state === 'running')?.pid;
}

/** /metrics of a service within timeoutMs; throws when it does not answer. */
async function scrape(address: string, timeoutMs: number): Promise<string> {
  const res = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return res.text();
}

/** When each fault really went on and off (the schedule's times, moved by how long the actions took). */
class Actual {
  private readonly on = new Map<number, number>();
  private readonly off = new Map<number, number>();
  constructor(private readonly schedule: CampaignSchedule) {}
  wentOn(id: number, tMs: number): void {
    this.on.set(id, tMs);
  }
  wentOff(id: number, tMs: number): void {
    this.off.set(id, tMs);
  }
  /** The schedule with each fault spanning both its planned and its real times (a fault not yet off: on until now and beyond). */
  view(): { faults: CampaignFault[] } {
    return {
      faults: this.schedule.faults.map((f) => ({
        ...f,
        atMs: Math.min(f.atMs, this.on.get(f.id) ?? f.atMs),
        healMs: this.on.has(f.id) && !this.off.has(f.id) ? Number.MAX_SAFE_INTEGER : Math.max(f.healMs, this.off.get(f.id) ?? f.healMs),
      })),
    };
  }
  times(id: number): { on?: number; off?: number } {
    return { on: this.on.get(id), off: this.off.get(id) };
  }
}

/** The run's record: timeline.jsonl, violations, progress. */
class CampaignRecord {
  readonly violations: Violation[] = [];
  private readonly lastOf = new Map<string, number>();
  constructor(
    private readonly dir: string,
    private readonly t0: number,
    private readonly onViolation: () => void,
  ) {}
  now(): number {
    return Date.now() - this.t0;
  }
  sample(entry: { type: string } & Record<string, unknown>): void {
    appendFileSync(join(this.dir, 'timeline.jsonl'), `${JSON.stringify({ tMs: this.now(), ...entry })}\n`);
  }
  /** A violation, at most once per key every 30 s (a stale flat is one finding, not thirty). */
  violate(invariant: CampaignInvariant, detail: string, key = detail): void {
    const t = this.now();
    const k = `${invariant}\u0000${key}`;
    const last = this.lastOf.get(k);
    if (last !== undefined && t - last < 30000) return;
    this.lastOf.set(k, t);
    const v = { tMs: t, invariant, detail };
    this.violations.push(v);
    this.sample({ type: 'violation', ...v });
    say(`VIOLATION at +${seconds(t)}: ${invariant}: ${detail}`);
    this.onViolation();
  }
}

/** Applies a fault (heal: false) or heals it; throws what went wrong. */
async function act(stateDir: string, f: CampaignFault, heal: boolean, frozenPids: Map<number, number>): Promise<string> {
  const a = f.action;
  const file = readStackFile(stateDir);
  switch (a.type) {
    case 'scenario': {
      const s = scenario(a.scenario);
      if (s === undefined) throw new Error(`no scenario ${a.scenario}`);
      const fault = s.build(a.options);
      // On the Istio plane a storage or query fault is a VirtualService istiod pushes; elsewhere the fault file.
      const where = await setScenarioFault(stateDir, fault, !heal);
      return heal ? `${fault.name} off (${where})` : `${fault.name} on: ${JSON.stringify(fault.fault)} (${where})`;
    }
    case 'tcp': {
      const links = linksOf(stateDir);
      if (heal) return `${await tcpFaultOff(links, stateDir, a.scenario)} toxic(s) removed`;
      return (await tcpFaultOn(links, stateDir, a.scenario, a.options)).join('; ');
    }
    case 'signal': {
      if (heal) {
        if (a.signal === 'SIGKILL') return 'restarted by the supervisor';
        const pid = frozenPids.get(f.id);
        if (pid === undefined) return 'nothing to thaw';
        frozenPids.delete(f.id);
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          return `pid ${pid} is gone`;
        }
        return `pid ${pid} thawed`;
      }
      const pid = pidOf(file, a.process);
      if (pid === undefined) throw new Error(`${a.process} is not running (restarting?): nothing to signal`);
      process.kill(pid, a.signal);
      if (a.signal === 'SIGSTOP') frozenPids.set(f.id, pid);
      return `pid ${pid}`;
    }
    case 'node': {
      if (file?.control === undefined) throw new Error('the stack has no control socket');
      const { status, body } = await callControl(file.control, 'POST', `/nodes/${encodeURIComponent(a.node)}/${heal ? 'restore' : a.action}`);
      const b = body as { state?: string; error?: string };
      if (status !== 200) throw new Error(b.error ?? `HTTP ${status}`);
      return `${a.node} ${b.state}`;
    }
  }
}

/** Loops body every everyMs until stopped; body's throws are its own business. */
function every(everyMs: number, body: () => Promise<void>): { stop(): Promise<void> } {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      await body().catch((err: unknown) => say(`sampler error: ${(err as Error).message}`));
      const left = everyMs - (Date.now() - started);
      for (let waited = 0; waited < left && !stopped; waited += 100) await sleep(Math.min(100, left - waited));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

interface FreshnessBody {
  worstAgeSeconds?: number;
  p99AgeSeconds?: number;
  stalest?: Array<{ flatId: string; ageSeconds: number }>;
  neverFetchedCount?: number;
  neverFetchedFlatIds?: string[];
  error?: string;
}

/** The flats of a freshness answer older than maxAge (or never fetched) that excused does not cover, as "7 21.3 s" and "9 never fetched". */
function staleFlats(b: FreshnessBody, excused: ReadonlySet<string>, maxAge: number): string[] {
  return [
    ...(b.stalest ?? []).filter((x) => x.ageSeconds > maxAge && !excused.has(x.flatId)).map((x) => `${x.flatId} ${x.ageSeconds.toFixed(1)} s`),
    ...(b.neverFetchedFlatIds ?? []).filter((id) => !excused.has(id)).map((id) => `${id} never fetched`),
  ];
}

async function run(o: CampaignOptions): Promise<void> {
  const stateDir = resolve(o.stateDir);
  const replayed = o.replay === undefined ? undefined : readSchedule(o.replay);
  const stack: LocalStack | undefined = await useOrStartStack(stateDir, o);
  const file = readStackFile(stateDir);
  const supervisor = file?.supervisor;
  if (file === undefined || supervisor === undefined) {
    say(`the stack in ${stateDir} serves no supervisor probes: stop it and run again`);
    process.exitCode = 2;
    return;
  }
  const layout = layoutOf(stateDir, file);
  let schedule: CampaignSchedule;
  if (replayed !== undefined) {
    const mismatch = layoutMismatch(replayed, layout);
    if (mismatch !== undefined) {
      say(`cannot replay ${o.replay} on this stack: ${mismatch} (start the stack with the layout the report names: ${JSON.stringify(replayed.layout.nodes)}, ${replayed.layout.flats.length} flats)`);
      process.exitCode = 2;
      if (stack !== undefined && !o.keepStack) await stack.stop();
      return;
    }
    schedule = replayed;
  } else {
    const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
    schedule = drawSchedule({ seed, durationMs: o.duration, maxConcurrent: o.maxConcurrent, kinds: o.faults }, layout);
  }
  // Steady before the first fault (as an experiment's steady state is checked before its method): every flat fresh.
  say(`waiting for the steady state: every flat fresher than ${o.maxAge} s…`);
  const steady = await steadyState(supervisor, o.maxAge, 90000);
  if (steady !== undefined) {
    say(`the stack is not steady, so a campaign would prove nothing: ${steady}`);
    process.exitCode = 2;
    if (stack !== undefined && !o.keepStack) await stack.stop();
    return;
  }
  const started = new Date();
  const dir = resolve(o.reports, `${timestamp(started)}-campaign-seed${schedule.seed}${replayed !== undefined ? '-replay' : ''}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'schedule.json'), `${JSON.stringify(schedule, null, 2)}\n`);
  const shown = relative(process.cwd(), dir) || dir;
  say(`seed ${schedule.seed}: ${schedule.faults.length} faults over ${seconds(schedule.durationMs)}, at most ${schedule.maxConcurrent} at once, kinds ${schedule.kinds.join(',')}`);
  say(`the same schedule again: npm run flatline -- chaos campaign --replay ${shown}`);
  for (const f of schedule.faults) say(`  #${f.id} +${seconds(f.atMs)} → +${seconds(f.healMs)}  ${f.kind.padEnd(4)} ${f.name}${f.touches === 'all' ? '  (every flat)' : f.touches.length > 0 ? `  (flats ${f.touches.join(',')})` : ''}`);

  const t0 = Date.now();
  const since = new Date(t0).toISOString();
  let stopEarly = false;
  const rec = new CampaignRecord(dir, t0, () => {
    if (o.failFast) stopEarly = true;
  });
  const actual = new Actual(schedule);
  const frozenPids = new Map<number, number>();
  const skipped: string[] = [];
  let interrupted = false;
  // SIGTERM (a supervisor, a test runner's timeout), or Ctrl-C twice: heal, sweep and stop the stack it
  // started, without the final checks, which may wait minutes (the drain timeout). Before, a campaign
  // killed by a test's timeout was still in its final checks when the test runner exited; its next
  // line met a closed pipe and it died there, leaving its stack running for an hour.
  let terminate: () => void = () => {};
  const terminated = new Promise<'terminated'>((resolve) => (terminate = () => resolve('terminated')));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signal === 'SIGTERM' || interrupted) {
      say(`${signal === 'SIGTERM' ? 'terminated' : 'interrupted again'}: healing every fault and stopping the stack, without the final checks…`);
      terminate();
    } else {
      say('interrupted: healing every fault, then the final checks (Ctrl-C again skips them)…');
    }
    interrupted = true;
    stopEarly = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // Freshness of the flats no fault excuses, once a second.
  let queryDownSince: number | undefined;
  const freshness = every(1000, async () => {
    const t = rec.now();
    const excused = excusedAt(actual.view(), t, o.recovery);
    if (excused === 'all') {
      queryDownSince = undefined;
      return rec.sample({ type: 'freshness', excused: 'all' });
    }
    const answer = await callSupervisor(supervisor, '/freshness', { exclude: [...excused].join(',') || undefined, max_age: String(o.maxAge), limit: '5' }, 5000).catch((err: Error) => ({ status: 0, body: { error: err.message } }));
    const b = answer.body as FreshnessBody;
    // Excused meanwhile (a fault went on while the answer came): not a finding.
    const stillExcused = excusedAt(actual.view(), rec.now(), o.recovery);
    if (answer.status === 200 || answer.status === 409) {
      queryDownSince = undefined;
      rec.sample({ type: 'freshness', excused: excused.size, worst: b.worstAgeSeconds ?? null, p99: b.p99AgeSeconds ?? null, never: b.neverFetchedCount ?? 0 });
      const stale = answer.status === 409 && stillExcused !== 'all' ? staleFlats(b, stillExcused, o.maxAge) : [];
      if (stale.length > 0) rec.violate('healthy-fresh', `flats no fault touches are stale: ${stale.join(', ')} (max ${o.maxAge} s)`, 'stale');
      return;
    }
    rec.sample({ type: 'freshness', excused: excused.size, worst: null, error: b.error ?? `HTTP ${answer.status}` });
    queryDownSince ??= t;
    if (t - queryDownSince >= 10000 && stillExcused !== 'all') rec.violate('query-reachable', `no freshness report for ${seconds(t - queryDownSince)}: ${b.error ?? `HTTP ${answer.status}`}`, 'query');
  });

  // Ingestion's own freshness (the outboxes' last fetch) of the flats no fault cuts off, every 2 s:
  // the database or storage out of reach excuses query's freshness of every flat, not this.
  // No answer is no proof: the outboxes unread for 10 s while not every flat is excused is a violation too.
  let fetchedUnreadSince: number | undefined;
  const fetched = every(2000, async () => {
    const t = rec.now();
    const excused = fetchExcusedAt(actual.view(), t, o.recovery);
    if (excused === 'all') {
      fetchedUnreadSince = undefined;
      return rec.sample({ type: 'fetched', excused: 'all' });
    }
    const answer = await callSupervisor(supervisor, '/fetched', { exclude: [...excused].join(',') || undefined, max_age: String(o.maxAge), limit: '5' }, 5000).catch((err: Error) => ({ status: 0, body: { error: err.message } }));
    const b = answer.body as FreshnessBody;
    const stillExcused = fetchExcusedAt(actual.view(), rec.now(), o.recovery);
    if (answer.status !== 200 && answer.status !== 409) {
      rec.sample({ type: 'fetched', excused: excused.size, worst: null, error: b.error ?? `HTTP ${answer.status}` });
      fetchedUnreadSince ??= t;
      if (t - fetchedUnreadSince >= 10000 && stillExcused !== 'all') rec.violate('fetch-fresh', `no fetch report from the outboxes for ${seconds(t - fetchedUnreadSince)}: ${b.error ?? `HTTP ${answer.status}`}`, 'unread');
      return;
    }
    fetchedUnreadSince = undefined;
    rec.sample({ type: 'fetched', excused: excused.size, worst: b.worstAgeSeconds ?? null, never: b.neverFetchedCount ?? 0 });
    const stale = answer.status === 409 && stillExcused !== 'all' ? staleFlats(b, stillExcused, o.maxAge) : [];
    if (stale.length > 0) rec.violate('fetch-fresh', `flats no fault cuts off were not fetched: ${stale.join(', ')} (max ${o.maxAge} s)`, 'stale');
  });

  // Outboxes, memory, hangs and SERVING, every 5 s.
  const misses = new Map<string, number>();
  const lastPid = new Map<string, number | undefined>();
  const peakRss = new Map<string, number>();
  // Readings gone from a device's window before a poll reached it (ingestion's missed counter): a zero-gaps violation says why.
  const lastMissed = new Map<string, number>();
  let missedAtSource = 0;
  const health = every(5000, async () => {
    const t = rec.now();
    const f = readStackFile(stateDir);
    if (f === undefined) return;
    const view = actual.view();
    const silenced = silencedAt(view, t);
    const outbox: Record<string, number | null> = {};
    const services = [...(f.replicas ?? []).map((r) => ({ name: r.name, pid: r.pid, metrics: r.metrics })), { name: 'devices', pid: pidOf(f, 'devices'), metrics: f.metrics['devices'] }];
    await Promise.all(
      services.map(async (s) => {
        const restarted = lastPid.get(s.name) !== s.pid;
        lastPid.set(s.name, s.pid);
        if (s.pid === undefined || s.metrics === undefined) return;
        try {
          const text = await scrape(s.metrics, 2000);
          misses.set(s.name, 0);
          if (s.name.startsWith('ingestion-')) {
            outbox[s.name] = sumMetric(text, 'flatline_ingestion_outbox_fetches');
            // A counter: its increase, a restart's reset counted from zero (as Prometheus's increase() does).
            const missed = sumMetric(text, 'flatline_ingestion_readings_missed_total');
            const before = lastMissed.get(s.name) ?? missed;
            missedAtSource += missed >= before ? missed - before : missed;
            lastMissed.set(s.name, missed);
          }
        } catch (err) {
          if (s.name.startsWith('ingestion-')) outbox[s.name] = null;
          // Frozen or killed on purpose, or just (re)started: not a hang.
          if (silenced.has(s.name) || restarted || silencedAt(actual.view(), rec.now()).has(s.name)) return misses.set(s.name, 0);
          const n = (misses.get(s.name) ?? 0) + 1;
          misses.set(s.name, n);
          if (n >= 2) rec.violate('no-hang', `${s.name} (pid ${s.pid}) did not answer /metrics within 2 s, ${n} times in a row (${(err as Error).message})`, s.name);
        }
      }),
    );
    const rss: Record<string, number> = {};
    for (const c of f.components ?? []) {
      if (c.pid === undefined || c.state !== 'running') continue;
      const bytes = rssBytes(c.pid);
      if (!(bytes > 0)) continue;
      rss[c.name] = Math.round(bytes / 2 ** 20);
      peakRss.set(c.name, Math.max(peakRss.get(c.name) ?? 0, rss[c.name]!));
      if (rss[c.name]! > o.maxRss) rec.violate('memory-bounded', `${c.name} resident memory ${rss[c.name]} MiB > ${o.maxRss} MiB`, c.name);
    }
    const quietFor = quietSince(view, t);
    let serving: boolean | null = null;
    if (quietFor >= o.recovery) {
      const answer = await callSupervisor(supervisor, '/status', {}, 10000).catch(() => undefined);
      serving = answer?.status === 200;
      if (!serving) {
        const rows = (answer?.body as Array<{ component: string; health: string }> | undefined) ?? [];
        const bad = Array.isArray(rows) ? rows.filter((r) => r.health !== 'SERVING').map((r) => `${r.component} ${r.health}`) : [];
        rec.violate('serving-after-heal', `nothing on for ${seconds(quietFor)}, yet not every component is SERVING: ${bad.join(', ') || 'the supervisor did not answer'}`, 'status');
      }
    }
    rec.sample({ type: 'health', outbox, rss, serving, active: activeAt(view, t).map((x) => x.id) });
  });

  // Holes in what is stored, every 10 s: a hole seen twice (and no ingestion replica frozen meanwhile) is loss.
  let previousHoles: Map<string, number> | undefined;
  let previousGapsAt = 0;
  const gaps = every(10000, async () => {
    const t = rec.now();
    const answer = await callSupervisor(supervisor, '/gaps', { since }, 30000).catch(() => undefined);
    if (answer === undefined || (answer.status !== 200 && answer.status !== 409)) {
      rec.sample({ type: 'gaps', known: false });
      return;
    }
    const b = answer.body as { gaps: Array<{ flat: string; device: string; epoch: number; missing: number }>; readings: number; held?: number };
    const holes = new Map(b.gaps.map((g) => [`${g.flat}/${g.device}/${g.epoch}`, g.missing]));
    const frozen = actual.view().faults.some((f) => f.atMs < t && f.healMs > previousGapsAt && isIngestionFreeze(f));
    rec.sample({ type: 'gaps', known: true, readings: b.readings, held: b.held ?? 0, missing: [...holes.values()].reduce((a, n) => a + n, 0) });
    const lost = persistentHoles(previousHoles, holes, frozen);
    if (lost.length > 0) {
      const missing = lost.reduce((n, k) => n + holes.get(k)!, 0);
      const shown = lost.slice(0, 6).map((k) => `${k} −${holes.get(k)}`);
      rec.violate('zero-gaps', `${missing} reading(s) lost from ${lost.length} device sequence(s) (flat/device/epoch −missing: ${shown.join(', ')}${lost.length > shown.length ? ', …' : ''}): in neither storage nor any outbox at two gap counts ${seconds(t - previousGapsAt)} apart`, 'gaps');
    }
    previousHoles = holes;
    previousGapsAt = t;
  });

  // The schedule itself.
  const events = schedule.faults.flatMap((f) => [
    { at: f.atMs, f, heal: false },
    { at: f.healMs, f, heal: true },
  ]);
  events.sort((a, b) => a.at - b.at || Number(b.heal) - Number(a.heal) || a.f.id - b.f.id);
  const on = new Set<number>();
  const doEvent = async (e: (typeof events)[number]): Promise<void> => {
    const { f, heal } = e;
    if (heal && !on.has(f.id)) return;
    const t = rec.now();
    try {
      const what = await act(stateDir, f, heal, frozenPids);
      (heal ? actual.wentOff : actual.wentOn).call(actual, f.id, heal ? rec.now() : t);
      if (heal) on.delete(f.id);
      else on.add(f.id);
      recordEvent(stateDir, heal ? 'remove' : 'inject', f.name, `campaign seed ${schedule.seed} fault #${f.id}: ${what}`);
      rec.sample({ type: 'fault', id: f.id, phase: heal ? 'off' : 'on', name: f.name, detail: what });
      say(`+${seconds(t)} ${heal ? 'healed' : 'on    '} #${f.id} ${f.name}: ${what}`);
    } catch (err) {
      const message = (err as Error).message;
      rec.sample({ type: 'fault', id: f.id, phase: heal ? 'off-failed' : 'on-failed', name: f.name, detail: message });
      if (!heal && /is not running/.test(message)) {
        skipped.push(`#${f.id} ${f.name}: ${message}`);
        say(`+${seconds(t)} skipped #${f.id} ${f.name}: ${message}`);
        return;
      }
      rec.violate('injected-as-scheduled', `#${f.id} ${f.name} could not be ${heal ? 'healed' : 'applied'}: ${message}`, `fault-${f.id}`);
    }
  };
  let progressAt = 0;
  for (const e of events) {
    while (!stopEarly && rec.now() < e.at) {
      await sleep(Math.min(100, e.at - rec.now()));
      if (rec.now() - progressAt >= 15000) {
        progressAt = rec.now();
        say(`+${seconds(progressAt)} of ${seconds(schedule.durationMs)}: ${on.size} fault(s) on, ${rec.violations.length} violation(s) so far`);
      }
    }
    if (stopEarly) break;
    await doEvent(e);
  }
  while (!stopEarly && rec.now() < schedule.durationMs) await sleep(100);

  // Everything healed: what is still on goes off, newest first; then the sweep finds anything else.
  for (const f of [...schedule.faults].reverse()) if (on.has(f.id)) await doEvent({ at: rec.now(), f, heal: true });
  const lastHeal = rec.now();
  const leftovers = await sweep(stateDir);
  if (leftovers.length > 0) rec.violate('injected-as-scheduled', `the heals left behind: ${leftovers.join('; ')}`, 'leftovers');
  say(`+${seconds(lastHeal)} every fault healed; the final checks: SERVING, outboxes drained, every flat fresh, zero gaps…`);

  // The final checks: the samplers keep running (a hang or a stale healthy flat still counts).
  const finalChecks = await Promise.race([finalPhase(o, supervisor, since, rec, lastHeal), terminated.then(() => ({ skipped: 'terminated before the final checks ended' }))]);
  await Promise.all([freshness.stop(), fetched.stop(), health.stop(), gaps.stop()]);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);

  const passed = rec.violations.length === 0 && !interrupted;
  const verdict = {
    verdict: interrupted ? 'interrupted' : passed ? 'passed' : 'failed',
    seed: schedule.seed,
    faults: schedule.faults.length,
    injected: schedule.faults.filter((f) => actual.times(f.id).on !== undefined).length,
    skipped,
    violations: rec.violations.length,
    byInvariant: Object.fromEntries(Object.keys(CAMPAIGN_INVARIANTS).map((k) => [k, rec.violations.filter((v) => v.invariant === k).length])),
    finalChecks,
    missedAtSource,
    peakRssMiB: Object.fromEntries([...peakRss.entries()].sort()),
    durationMs: schedule.durationMs,
    endedMs: rec.now(),
    replayOf: o.replay,
  };
  writeFileSync(join(dir, 'violations.json'), `${JSON.stringify(rec.violations, null, 2)}\n`);
  writeFileSync(join(dir, 'verdict.json'), `${JSON.stringify(verdict, null, 2)}\n`);
  writeFileSync(join(dir, 'report.md'), reportMarkdown(schedule, actual, rec.violations, verdict, o));
  const plotted = await plot(dir, o.maxAge);
  if (stack !== undefined && !o.keepStack) {
    say('stopping the stack it started…');
    await stack.stop();
  }
  if (missedAtSource > 0) say(`ingestion counted ${missedAtSource} reading(s) gone from their device's window before a poll reached them`);
  say(`verdict: ${verdict.verdict.toUpperCase()} — seed ${schedule.seed}, ${verdict.injected} of ${verdict.faults} faults injected${skipped.length > 0 ? ` (${skipped.length} skipped: their process was not running)` : ''}, ${rec.violations.length} violation(s)`);
  say(`report: ${join(shown, 'report.md')}${plotted ? `  plot: ${join(shown, 'timeline.png')}` : ''}`);
  process.exitCode = interrupted ? 130 : passed ? 0 : 1;
  if (stack !== undefined && o.keepStack) await keepSupervising(stack, stateDir);
}

/** Waits up to timeoutMs for every flat to be fresher than maxAge; undefined when it is, else what the last answer said. */
async function steadyState(supervisor: string, maxAge: number, timeoutMs: number): Promise<string | undefined> {
  const end = Date.now() + timeoutMs;
  let last = 'not asked';
  while (Date.now() < end) {
    const a = await callSupervisor(supervisor, '/freshness', { max_age: String(maxAge), limit: '5' }, 10000).catch((err: Error) => ({ status: 0, body: { error: err.message } }));
    if (a.status === 200) return undefined;
    const b = a.body as FreshnessBody;
    last = b.error ?? `worst ${b.worstAgeSeconds?.toFixed(1)} s (${(b.stalest ?? []).map((x) => `${x.flatId} ${x.ageSeconds.toFixed(1)} s`).join(', ')}), ${b.neverFetchedCount ?? 0} never fetched (${(b.neverFetchedFlatIds ?? []).join(', ')})`;
    await sleep(1000);
  }
  return `after ${timeoutMs / 1000} s: ${last}`;
}

function isIngestionFreeze(f: CampaignFault): boolean {
  return (f.action.type === 'signal' && f.action.signal === 'SIGSTOP' && f.action.process.startsWith('ingestion-')) || (f.action.type === 'node' && f.action.action === 'freeze' && f.down.some((r) => r.startsWith('ingestion-')));
}

/** How long nothing has been on at tMs (0 while something is). */
function quietSince(view: { faults: CampaignFault[] }, tMs: number): number {
  if (activeAt(view, tMs).length > 0) return 0;
  const healed = view.faults.filter((f) => f.healMs <= tMs).map((f) => f.healMs);
  return healed.length === 0 ? tMs : tMs - Math.max(...healed);
}

/** After the last heal: SERVING within the recovery time, outboxes drained, every flat fresh, zero gaps. */
async function finalPhase(o: CampaignOptions, supervisor: string, since: string, rec: CampaignRecord, lastHeal: number): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const until = async (deadlineMs: number, check: () => Promise<string | undefined>): Promise<string | undefined> => {
    let last: string | undefined = 'not asked';
    while (rec.now() < deadlineMs) {
      last = await check().catch((err: Error) => err.message);
      if (last === undefined) return undefined;
      await sleep(1000);
    }
    return last;
  };
  const notServing = await until(lastHeal + o.recovery, async () => {
    const a = await callSupervisor(supervisor, '/status', {}, 10000);
    if (a.status === 200) return undefined;
    const rows = a.body as Array<{ component: string; health: string }>;
    return Array.isArray(rows) ? rows.filter((r) => r.health !== 'SERVING').map((r) => `${r.component} ${r.health}`).join(', ') : `HTTP ${a.status}`;
  });
  out['serving-after-heal'] = notServing === undefined ? `every component SERVING by +${seconds(rec.now() - lastHeal)} after the last heal` : `not SERVING ${seconds(o.recovery)} after the last heal: ${notServing}`;
  if (notServing !== undefined) rec.violate('serving-after-heal', out['serving-after-heal'], 'final-status');

  const drained = await callSupervisor(supervisor, '/drained', { timeout: `${Math.round(o.drainTimeout / 1000)}s` }, o.drainTimeout + 15000).catch((err: Error) => ({ status: 0, body: { error: err.message } }));
  const d = drained.body as { waiting?: number; unanswered?: string[]; waitedSeconds?: number; error?: string };
  out['outbox-drained'] = drained.status === 200 ? `outboxes empty after ${d.waitedSeconds} s` : `not drained after ${seconds(o.drainTimeout)}: ${d.error ?? `${d.waiting} fetch(es) waiting, unanswered: ${(d.unanswered ?? []).join(', ') || 'none'}`}`;
  if (drained.status !== 200) rec.violate('outbox-drained', out['outbox-drained'], 'final-drain');

  const freshAt = rec.now();
  const stale = await until(freshAt + o.recovery, async () => {
    const a = await callSupervisor(supervisor, '/freshness', { max_age: String(o.maxAge), limit: '5' }, 10000);
    if (a.status === 200) return undefined;
    const b = a.body as FreshnessBody;
    return b.error ?? `worst ${b.worstAgeSeconds?.toFixed(1)} s (${(b.stalest ?? []).map((s) => `${s.flatId} ${s.ageSeconds.toFixed(1)} s`).join(', ')}), ${b.neverFetchedCount ?? 0} never fetched`;
  });
  out['healthy-fresh'] = stale === undefined ? `every flat fresher than ${o.maxAge} s` : `not every flat fresh ${seconds(o.recovery)} after the drain: ${stale}`;
  if (stale !== undefined) rec.violate('healthy-fresh', out['healthy-fresh'], 'final-fresh');

  const g = await callSupervisor(supervisor, '/gaps', { since }, 70000).catch((err: Error) => ({ status: 0, body: { error: err.message } }));
  const gb = g.body as { gaps?: Array<{ flat: string; device: string; epoch: number; missing: number }>; readings?: number; devices?: number; missing?: number; error?: string };
  out['zero-gaps'] =
    g.status === 200
      ? `zero gaps: ${gb.readings} readings of ${gb.devices} devices since the start`
      : g.status === 409
        ? `${gb.missing} reading(s) lost: ${(gb.gaps ?? []).slice(0, 10).map((x) => `${x.flat}/${x.device}/${x.epoch} −${x.missing}`).join(', ')}`
        : `the gap count could not be had: ${gb.error ?? `HTTP ${g.status}`}`;
  if (g.status !== 200) rec.violate('zero-gaps', out['zero-gaps'], 'final-gaps');
  for (const [k, v] of Object.entries(out)) say(`final ${k}: ${v}`);
  return out;
}

function reportMarkdown(schedule: CampaignSchedule, actual: Actual, violations: readonly Violation[], verdict: { verdict: string; injected: number; skipped: string[]; finalChecks: Record<string, string>; missedAtSource: number; peakRssMiB: Record<string, number> }, o: CampaignOptions): string {
  const s = (ms: number | undefined): string => (ms === undefined ? '—' : (ms / 1000).toFixed(1));
  const lines = [
    `# Fault campaign, seed ${schedule.seed}: ${verdict.verdict.toUpperCase()}`,
    '',
    `${schedule.faults.length} faults over ${s(schedule.durationMs)} s (${verdict.injected} injected${verdict.skipped.length > 0 ? `, ${verdict.skipped.length} skipped` : ''}), at most ${schedule.maxConcurrent} at once, kinds ${schedule.kinds.join(', ')}; ` +
      `max age ${o.maxAge} s, recovery ${s(o.recovery)} s, drain timeout ${s(o.drainTimeout)} s, max RSS ${o.maxRss} MiB. Stack: ${Object.entries(schedule.layout.nodes).map(([n, rs]) => `${n} (${rs.join(', ')})`).join('; ')}; ${schedule.layout.flats.length} flats.`,
    '',
    `Replay: \`npm run flatline -- chaos campaign --replay <this folder>\`. The plot: timeline.png.`,
    '',
    '## Invariants',
    '',
    '| invariant | violations | meaning |',
    '|---|---|---|',
    ...Object.entries(CAMPAIGN_INVARIANTS).map(([k, m]) => `| ${k} | ${violations.filter((v) => v.invariant === k).length} | ${m} |`),
    '',
    '## Final checks',
    '',
    ...Object.entries(verdict.finalChecks).map(([k, v]) => `- ${k}: ${v}`),
    '',
    `Readings gone from a device's window before a poll reached them (ingestion's missed counter, a cause of gaps flatline never held): ${verdict.missedAtSource}.`,
    '',
    '## Violations',
    '',
    ...(violations.length === 0 ? ['None.'] : violations.map((v) => `- +${s(v.tMs)} s **${v.invariant}**: ${v.detail}`)),
    '',
    '## Faults',
    '',
    '| # | kind | fault | planned on → off (s) | actual on → off (s) | flats excused |',
    '|---|---|---|---|---|---|',
    ...schedule.faults.map((f) => {
      const a = actual.times(f.id);
      return `| ${f.id} | ${f.kind} | ${f.name} | ${s(f.atMs)} → ${s(f.healMs)} | ${s(a.on)} → ${s(a.off)} | ${f.touches === 'all' ? 'every flat' : f.touches.join(', ') || 'none'} |`;
    }),
    ...(verdict.skipped.length > 0 ? ['', 'Skipped (their process was not running when due):', '', ...verdict.skipped.map((x) => `- ${x}`)] : []),
    '',
    '## Peak resident memory (MiB)',
    '',
    ...Object.entries(verdict.peakRssMiB).map(([k, v]) => `- ${k}: ${v}`),
    '',
  ];
  return lines.join('\n');
}

/** timeline.png by chaos/flatline_chaos/campaign_plot.py (matplotlib in the Chaos Toolkit venv); false when it could not. */
async function plot(dir: string, maxAge: number): Promise<boolean> {
  const python = join(REPO_ROOT, '.venv', 'bin', 'python');
  if (!existsSync(python)) {
    say('no plot: the Chaos Toolkit venv (.venv) is missing; npm test or node scripts/bootstrap.mjs chaostoolkit installs it');
    return false;
  }
  const code = await new Promise<number>((done) => {
    const child = spawn(python, [join(REPO_ROOT, 'chaos', 'flatline_chaos', 'campaign_plot.py'), '--dir', dir, '--max-age', String(maxAge)], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', () => done(1));
    child.once('exit', (c) => done(c ?? 1));
  });
  return code === 0;
}

const kinds = (value: string): CampaignKind[] => {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.filter((k) => !(CAMPAIGN_KINDS as readonly string[]).includes(k));
  if (bad.length > 0 || list.length === 0) throw new InvalidArgumentError(`expected kinds from ${CAMPAIGN_KINDS.join(', ')} (comma-separated), got ${JSON.stringify(value)}`);
  return [...new Set(list)] as CampaignKind[];
};

/** The `chaos campaign` command. */
export function campaignCommand(): Command {
  return stackChoiceOptions(
    new Command('campaign')
    .description(
      'a seeded random schedule of overlapping faults over the whole catalogue, with the invariants (zero gaps, healthy flats fresh, SERVING after the heal, no hang, outboxes drained, memory bounded) checked continuously and at the end; ' +
        'starts a stack when none runs; writes reports/<time>-campaign-seed<n>/ (schedule.json, timeline.jsonl, report.md, timeline.png, verdict.json); exit 0 only when every invariant held',
    )
    .addOption(new Option('--duration <duration>', 'how long faults are injected (then: heal, drain, final checks)').default(180000, '3m').argParser(duration))
    .addOption(new Option('--seed <n>', 'seed of the schedule (default: drawn and printed)').argParser(wholeNumber(0, 2 ** 31 - 1)))
    .addOption(new Option('--max-concurrent <k>', 'faults on at once, at most').default(2).argParser(wholeNumber(1, 8)))
    .addOption(new Option('--faults <kinds>', `kinds to draw from, comma-separated: ${CAMPAIGN_KINDS.join(',')}`).default([...CAMPAIGN_KINDS], 'all').argParser(kinds))
    .option('--replay <report>', 'run the schedule of an earlier campaign again (its report folder or schedule.json); --seed, --duration, --max-concurrent and --faults are then its own')
    .addOption(new Option('--max-age <seconds>', 'healthy flats must be fresher than this').default(20).argParser(wholeNumber(1, 3600)))
    .addOption(new Option('--recovery <duration>', 'how long after a heal touched flats may stay stale and components not SERVING (30 s: a failing flat waits up to 20 s, FLATLINE_BACKOFF_MAX_MS, before its next poll)').default(30000, '30s').argParser(duration))
    .addOption(new Option('--drain-timeout <duration>', 'how long the outboxes may take to drain after the last heal').default(120000, '120s').argParser(duration))
    .addOption(new Option('--max-rss <MiB>', 'resident memory bound of every process').default(768).argParser(wholeNumber(16, 65536)))
    .option('--fail-fast', 'stop injecting at the first violation (then heal and check as usual)', false)
    .option('--state-dir <dir>', 'state folder of the local stack (used if one runs there, else started there)', DEFAULT_STATE_DIR)
    .option('--reports <dir>', 'where report folders go', join(REPO_ROOT, 'reports')),
    'campaign',
  )
    .addHelpText(
      'after',
      `\nKinds:\n${CAMPAIGN_KINDS.map((k) => `  ${k.padEnd(5)} ${KIND_MEANING[k]}`).join('\n')}\n\nInvariants:\n${Object.entries(CAMPAIGN_INVARIANTS)
        .map(([k, m]) => `  ${k}: ${m}`)
        .join('\n')}\n\nThe same --seed on a stack of the same layout gives the same schedule. Example: npm run flatline -- chaos campaign --duration 10m --seed 1`,
    )
    .action(async (o: CampaignOptions) => run(o));
}
