/**
 * Moves the flat-state log into the bucket documents (platform/state-log.ts).
 * Any storage replica may run it at any time, several at once: each pass
 * reads each writer's log after its `through` (by _id, up to the first
 * missing n), merges it into the buckets (the greater value, as $max:
 * idempotent, in any order), raises each writer's `through` to the highest n it applied, and
 * only then deletes what it applied. A pass that fails part-way leaves
 * the log in place for the next one. So a writer that crashed loses nothing
 * it acknowledged: its log is compacted by whoever comes next.
 */
import { randomBytes } from 'node:crypto';
import { MongoServerError, type Db } from 'mongodb';
import {
  deadline,
  guard,
  silentLogger,
  COLLECTIONS,
  DUPLICATE_KEY,
  STATE_LOG_COLLECTIONS,
  applyBucketChange,
  applyStateLog,
  packBucket,
  stateLogId,
  unpackBucket,
  type BucketChange,
  type StateDoc,
  type StoredBucket,
  type StateLogDoc,
  type StateWriterDoc,
  type Logger,
} from '@flatline/platform';

/**
 * Merges change into one bucket document and writes it back whole, packed
 * (packBucket: its fields deflated into one): the
 * compactor's, under the lock of the buckets (state-compactor.ts). The
 * merge is applyBucketChange's (query applies the log with the same one):
 * the greater `at` and `latest`, the lower `first`, idempotent.
 *
 * Not a $max/$min update: FerretDB v1 checks each path of an update against
 * every path before it (validateOperatorKeys, quadratic), and applies them
 * one by one to the document's ordered keys. At 10,000 flats a bucket's
 * update names ~620 paths, and a profile put 41 % of FerretDB's CPU in
 * those updates (26 % in that check alone). FerretDB runs an update as a
 * read and a write anyway; the lock is what keeps a second writer out, as
 * it was with $max. A failure throws (UnavailableError when the database is away).
 */
async function updateBucket(db: Db, bucket: string, change: BucketChange, timeoutMs: number, lock: HeldLock): Promise<void> {
  const buckets = db.collection<StoredBucket>(COLLECTIONS.state);
  await guard('write flat state', async () => {
    for (let attempt = 1; ; attempt++) {
      const stored = await buckets.findOne({ _id: bucket }, deadline(timeoutMs));
      const doc = stored === null ? { _id: bucket } : unpackBucket(stored);
      applyBucketChange(doc, change);
      lock.check();
      try {
        await buckets.replaceOne({ _id: bucket }, packBucket(doc), deadline(timeoutMs, { upsert: true }));
        return;
      } catch (err) {
        // Two upserts of a bucket that did not exist yet (the lock holder and the pruner of an older release, or a
        // test without the lock): one inserts it, the other's insert is a duplicate key; read it and merge again.
        if (!(err instanceof MongoServerError && err.code === DUPLICATE_KEY) || attempt >= 2) throw err;
      }
    }
  });
}

/** Log documents one pass reads at most (the next pass goes on). */
export const MAX_LOG_PER_PASS = 1000;

/** Log documents of one writer read at once (concurrently). */
const LOOKAHEAD = 4;

/** A writer with no log left and not seen for this long is forgotten (its record deleted). */
export const FORGET_WRITER_MS = 3600_000;

/** What one pass did. */
export interface CompactOutcome {
  /** Log documents applied and deleted. */
  readonly applied: number;
  /** Buckets updated. */
  readonly buckets: number;
  /** Buckets whose update failed (their log stays for the next pass). */
  readonly failedBuckets: number;
  /** Writer records forgotten. */
  readonly forgotten: number;
  /** Another process held the lock: this pass did nothing. */
  readonly skipped?: boolean;
}

