/**
 * A fault campaign's schedule and the rules that read its invariants, both
 * pure: `flatline chaos campaign` draws a schedule from a seed and the stack's
 * layout, runs it, and judges what it sampled with these rules.
 *
 * A schedule is a list of faults, each with when it starts and when it heals,
 * drawn with a seeded generator (xoroshiro128+, pure-rand) in a fixed order:
 * the same seed, options and layout give the same schedule, byte for byte.
 * Faults overlap, up to maxConcurrent at once, but never two on the same
 * thing (a process, a node, a flat's device link, a scenario of the fault
 * file or of Toxiproxy), nor a fault with the process that applies it (a TCP
 * fault and Toxiproxy frozen): each holds keys no active fault conflicts with.
 *
 * Each fault says which flats it may leave stale (touches): a device fault its
 * flats; anything on the data path every flat (the database, storage, the
 * proxies, the simulator); a replica's failure none while another replica of
 * its service runs (hypothesis 2) and every flat when it takes the last one.
 */
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { ScenarioOptions } from '@flatline/mesh';
import type { TcpScenarioOptions } from '@flatline/mesh';

/** The kinds a campaign draws from (--faults). */
export const CAMPAIGN_KINDS = ['http', 'grpc', 'tcp', 'kill', 'stop', 'node', 'db'] as const;
export type CampaignKind = (typeof CAMPAIGN_KINDS)[number];

/** What a kind covers, for --help and the report. */
export const KIND_MEANING: Readonly<Record<CampaignKind, string>> = {
  http: 'device faults of the fault file: devices-slow, devices-failing (a few flats)',
  grpc: 'service faults of the fault file: storage-unavailable, storage-slow, query-slow',
  tcp: 'Toxiproxy toxics: db-reset, db-slow, db-blackhole, storage-link-reset, devices-tcp-slow, devices-dribble, devices-cut',
  kill: 'kill -9 of one process (a replica, the simulator, HAProxy, Toxiproxy); the supervisor restarts it',
  stop: 'SIGSTOP of one process, SIGCONT at the heal',
  node: 'a node drained, crashed or frozen, restored at the heal',
  db: 'the database frozen (SIGSTOP) or killed (kill -9; the supervisor restarts it)',
};

/** What a fault does, and what its heal undoes. */
export type CampaignAction =
  | { readonly type: 'scenario'; readonly scenario: string; readonly options: ScenarioOptions }
  | { readonly type: 'tcp'; readonly scenario: string; readonly options: TcpScenarioOptions }
  | { readonly type: 'signal'; readonly process: string; readonly signal: 'SIGKILL' | 'SIGSTOP' }
  | { readonly type: 'node'; readonly node: string; readonly action: 'drain' | 'crash' | 'freeze' };

/** One fault of a schedule. */
export interface CampaignFault {
  /** 1, 2, … in order of start. */
  readonly id: number;
  readonly kind: CampaignKind;
  /** Short and readable: "devices-slow flats 3,7", "kill -9 storage-1", "node-0 crash". */
  readonly name: string;
  readonly action: CampaignAction;
  /** Milliseconds from the campaign's start. */
  readonly atMs: number;
  readonly healMs: number;
  /** What no other fault may hold while this one is on. */
  readonly holds: readonly string[];
  /** The replicas it takes down (storage-0, …). */
  readonly down: readonly string[];
  /** The flats whose freshness it excuses: every flat, or these. */
  readonly touches: 'all' | readonly string[];
  /** The flats no poll reaches while it is on (their devices, the simulator, Toxiproxy, every ingestion replica): every flat, or these. */
  readonly cuts: 'all' | readonly string[];
}

/**
 * How long a flat may go unpolled before its devices' readings are gone at
 * the source. A device keeps a window of readings (the simulator: 60 s,
 * FLATLINE_DEVICES_WINDOW_MS); after a heal a failing flat may wait a whole
 * back-off (20 s, FLATLINE_BACKOFF_MAX_MS) before its next poll. Faults that
 * cut a flat's polls (with less than a back-off between them) are kept under
 * maxUnpolledMs in all: a loss the design accepts is no finding.
 */
