/**
 * An in-memory copy of the flat state (last fetch and latest reading per
 * device). GetLatest and GetFreshness read it instead of asking the
 * database per call: the query bench measured one GetLatest at ~2 ms of
 * FerretDB CPU, which held the service to ~560 calls/s on 2 cores against
 * ~9,500 for a trivial grpc-js handler.
 *
 * How it follows storage (platform/state-log.ts): a full load reads the
 * writers' records, the bucket documents and the log after each writer's
 * `through`; every refreshMs it reads the writers' records and each writer's
 * next log documents by _id. Every fullEveryMs, and whenever a writer's log
 * it has not read was already compacted, it loads in full again (which also
 * drops what the pruner removed). A refresh costs a few small documents, not
 * every bucket (~3 MB at 10,000 flats, read twice a second by each replica
 * before the log).
 *
 * An answer is at most refreshMs (plus one refresh) behind storage. A copy
 * older than maxAgeMs (the database away, or slow) is not used: a call then
 * refreshes it first, and fails as it always did if the database does not
 * answer. With refreshMs 0 every call refreshes first.
 */
import type { Db } from 'mongodb';
import {
  deadline,
  guard,
  DeadlineExceededError,
  type Logger,
  COLLECTIONS,
  STATE_LOG_COLLECTIONS,
  applyStateLog,
  stateBucket,
  stateLogId,
  type StateDoc,
  type StateLogDoc,
  type StateWriterDoc,
} from '@flatline/platform';

/** The snapshot's settings. */
export interface SnapshotSettings {
  /** Milliseconds between refreshes; 0: no timer, every call refreshes. */
  readonly refreshMs: number;
  /** Oldest copy still used. */
  readonly maxAgeMs: number;
  readonly timeoutMs: number;
  /** Milliseconds between full loads (default 30 s). */
  readonly fullEveryMs?: number;
}

const FULL_EVERY_MS = 30_000;
/** Log documents a writer's follow may read at once (concurrently, applied in order). */
const LOOKAHEAD = 2;
/** More log documents than this behind in one refresh: a full load is cheaper. */
const MAX_FOLLOW = 400;
/** Full loads that raced a compaction are tried again this often before the last one is kept as it is. */
const FULL_LOAD_TRIES = 3;

/** What a refresh did, for tests and logs. */
export interface RefreshOutcome {
  readonly full: boolean;
  /** Log documents applied. */
  readonly applied: number;
}

/** The flat state, kept in memory. */
export class StateSnapshot {
  private docs = new Map<string, StateDoc>();
  /** Per writer, the n of its next log document to read. */
  private cursors = new Map<string, number>();
  private loadedAt = 0;
  private fullAt = -Infinity;
  private needFull = true;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RefreshOutcome> | undefined;
  private failing = false;