/** The compactor of the flat-state log. */
export class StateCompactor {
  constructor(
    private readonly db: Db,
    private readonly timeoutMs: number,
    /** Who holds the lock while this compactor runs (a process's id; each compactor of a test its own). */
    private readonly owner: string = randomBytes(6).toString('hex'),
    private readonly logger: Logger = silentLogger(),
    /**
     * How old (by its `t`) a log document must be before a pass moves it
     * (default 0: everything written, whatever its time). Query's copies follow the log every
     * FLATLINE_QUERY_SNAPSHOT_MS and one that finds a document compacted
     * before it read it must load every bucket again, and misses that
     * writer's changes until the load is in: compacting what was written a
     * moment ago made that happen at most passes (see the service's default).
     */
    private readonly graceMs: number = 0,
  ) {}

  /**
   * One pass: per writer, its log after `through` by _id (an indexed lookup
   * on PostgreSQL; a scan of the log would read every document, and a loaded
   * database could not read a grown log within the bound, so compaction
   * would never catch up), at most MAX_LOG_PER_PASS documents in all.
   */
  async compact(nowMs: number): Promise<CompactOutcome> {
    const outcome = await withBucketLock(this.db, this.owner, this.timeoutMs, (lock) => this.pass(nowMs, lock), 0, this.logger);
    return outcome ?? { applied: 0, buckets: 0, failedBuckets: 0, forgotten: 0, skipped: true };
  }

  private async pass(nowMs: number, lock: HeldLock): Promise<CompactOutcome> {
    const timeoutMS = this.timeoutMs;
    const records = await guard('read state writers', () => this.writers().find({}, deadline(timeoutMS)).toArray());
    const logs: StateLogDoc[] = [];
    const idle = new Set<string>();
    for (const w of records) {
      let n = w.through + 1;
      for (;;) {
        if (logs.length >= MAX_LOG_PER_PASS) break;
        const ids = Array.from({ length: LOOKAHEAD }, (_, i) => stateLogId(w._id, n + i));
        const found = await Promise.all(ids.map((_id) => guard('read flat-state log', () => this.log().findOne({ _id }, deadline(timeoutMS)))));
        // The first missing or too young document ends this writer's part: the log stays contiguous.
        const present = found.findIndex((d) => d === null || (this.graceMs > 0 && d.t.getTime() > nowMs - this.graceMs));
        const got = (present === -1 ? found : found.slice(0, present)) as StateLogDoc[];
        logs.push(...got);
        n += got.length;
        // Idle: nothing left in its log at all. Not a writer whose next document is too young, or was not looked at
        // (the pass full): forgotten, its record would leave that log to no one.
        if (present !== -1) {
          if (n === w.through + 1 && found[present] === null) idle.add(w._id);
          break;
        }
      }
    }
    // Per bucket, the pass's log merged into one change (the same merge as a bucket's).
    const merged = new Map<string, StateDoc>();
    const through = new Map<string, number>();
    for (const doc of logs) {
      // Contiguous from the writer's `through` + 1: the highest is how far this pass got.
      through.set(doc.w, Math.max(through.get(doc.w) ?? 0, doc.n));
      applyStateLog(merged, doc);
    }
    let failedBuckets = 0;
    let lastError: unknown;
    for (const [bucket, change] of merged) {
      // The lock is the only thing between this update and another process's (see platform/state-log.ts): stop well before it runs out.
      lock.check();
      try {
        await updateBucket(this.db, bucket, change, timeoutMS, lock);
      } catch (err) {
        failedBuckets += 1;
        lastError = err;
      }
    }
    // Nothing is marked or deleted unless every bucket took its part.
    if (failedBuckets > 0) throw Object.assign(new Error(`compaction left the log in place: ${failedBuckets} bucket update(s) failed: ${String(lastError)}`), { cause: lastError });
    for (const [writer, n] of through) {
      // `seen`: the writer's newest round compacted. Only the lock holder updates a record once it exists.
      const seen = new Date(Math.max(...logs.filter((d) => d.w === writer).map((d) => d.t.getTime())));
      await guard('mark state writer compacted', () => this.writers().updateOne({ _id: writer }, { $max: { through: n, seen } }, deadline(timeoutMS)));
    }
    // One delete per document, by _id (FerretDB pushes that down; an $in it would answer by reading the whole log).
    if (logs.length > 0) {
      await guard('delete compacted log', () =>
        this.log().bulkWrite(
          logs.map((d) => ({ deleteOne: { filter: { _id: d._id } } })),
          deadline(timeoutMS, { ordered: false }),
        ),
      );
    }
    // Records of writers gone for an hour with nothing left in the log.
    const old = new Date(nowMs - FORGET_WRITER_MS);
    const gone = records.filter((w) => w.seen < old && idle.has(w._id));
    for (const w of gone) await guard('forget state writer', () => this.writers().deleteOne({ _id: w._id, seen: w.seen }, deadline(timeoutMS)));
    return { applied: logs.length, buckets: merged.size, failedBuckets, forgotten: gone.length };
  }

