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
  type StoredBucket,
  unpackBucket,
  type StateWriterDoc,
} from '@flatline/platform';

/** The snapshot's settings. */
export interface SnapshotSettings {
  /** Milliseconds between refreshes; 0: no timer, every call refreshes. */
  readonly refreshMs: number;
  /** Oldest copy still used. */
  readonly maxAgeMs: number;
  /** Bound on each read of a refresh. */
  readonly timeoutMs: number;
  /** Milliseconds between full loads (default 5 minutes). */
  readonly fullEveryMs?: number;
  /** Bound on the read of every bucket in a full load (default 10 × timeoutMs: ~3 MB at 10,000 flats, on a loaded database). */
  readonly fullTimeoutMs?: number;
}

/**
 * Following the log keeps the copy exact; a full load only drops what the
 * pruner removed (devices unseen for the TTL, pruned every 10 minutes) and
 * catches a log compacted past the copy (which starts one at once). At
 * 10,000 flats each full load decodes ~3 MB of bucket documents in FerretDB:
 * every 30 s in each replica, that was as much as the compactor's reads.
 */
const FULL_EVERY_MS = 300_000;
/** Log documents a writer's follow reads at once (concurrently, applied in order). */
const LOOKAHEAD = 2;
/** More log documents than this behind in one follow: a full load is cheaper. */
const MAX_FOLLOW = 400;
/** Full loads that raced a compaction are tried again this often before the last one is kept as it is. */
const FULL_LOAD_TRIES = 3;

/** What a refresh did, for tests and logs. */
export interface RefreshOutcome {
  /** Whether a full load was swapped in. */
  readonly full: boolean;
  /** Log documents applied (by the follow, or by the full load swapped in). */
  readonly applied: number;
  /** Whether the follow found a writer's log compacted past the copy (or too far ahead): a full load is under way, and until it is swapped in the copy misses what was compacted. */
  readonly behind: boolean;
}

/** A loaded copy: buckets, and per writer the n of its next log document to read. */
interface Copy {
  readonly docs: Map<string, StateDoc>;
  readonly cursors: Map<string, number>;
  readonly applied: number;
  readonly startedAt: number;
}

/** The flat state, kept in memory. */
export class StateSnapshot {
  private copy: Copy | undefined;
  private loadedAt = 0;
  private needFull = true;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RefreshOutcome> | undefined;
  /** A full load in the background, and its result once done (swapped in by the next refresh). */
  private loading: Promise<void> | undefined;
  private loaded: Copy | undefined;
  private lastFullError: unknown;
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