export const DEVICE_REACH = { windowMs: 60000, backoffMaxMs: 20000, maxUnpolledMs: 35000 } as const;

/** The stack a schedule is drawn for. */
export interface CampaignLayout {
  /** Node → the replicas on it (storage-0, query-0, ingestion-0, …). */
  readonly nodes: Readonly<Record<string, readonly string[]>>;
  /** Every flat the stack polls. */
  readonly flats: readonly string[];
  /** Processes outside the nodes that a kill or stop may hit (devices, haproxy, toxiproxy). */
  readonly others: readonly string[];
}

export interface ScheduleOptions {
  readonly seed: number;
  readonly durationMs: number;
  readonly maxConcurrent: number;
  readonly kinds: readonly CampaignKind[];
}

/** A drawn schedule, as the report stores it (and --replay reads it). */
export interface CampaignSchedule extends ScheduleOptions {
  readonly layout: CampaignLayout;
  readonly faults: readonly CampaignFault[];
}

/** No fault starts before this (the stack settles) … */
export const FIRST_FAULT_MS = 5000;
/** … and each starts this long after the one before, at random within. */
const GAP_MS: readonly [number, number] = [2000, 10000];
/** How long a kill -9 counts as on: the supervisor's restart happens in it. */
const KILL_HOLD_MS = 5000;
/** A fault cut shorter than this (to keep a flat polled in time) is not drawn at all. */
const MIN_HOLD_MS = 3000;

/** The service of a replica name (storage-1 → storage), or undefined for other processes. */
export function serviceOf(name: string): string | undefined {
  return /^(storage|query|ingestion)-\d+$/.exec(name)?.[1];
}

/** The seeded draws a schedule is made of. */
class Draw {
  private readonly rng;
  constructor(seed: number) {
    this.rng = xoroshiro128plus(seed);
  }
  int(from: number, to: number): number {
    return uniformInt(this.rng, from, to);
  }
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('nothing to pick from');
    return items[this.int(0, items.length - 1)]!;
  }
  /** n distinct items (fewer when there are fewer), in the order drawn. */
  some<T>(items: readonly T[], n: number): T[] {
    const left = [...items];
    const out: T[] = [];
    while (out.length < n && left.length > 0) out.push(left.splice(this.int(0, left.length - 1), 1)[0]!);
    return out;
  }
  /** A whole number of seconds from a to b, in ms. */
  seconds(a: number, b: number): number {
    return this.int(a, b) * 1000;
  }
}

/** A fault before it is placed in time: what it does, what it holds, how long it may last. */
interface Candidate {
  readonly kind: CampaignKind;
  readonly name: string;
  readonly action: CampaignAction;
  readonly holds: readonly string[];
  readonly down: readonly string[];
  /** Flats it excuses on its own ('all', or these); a replica fault is widened when it takes a service's last replica. */
  readonly touches: 'all' | readonly string[];
  /** Flats whose polls it stops on its own; a replica fault is widened when it takes the last ingestion replica. */
  readonly cuts: 'all' | readonly string[];
  readonly holdMs: number;
}

const flatKeys = (flats: readonly string[]): string[] => flats.map((f) => `flat:${f}`);