  constructor(
    private readonly db: Db,
    private readonly settings: SnapshotSettings,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts refreshing (the first load at once). */
  start(): void {
    if (this.settings.refreshMs === 0) return;
    const tick = (): void => {
      void this.refresh()
        .catch(() => undefined)
        .finally(() => {
          if (this.timer !== undefined) this.timer = setTimeout(tick, this.settings.refreshMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Stops refreshing. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Brings the copy up to date now (one refresh at a time: a caller during one waits for it); rejects if the database does not answer. */
  refresh(): Promise<RefreshOutcome> {
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** The old name of refresh(), kept for callers that only want it done. */
  async load(): Promise<void> {
    await this.refresh().catch(() => undefined);
  }

  /** Whether the copy is recent enough to answer from. */
  usable(): boolean {
    return this.settings.refreshMs > 0 && this.loadedAt > 0 && this.now() - this.loadedAt <= this.settings.maxAgeMs;
  }

  /**
   * Resolves once the copy is usable for an answer: at once if it is, after
   * a refresh otherwise, which rejects if the database does not answer, or
   * with DEADLINE_EXCEEDED after timeoutMs (the refresh goes on for the next call).
   */
  async current(timeoutMs: number): Promise<void> {
    if (this.usable()) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineExceededError(`the flat state was not read within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.refresh(), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The state document of flatId's bucket (undefined when that bucket has none yet). */
  bucketOf(flatId: string): StateDoc | undefined {
    return this.docs.get(stateBucket(flatId));
  }

  /** Every state document. */
  all(): StateDoc[] {
    return [...this.docs.values()];
  }

  private async run(): Promise<RefreshOutcome> {
    const started = this.now();
    try {
      let full = this.needFull || started - this.fullAt >= (this.settings.fullEveryMs ?? FULL_EVERY_MS);
      let applied = full ? await this.loadFull() : await this.follow();
      if (applied === undefined) {
        full = true;
        applied = await this.loadFull();
      }
      this.loadedAt = started;
      if (this.failing) this.logger.info('state snapshot refreshes again');
      this.failing = false;
      return { full, applied };
    } catch (err) {
      if (!this.failing) this.logger.warn({ err }, 'cannot refresh the state snapshot; calls refresh it first until it can');
      this.failing = true;
      throw err;
    }
  }

  private writers(): Promise<StateWriterDoc[]> {
    return guard('read state writers', () => this.db.collection<StateWriterDoc>(STATE_LOG_COLLECTIONS.writers).find({}, deadline(this.settings.timeoutMs)).toArray());
  }

  /**
   * Buckets, then the log after each writer's `through`, read in that order
   * after the writers' records: a compaction between the reads could have
   * moved a log document into the buckets after they were read and deleted
   * it before the log was, so the records are read again at the end, and a
   * load during which one moved is done again.
   */
  private async loadFull(): Promise<number> {
    const timeoutMS = this.settings.timeoutMs;
    for (let attempt = 1; ; attempt++) {
      const started = this.now();
      const before = await this.writers();
      const buckets = await guard('read flat state', () => this.db.collection<StateDoc>(COLLECTIONS.state).find({}, deadline(timeoutMS)).toArray());
      const logs = await guard('read flat-state log', () => this.db.collection<StateLogDoc>(STATE_LOG_COLLECTIONS.log).find({}, deadline(timeoutMS)).toArray());
      const after = await this.writers();
      const moved = before.some((w) => (after.find((a) => a._id === w._id)?.through ?? w.through) !== w.through);
      if (moved && attempt < FULL_LOAD_TRIES) continue;
      const docs = new Map(buckets.map((d) => [d._id, d]));
      const cursors = new Map<string, number>();
      for (const w of before) cursors.set(w._id, w.through + 1);
      let applied = 0;
      // In n order per writer, and only what follows `through` (the buckets have the rest) without a hole.
      logs.sort((a, b) => (a.w < b.w ? -1 : a.w > b.w ? 1 : a.n - b.n));
      for (const log of logs) {
        const next = cursors.get(log.w);
        if (next === undefined || log.n < next) continue;
        if (log.n !== next) continue; // a hole: the follow reads it by _id
        applyStateLog(docs, log);
        cursors.set(log.w, next + 1);
        applied += 1;
      }
      this.docs = docs;
      this.cursors = cursors;
      this.fullAt = started;
      this.needFull = false;
      return applied;
    }
  }

  /**
   * Reads each writer's next log documents by _id and applies them; returns
   * how many, or undefined when a full load is needed (a writer's log was
   * compacted past what this copy has, or it is too far behind).
   */
  private async follow(): Promise<number | undefined> {
    const writers = await this.writers();
    const known = new Set(writers.map((w) => w._id));
    for (const id of [...this.cursors.keys()]) if (!known.has(id)) this.cursors.delete(id);
    const counts = await Promise.all(writers.map((w) => this.followWriter(w)));
    if (counts.some((c) => c === undefined)) {
      this.needFull = true;
      return undefined;
    }
    return counts.reduce<number>((a, b) => a + (b ?? 0), 0);
  }

  private async followWriter(writer: StateWriterDoc): Promise<number | undefined> {
    const log = this.db.collection<StateLogDoc>(STATE_LOG_COLLECTIONS.log);
    let next = this.cursors.get(writer._id) ?? 1;
    // Already compacted past next: the buckets this copy holds may not have it.
    if (writer.through >= next) return undefined;
    let applied = 0;
    for (;;) {
      const ids = Array.from({ length: LOOKAHEAD }, (_, i) => stateLogId(writer._id, next + i));
      const found = await Promise.all(ids.map((_id) => guard('read flat-state log', () => log.findOne({ _id }, deadline(this.settings.timeoutMs)))));
      for (const doc of found) {
        if (doc === null) {
          this.cursors.set(writer._id, next);
          return applied;
        }
        applyStateLog(this.docs, doc);
        next += 1;
        applied += 1;
      }
      this.cursors.set(writer._id, next);
      if (applied >= MAX_FOLLOW) return undefined;
    }
  }
}