  /**
   * Brings the copy up to date now (one refresh at a time: a caller during
   * one waits for it); rejects if the database does not answer. A full load
   * that is due runs in the background and is swapped in by a later refresh,
   * so the copy stays usable while it reads every bucket; only the first
   * load is waited for.
   */
  refresh(): Promise<RefreshOutcome> {
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Loads in full (after any load already running) and swaps it in: the copy then has everything written before the call (tests). */
  async settle(): Promise<RefreshOutcome> {
    await this.loading;
    this.startFull();
    await this.loading;
    return this.refresh();
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
    return this.copy?.docs.get(stateBucket(flatId));
  }

  /** Every state document. */
  all(): StateDoc[] {
    return [...(this.copy?.docs.values() ?? [])];
  }

  private async run(): Promise<RefreshOutcome> {
    const started = this.now();
    try {
      let full = false;
      let applied = 0;
      let behind = false;
      const done = this.takeLoaded();
      if (done !== undefined) {
        // Swapped in between follows: no follow is running on the old copy now.
        this.copy = done;
        full = true;
        applied = done.applied;
      }
      if (this.copy === undefined) {
        // Nothing to answer from yet: wait for the first load.
        this.startFull();
        await this.loading;
        const first = this.takeLoaded();
        if (first === undefined) throw this.lastFullError ?? new Error('the first load of the flat state failed');
        this.copy = first;
        full = true;
        applied = first.applied;
      } else {
        const followed = await this.follow(this.copy);
        if (followed === undefined) this.needFull = behind = true;
        else applied += followed;
      }
      if (this.needFull || started - this.copy.startedAt >= (this.settings.fullEveryMs ?? FULL_EVERY_MS)) this.startFull();
      // A follow that found a writer's log compacted past this copy still counts: the copy misses at most what that
      // compaction moved (seconds old), until the full load it started is swapped in.
      this.loadedAt = started;
      if (this.failing) this.logger.info('state snapshot refreshes again');
      this.failing = false;
      return { full, applied, behind };
    } catch (err) {
      if (!this.failing) this.logger.warn({ err }, 'cannot refresh the state snapshot; calls refresh it first until it can');
      this.failing = true;
      throw err;
    }
  }

  /** The full load done in the background, if any (taken once). */
  private takeLoaded(): Copy | undefined {
    const copy = this.loaded;
    this.loaded = undefined;
    return copy;
  }

  /** Starts a full load in the background unless one runs; its result waits in `loaded`. */
  private startFull(): void {
    if (this.loading !== undefined) return;
    this.needFull = false;
    this.loading = this.loadFull()
      .then(
        (copy) => {
          this.loaded = copy;
          this.lastFullError = undefined;
        },
        (err: unknown) => {
          this.needFull = true;
          this.lastFullError = err;
          this.logger.warn({ err }, 'cannot load the flat state in full; following the log meanwhile, trying again at the next refresh');
        },
      )
      .finally(() => {
        this.loading = undefined;
      });
  }

  private writers(): Promise<StateWriterDoc[]> {
    return guard('read state writers', () => this.db.collection<StateWriterDoc>(STATE_LOG_COLLECTIONS.writers).find({}, deadline(this.settings.timeoutMs)).toArray());
  }

  /**
   * The writers' records, then every bucket, then each writer's log after
   * its `through`, by _id. A compaction between the first two reads moves
   * log documents into the buckets (perhaps after they were read) and
   * deletes them: the follow then stops at a missing document that the
   * records read again at the end say is compacted, and the load is done
   * again (the follow of a later refresh would find the same and ask for
   * another).
   */
  private async loadFull(): Promise<Copy> {
    const timeoutMS = this.settings.fullTimeoutMs ?? 10 * this.settings.timeoutMs;
    for (let attempt = 1; ; attempt++) {
      const startedAt = this.now();
      const before = await this.writers();
      const buckets = await guard('read flat state', () => this.db.collection<StoredBucket>(COLLECTIONS.state).find({}, deadline(timeoutMS)).toArray());
      const copy: Copy = { docs: new Map(buckets.map((d) => [d._id, unpackBucket(d)])), cursors: new Map(before.map((w) => [w._id, w.through + 1])), applied: 0, startedAt };
      let applied = 0;
      for (const w of before) applied += (await this.followWriter(copy, w, Infinity)) ?? 0;
      const after = await this.writers();
      const raced = after.some((w) => copy.cursors.has(w._id) && w.through >= copy.cursors.get(w._id)!);
      if (raced && attempt < FULL_LOAD_TRIES) continue;
      return { ...copy, applied };
    }
  }

  /**
   * Reads each writer's next log documents by _id into copy; returns how
   * many, or undefined when a full load is needed (a writer's log was
   * compacted past what this copy has, or it is too far behind).
   */
  private async follow(copy: Copy): Promise<number | undefined> {
    const writers = await this.writers();
    const known = new Set(writers.map((w) => w._id));
    for (const id of [...copy.cursors.keys()]) if (!known.has(id)) copy.cursors.delete(id);
    const counts = await Promise.all(writers.map((w) => this.followWriter(copy, w, MAX_FOLLOW)));
    if (counts.some((c) => c === undefined)) return undefined;
    // A follow stops at the first n it does not find: not written yet, or compacted and deleted since the records
    // were read (the records are raised before the log is deleted). Read after the misses, they tell which.
    const after = await this.writers();
    if (after.some((w) => copy.cursors.has(w._id) && w.through >= copy.cursors.get(w._id)!)) return undefined;
    return counts.reduce<number>((a, b) => a + (b ?? 0), 0);
  }

  private async followWriter(copy: Copy, writer: StateWriterDoc, max: number): Promise<number | undefined> {
    const log = this.db.collection<StateLogDoc>(STATE_LOG_COLLECTIONS.log);
    let next = copy.cursors.get(writer._id) ?? 1;
    // Already compacted past next: the buckets this copy holds may not have it.
    if (writer.through >= next) return undefined;
    let applied = 0;
    for (;;) {
      const ids = Array.from({ length: LOOKAHEAD }, (_, i) => stateLogId(writer._id, next + i));
      const found = await Promise.all(ids.map((_id) => guard('read flat-state log', () => log.findOne({ _id }, deadline(this.settings.timeoutMs)))));
      for (const doc of found) {
        if (doc === null) {
          copy.cursors.set(writer._id, next);
          return applied;
        }
        applyStateLog(copy.docs, doc);
        next += 1;
        applied += 1;
      }
      copy.cursors.set(writer._id, next);
      if (applied >= max) return undefined;
    }
  }
}