/** Draws one candidate of a kind. */
function candidate(kind: CampaignKind, d: Draw, layout: CampaignLayout): Candidate | undefined {
  const replicas = Object.values(layout.nodes).flat();
  const nodeOf = (replica: string): string => Object.entries(layout.nodes).find(([, rs]) => rs.includes(replica))?.[0] ?? '?';
  const processKeys = (p: string): string[] => (serviceOf(p) === undefined ? [`proc:${p}`] : [`proc:${p}`, `node:${nodeOf(p)}`]);
  const someFlats = (): string[] => d.some(layout.flats, d.int(1, 3)).sort((a, b) => Number(a) - Number(b) || a.localeCompare(b));
  switch (kind) {
    case 'http': {
      const flats = someFlats();
      if (d.int(0, 1) === 0) {
        const delayMs = d.pick([5000, 10000, 20000, 30000]);
        return { kind, name: `devices-slow ${delayMs / 1000}s flats ${flats.join(',')}`, action: { type: 'scenario', scenario: 'devices-slow', options: { flats, delayMs } }, holds: ['scenario:devices-slow', ...flatKeys(flats)], down: [], touches: flats, cuts: flats, holdMs: d.seconds(10, 40) };
      }
      const status = d.pick([500, 503]);
      const percent = d.pick([50, 100]);
      return { kind, name: `devices-failing ${status} ${percent}% flats ${flats.join(',')}`, action: { type: 'scenario', scenario: 'devices-failing', options: { flats, status, percent } }, holds: ['scenario:devices-failing', ...flatKeys(flats)], down: [], touches: flats, cuts: flats, holdMs: d.seconds(10, 40) };
    }
    case 'grpc': {
      const which = d.pick(['storage-unavailable', 'storage-slow', 'query-slow'] as const);
      if (which === 'storage-unavailable') {
        const percent = d.pick([50, 100]);
        return { kind, name: `storage-unavailable ${percent}%`, action: { type: 'scenario', scenario: which, options: { percent } }, holds: [`scenario:${which}`], down: [], touches: 'all', cuts: [], holdMs: d.seconds(5, 30) };
      }
      const delayMs = which === 'storage-slow' ? d.pick([500, 1000, 3000]) : d.pick([200, 500, 1500]);
      return { kind, name: `${which} ${delayMs}ms`, action: { type: 'scenario', scenario: which, options: { delayMs } }, holds: [`scenario:${which}`], down: [], touches: [], cuts: [], holdMs: d.seconds(5, 30) };
    }
    case 'tcp': {
      const which = d.pick(['db-reset', 'db-slow', 'db-blackhole', 'storage-link-reset', 'devices-tcp-slow', 'devices-dribble', 'devices-cut'] as const);
      // Toxiproxy applies and removes it: it uses Toxiproxy, so no kill or SIGSTOP of Toxiproxy overlaps it (other TCP faults may).
      const toxiproxy = 'uses:toxiproxy';
      const holdMs = d.seconds(5, 25);
      if (which === 'db-slow') {
        const delayMs = d.pick([200, 500, 1500]);
        return { kind, name: `db-slow ${delayMs}ms`, action: { type: 'tcp', scenario: which, options: { delayMs } }, holds: [`tcp:${which}`, toxiproxy], down: [], touches: 'all', cuts: [], holdMs };
      }
      if (which === 'db-reset' || which === 'storage-link-reset') {
        const percent = d.pick([50, 100]);
        return { kind, name: `${which} ${percent}%`, action: { type: 'tcp', scenario: which, options: { percent } }, holds: [`tcp:${which}`, toxiproxy], down: [], touches: 'all', cuts: [], holdMs };
      }
      if (which === 'db-blackhole') return { kind, name: which, action: { type: 'tcp', scenario: which, options: {} }, holds: [`tcp:${which}`, toxiproxy], down: [], touches: 'all', cuts: [], holdMs };
      const flats = someFlats();
      const holds = [`tcp:${which}`, toxiproxy, ...flatKeys(flats)];
      if (which === 'devices-tcp-slow') {
        const perFlat = Object.fromEntries(flats.map((f) => [f, d.pick([5000, 12000, 30000])]));
        return { kind, name: `devices-tcp-slow ${flats.map((f) => `${f}=${perFlat[f]! / 1000}s`).join(',')}`, action: { type: 'tcp', scenario: which, options: { perFlat } }, holds, down: [], touches: flats, cuts: flats, holdMs: d.seconds(10, 40) };
      }
      return { kind, name: `${which} flats ${flats.join(',')}`, action: { type: 'tcp', scenario: which, options: { flats } }, holds, down: [], touches: flats, cuts: flats, holdMs: d.seconds(10, 40) };
    }
    case 'kill':
    case 'stop': {
      const p = d.pick([...replicas, ...layout.others]);
      const replica = serviceOf(p) !== undefined;
      const signal = kind === 'kill' ? 'SIGKILL' : 'SIGSTOP';
      return { kind, name: `${kind === 'kill' ? 'kill -9' : 'SIGSTOP'} ${p}`, action: { type: 'signal', process: p, signal }, holds: processKeys(p), down: replica ? [p] : [], touches: replica ? [] : 'all', cuts: p === 'devices' || p === 'toxiproxy' ? 'all' : [], holdMs: kind === 'kill' ? KILL_HOLD_MS : d.seconds(3, 20) };
    }
    case 'node': {
      const node = d.pick(Object.keys(layout.nodes).sort());
      const action = d.pick(['drain', 'crash', 'freeze'] as const);
      const rs = layout.nodes[node] ?? [];
      return { kind, name: `${node} ${action}`, action: { type: 'node', node, action }, holds: [`node:${node}`, ...rs.map((r) => `proc:${r}`)], down: [...rs], touches: [], cuts: [], holdMs: d.seconds(5, 30) };
    }
    case 'db': {
      const kill = d.int(0, 1) === 0;
      return kill
        ? { kind, name: 'db kill -9', action: { type: 'signal', process: 'ferretdb', signal: 'SIGKILL' }, holds: ['proc:ferretdb'], down: [], touches: 'all', cuts: [], holdMs: KILL_HOLD_MS }
        : { kind, name: 'db freeze', action: { type: 'signal', process: 'ferretdb', signal: 'SIGSTOP' }, holds: ['proc:ferretdb'], down: [], touches: 'all', cuts: [], holdMs: d.seconds(5, 25) };
    }
  }
}