  private log() {
    return this.db.collection<StateLogDoc>(STATE_LOG_COLLECTIONS.log);
  }

  private writers() {
    return this.db.collection<StateWriterDoc>(STATE_LOG_COLLECTIONS.writers);
  }
}

/** How long the lock is held at most; its holder stops updating buckets after half of it. */
export const LOCK_LEASE_MS = 60_000;

const LOCK_ID = 'buckets';

interface LockDoc {
  _id: string;
  owner: string;
  until: Date;
}

/** The lock while held: check() throws once half of the lease has gone. */
export interface HeldLock {
  check(): void;
}

/**
 * Runs fn while holding the lock of the bucket documents, taken by
 * inserting its one document (an insert of an _id that exists fails
 * atomically, which an update on FerretDB v1 does not); waits up to waitMs
 * for a holder to let go, then returns undefined without running fn. A lock
 * past its lease (a holder that crashed) is taken over. The holder stops
 * updating after half of the lease (HeldLock.check), so that a takeover
 * never meets it still writing.
 */
export async function withBucketLock<T>(db: Db, owner: string, timeoutMs: number, fn: (lock: HeldLock) => Promise<T>, waitMs = 0, logger: Logger = silentLogger()): Promise<T | undefined> {
  const locks = db.collection<LockDoc>(STATE_LOG_COLLECTIONS.locks);
  const giveUpAt = Date.now() + waitMs;
  let retries = 0;
  for (;;) {
    const takenAt = Date.now();
    const taken = await guard('take the flat-state lock', async () => {
      try {
        await locks.insertOne({ _id: LOCK_ID, owner, until: new Date(takenAt + LOCK_LEASE_MS) }, deadline(timeoutMs));
        return true;
      } catch (err) {
        if (!(err instanceof MongoServerError && err.code === DUPLICATE_KEY)) throw err;
        const held = await locks.findOne({ _id: LOCK_ID }, deadline(timeoutMs));
        // Gone meanwhile, or past its lease (its holder crashed or stopped long ago: a live one stops at half): try again at once.
        if (held === null) return 'again';
        if (held.until.getTime() < takenAt) {
          await locks.deleteOne({ _id: LOCK_ID, owner: held.owner, until: held.until }, deadline(timeoutMs));
          return 'again';
        }
        return false;
      }
    });
    if (taken === 'again' && ++retries <= 3) continue;
    if (taken === true) {
      try {
        return await fn({
          check: () => {
            if (Date.now() - takenAt > LOCK_LEASE_MS / 2) throw new Error(`the flat-state lock was held for more than ${LOCK_LEASE_MS / 2} ms: stopping before its lease runs out`);
          },
        });
      } finally {
        // What fn did stands; the lock runs out at its lease, and until then no other replica compacts or prunes.
        await guard('let go of the flat-state lock', () => locks.deleteOne({ _id: LOCK_ID, owner }, deadline(timeoutMs))).catch((err: unknown) =>
          logger.warn({ err, leaseMs: LOCK_LEASE_MS }, 'could not let go of the flat-state lock: other replicas wait for its lease to run out'),
        );
      }
    }
    if (Date.now() >= giveUpAt) return undefined;
    await new Promise((r) => setTimeout(r, 200));
  }
}