/** Whether two faults holding these keys may not be on at once: the same thing, or a process and a fault that needs it (proc:X, uses:X); uses: keys share. */
export function conflicting(a: string, b: string): boolean {
  if (a === b) return !a.startsWith('uses:');
  const [ka, na] = a.split(':', 2);
  const [kb, nb] = b.split(':', 2);
  return na === nb && ((ka === 'proc' && kb === 'uses') || (ka === 'uses' && kb === 'proc'));
}

/** Whether every replica of some service would be down with these down at once. */
function takesAServiceDown(layout: CampaignLayout, down: ReadonlySet<string>, only?: string): boolean {
  const replicas = Object.values(layout.nodes).flat();
  const services = new Set(replicas.map((r) => serviceOf(r)!).filter((svc) => only === undefined || svc === only));
  return [...services].some((s) => replicas.filter((r) => serviceOf(r) === s).every((r) => down.has(r)));
}

/**
 * Draws a schedule: a fault every 2–10 s from the 5th second, skipped when
 * maxConcurrent are on (it waits for the next heal) or when what it would
 * hold is held; each heals before durationMs. Deterministic in its inputs.
 */
export function drawSchedule(options: ScheduleOptions, layout: CampaignLayout): CampaignSchedule {
  if (!Number.isSafeInteger(options.seed)) throw new Error(`seed: a whole number, got ${options.seed}`);
  if (options.kinds.length === 0) throw new Error('kinds: at least one');
  if (!(options.maxConcurrent >= 1)) throw new Error(`maxConcurrent: at least 1, got ${options.maxConcurrent}`);
  const d = new Draw(options.seed);
  const faults: CampaignFault[] = [];
  const kinds = [...options.kinds];
  let t = FIRST_FAULT_MS;
  for (;;) {
    const active = faults.filter((f) => f.atMs <= t && f.healMs > t);
    if (active.length >= options.maxConcurrent) {
      t = Math.min(...active.map((f) => f.healMs));
      continue;
    }
    // Shorter than 3 s left: no fault worth the name fits.
    if (t + 3000 > options.durationMs) break;
    const c = candidate(d.pick(kinds), d, layout);
    const held = active.flatMap((f) => f.holds);
    if (c !== undefined && !c.holds.some((k) => held.some((h) => conflicting(h, k)))) {
      const down = new Set([...active.flatMap((f) => f.down), ...c.down]);
      // A replica's failure that leaves its service none running stalls every flat: the healthy flats are excused.
      const touches = c.down.length > 0 && takesAServiceDown(layout, down) ? 'all' : c.touches;
      const cuts = c.down.length > 0 && takesAServiceDown(layout, down, 'ingestion') ? 'all' : c.cuts;
      // A flat unpolled too long loses readings at its devices, by design: heal in time, or not at all.
      const cutFlats = cuts === 'all' ? layout.flats : cuts;
      const latestHeal = Math.min(...cutFlats.map((flat) => unpolledSince(faults, flat, t) + DEVICE_REACH.maxUnpolledMs), options.durationMs);
      const healMs = Math.min(t + c.holdMs, latestHeal);
      if (healMs - t >= MIN_HOLD_MS) faults.push({ id: faults.length + 1, kind: c.kind, name: c.name, action: c.action, atMs: t, healMs, holds: c.holds, down: c.down, touches, cuts });
    }
    t += d.int(GAP_MS[0], GAP_MS[1]);
  }
  return { ...options, kinds, layout, faults };
}

/**
 * Since when flat has gone unpolled if a fault that cuts it starts at tMs:
 * the start of the run of cuts before it, cuts less than a back-off apart
 * counting as one (after a heal the next poll may wait that long); tMs when
 * none reaches it.
 */
function unpolledSince(faults: readonly CampaignFault[], flat: string, tMs: number): number {
  let start = tMs;
  let end = -Infinity;
  for (const f of faults) {
    if (!(f.cuts === 'all' || f.cuts.includes(flat))) continue;
    if (f.atMs > end + DEVICE_REACH.backoffMaxMs) start = f.atMs;
    end = Math.max(end, f.healMs);
  }
  return tMs > end + DEVICE_REACH.backoffMaxMs ? tMs : Math.min(start, tMs);
}

/** The flats excused at tMs (on, or healed less than recoveryMs ago): 'all', or these. */
export function excusedAt(schedule: Pick<CampaignSchedule, 'faults'>, tMs: number, recoveryMs: number): 'all' | Set<string> {
  return flatsOf(recentAt(schedule, tMs, recoveryMs), (f) => f.touches);
}

/** The faults on at tMs, or healed less than recoveryMs before it. */
function recentAt(schedule: Pick<CampaignSchedule, 'faults'>, tMs: number, recoveryMs: number): CampaignFault[] {
  return schedule.faults.filter((f) => f.atMs <= tMs && tMs < f.healMs + recoveryMs);
}

/** The union of the flats each fault names ('all' as soon as one names every flat). */
function flatsOf(faults: readonly CampaignFault[], named: (f: CampaignFault) => 'all' | readonly string[]): 'all' | Set<string> {
  const flats = new Set<string>();
  for (const f of faults) {
    const these = named(f);
    if (these === 'all') return 'all';
    for (const flat of these) flats.add(flat);
  }
  return flats;
}

/**
 * The flats whose fetching (ingestion's own freshness) is excused at tMs:
 * those a fault on, or healed less than recoveryMs ago, cuts off from every
 * poll (their devices, the simulator, Toxiproxy, every ingestion replica).
 * A fault on the data path (the database, storage, HAProxy) excuses nothing
 * here: ingestion keeps fetching into its outbox through it. One exception:
 * an ingestion replica down while the lease database is out of reach, since
 * no other replica can take its leases over until the database answers
 * (its flats are unknown from here: every flat).
 */
export function fetchExcusedAt(schedule: Pick<CampaignSchedule, 'faults'>, tMs: number, recoveryMs: number): 'all' | Set<string> {
  const recent = recentAt(schedule, tMs, recoveryMs);
  if (recent.some((f) => f.down.some((r) => serviceOf(r) === 'ingestion')) && recent.some(cutsLeases)) return 'all';
  return flatsOf(recent, (f) => f.cuts);
}

/** Whether a fault keeps ingestion from its lease database (frozen, killed, or its link broken). */
function cutsLeases(f: CampaignFault): boolean {
  return (f.action.type === 'signal' && f.action.process === 'ferretdb') || (f.action.type === 'tcp' && f.action.scenario.startsWith('db-'));
}

/** The faults on at tMs. */
export function activeAt(schedule: Pick<CampaignSchedule, 'faults'>, tMs: number): CampaignFault[] {
  return schedule.faults.filter((f) => f.atMs <= tMs && f.healMs > tMs);
}

/** Whether an ingestion replica is frozen at tMs (SIGSTOP of it, or a node freeze holding one): readings may sit in its memory. */
export function ingestionFrozenAt(schedule: Pick<CampaignSchedule, 'faults'>, tMs: number): boolean {
  return activeAt(schedule, tMs).some(
    (f) => (f.action.type === 'signal' && f.action.signal === 'SIGSTOP' && serviceOf(f.action.process) === 'ingestion') || (f.action.type === 'node' && f.action.action === 'freeze' && f.down.some((r) => serviceOf(r) === 'ingestion')),
  );
}

/** The processes a fault on at tMs keeps from answering on purpose (frozen, killed, on a failed node). */
export function silencedAt(schedule: Pick<CampaignSchedule, 'faults'>, tMs: number): Set<string> {
  const out = new Set<string>();
  for (const f of activeAt(schedule, tMs)) {
    if (f.action.type === 'signal') out.add(f.action.process);
    for (const r of f.down) out.add(r);
  }
  return out;
}

/** A schedule that cannot run on a layout: what it names that the stack lacks. */
export function layoutMismatch(schedule: CampaignSchedule, layout: CampaignLayout): string | undefined {
  const nodes = new Set(Object.keys(layout.nodes));
  const processes = new Set([...Object.values(layout.nodes).flat(), ...layout.others, 'ferretdb']);
  const flats = new Set(layout.flats);
  for (const f of schedule.faults) {
    const a = f.action;
    if (a.type === 'node' && !nodes.has(a.node)) return `fault ${f.id} (${f.name}) needs node ${a.node}`;
    if (a.type === 'signal' && !processes.has(a.process)) return `fault ${f.id} (${f.name}) needs process ${a.process}`;
    if (f.touches !== 'all') for (const flat of f.touches) if (!flats.has(flat)) return `fault ${f.id} (${f.name}) needs flat ${flat}`;
  }
  return undefined;
}

/** One broken invariant: when, which, and what was seen. */
export interface Violation {
  readonly tMs: number;
  readonly invariant: CampaignInvariant;
  readonly detail: string;
}

/** The invariants a campaign checks, continuously and at the end. */
export const CAMPAIGN_INVARIANTS = {
  'zero-gaps': 'zero gaps in every device’s sequence: every fetched reading is in storage or in an outbox (no acknowledged Append lost)',
  'healthy-fresh': 'flats no active fault touches are fresher than max-age; touched ones again within the recovery time after the heal',
  'fetch-fresh': 'every flat no active fault cuts off from its polls was fetched and kept in an outbox less than max-age ago, database and storage faults or not; cut ones again within the recovery time after the heal',
  'query-reachable': 'query answers the freshness report (a failure longer than 10 s that no fault excuses is a violation)',
  'serving-after-heal': 'every component SERVING again within the recovery time once nothing is on',
  'no-hang': 'every running service process answers its /metrics within 2 s (twice missed in a row is a hang)',
  'outbox-drained': 'the outboxes drain after the last heal (within the drain timeout)',
  'memory-bounded': 'each process’s resident memory stays under max-rss',
  'injected-as-scheduled': 'every fault was applied and healed as scheduled (a fault that could not act proves nothing)',
} as const;
export type CampaignInvariant = keyof typeof CAMPAIGN_INVARIANTS;

/**
 * Holes seen by a gap count that mean loss: those seen by the count before
 * too (a hole that persists; one count may catch a reading between fetch and
 * outbox), unless an ingestion replica was frozen at either count (it may hold
 * fetched readings in memory). Keys are "flat/device/epoch".
 */
export function persistentHoles(previous: ReadonlyMap<string, number> | undefined, now: ReadonlyMap<string, number>, frozen: boolean): string[] {
  if (previous === undefined || frozen) return [];
  return [...now.keys()].filter((k) => previous.has(k)).sort();
}
