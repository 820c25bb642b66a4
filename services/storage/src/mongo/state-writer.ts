/**
 * Group commit of flat state (last fetch per flat, latest reading per
 * device, earliest reading per flat): Appends add what they learned to a
 * pending set and wait for the round that carries it. A round inserts one
 * small document (its changes deflated) into the flat-state log (platform/state-log.ts: the last
 * fetches, latest readings and, where they lower it, earliest readings,
 * grouped by bucket); it updates no bucket. The compactor
 * (state-compactor.ts) moves the log into the buckets later. An Append is
 * answered only once its round is written.
 */
import { randomBytes } from 'node:crypto';
import { MongoServerError, type Db } from 'mongodb';
import {
  deadline,
  guard,
  DUPLICATE_KEY,
  STATE_LOG_COLLECTIONS,
  deviceKey,
  encodeLogChanges,
  encodeLatest,
  stateBucket,
  stateLogId,
  type BucketChange,
  type LatestValue,
  type StateLogDoc,
  type StateWriterDoc,
} from '@flatline/platform';

/** What one Append contributes. */
export interface StateUpdate {
  readonly fetches: ReadonlyMap<string, Date>;
  readonly latest: ReadonlyArray<{ flatId: string; deviceId: string; value: LatestValue }>;
  /** Per flat, the earliest taken_at of its readings in the Append ($min into `first.<flat>`). */
  readonly first?: ReadonlyMap<string, Date>;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Flats per log document: a round with more is split (a document must stay far below MongoDB's 16 MiB). */
export const LOG_FLATS_PER_DOC = 2000;

/** How often a writer makes sure its record is still there (the compactor forgets a writer with no log for an hour). */
const HEARTBEAT_MS = 10_000;

function maxInto<T extends Date | string>(into: Record<string, T>, field: string, value: T): void {
  const known = into[field];
  if (known === undefined || known < value) into[field] = value;
}

/**
 * The group-commit writer of flat state. A round whose log insert fails
 * fails all of its Appends (the outbox retries them) and is inserted again,
 * the same document under the same n, before any later round: a log never
 * has a hole, and an insert that did land but looked failed is a duplicate
 * key the retry accepts.
 */
export class StateWriter {
  private pendingLog = new Map<string, BucketChange>();
  private pendingFlats = new Set<string>();
  /** Per flat, the earliest reading of the round (only where it is lower than what the log already has). */
  private pendingFirst = new Map<string, Date>();
  private waiters: Waiter[] = [];
  private writing = false;
  /** This writer's id in the log: a new one for each process, and again when its record was forgotten. */
  private id = '';
  private next = 1;
  private beatAt = -Infinity;
  /** A round whose insert failed: inserted again before anything else. */
  private retry: StateLogDoc | undefined;
  /** Per flat, the earliest reading this writer's log already holds (a later Append's that is not lower adds nothing). */
  private readonly firstWritten = new Map<string, number>();

  constructor(
    private readonly db: Db,
    private readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The writer id of the log documents it writes now. */
  get writerId(): string {
    return this.id;
  }

  /** Adds update to the next round; resolves once it is written, rejects if its round's log insert fails. */
  write(update: StateUpdate): Promise<void> {
    const change = (flatId: string): BucketChange => {
      const bucket = stateBucket(flatId);
      let c = this.pendingLog.get(bucket);
      if (c === undefined) this.pendingLog.set(bucket, (c = {}));
      this.pendingFlats.add(flatId);
      return c;
    };
    for (const [flatId, at] of update.fetches) maxInto((change(flatId).at ??= {}), flatId, at);
    for (const l of update.latest) {
      const c = change(l.flatId);
      maxInto(((c.latest ??= {})[l.flatId] ??= {}), deviceKey(l.deviceId), encodeLatest(l.value));
    }
    for (const [flatId, takenAt] of update.first ?? []) {
      const written = this.firstWritten.get(flatId);
      if (written !== undefined && written <= takenAt.getTime()) continue;
      const c = change(flatId);
      const first = (c.first ??= {});
      if (first[flatId] === undefined || takenAt < first[flatId]) first[flatId] = takenAt;
      const pending = this.pendingFirst.get(flatId);
      if (pending === undefined || takenAt < pending) this.pendingFirst.set(flatId, takenAt);
    }
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.writing) void this.drain();
    return done;
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.waiters.length > 0) {
      const log = this.pendingLog;
      const flats = this.pendingFlats.size;
      const first = this.pendingFirst;
      const waiters = this.waiters;
      this.pendingLog = new Map();
      this.pendingFlats = new Set();
      this.pendingFirst = new Map();
      this.waiters = [];
      try {
        await this.appendLog(log, flats);
        for (const [flatId, at] of first) {
          const known = this.firstWritten.get(flatId);
          if (known === undefined || at.getTime() < known) this.firstWritten.set(flatId, at.getTime());
        }
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err);
      }
    }
    this.writing = false;
  }

  /** Registers (first round) or renews this writer's record; a record that was forgotten means a new id. */
  private async beat(): Promise<void> {
    const t = this.now();
    if (this.id !== '' && t - this.beatAt < HEARTBEAT_MS) return;
    const writers = this.db.collection<StateWriterDoc>(STATE_LOG_COLLECTIONS.writers);
    if (this.id !== '') {
      // Read, never written: the record is the compactor's (under the lock) once it exists. An update here met the
      // compactor's raise of `through` and, FerretDB v1 updates being a read then a write, could undo it.
      const mine = await guard('look up state writer', () => writers.findOne({ _id: this.id }, deadline(this.timeoutMs, { projection: { _id: 1 } })));
      if (mine !== null) {
        this.beatAt = t;
        return;
      }
    }
    // New, or forgotten by the compactor (no log for an hour): a fresh id, so
    // that no reader waits for an n the old record had already passed.
    const id = randomBytes(6).toString('hex');
    await guard('register state writer', () => writers.insertOne({ _id: id, through: 0, seen: new Date(t) }, deadline(this.timeoutMs)));
    this.id = id;
    this.next = 1;
    this.beatAt = t;
    if (this.retry !== undefined) this.retry = { ...this.retry, _id: stateLogId(id, 1), w: id, n: 1 };
  }

  /** Inserts one log document; a duplicate key is the same document already in (an insert that looked failed). */
  private async insertLog(doc: StateLogDoc): Promise<void> {
    await guard('write flat-state log', async () => {
      try {
        await this.db.collection<StateLogDoc>(STATE_LOG_COLLECTIONS.log).insertOne(doc, deadline(this.timeoutMs));
      } catch (err) {
        if (!(err instanceof MongoServerError && err.code === DUPLICATE_KEY)) throw err;
      }
    });
  }

  private async appendLog(log: ReadonlyMap<string, BucketChange>, flats: number): Promise<void> {
    await this.beat();
    if (this.retry !== undefined) {
      await this.insertLog(this.retry);
      this.retry = undefined;
    }
    if (log.size === 0) return;
    for (const part of split(log, flats)) {
      const doc: StateLogDoc = { _id: stateLogId(this.id, this.next), w: this.id, n: this.next, t: new Date(this.now()), z: encodeLogChanges(part) };
      this.next += 1;
      try {
        await this.insertLog(doc);
      } catch (err) {
        this.retry = doc;
        throw err;
      }
    }
  }
}

/** The round's buckets in parts of at most LOG_FLATS_PER_DOC flats (a bucket is never split). */
function split(log: ReadonlyMap<string, BucketChange>, flats: number): Array<Record<string, BucketChange>> {
  if (flats <= LOG_FLATS_PER_DOC) return [Object.fromEntries(log)];
  const parts: Array<Record<string, BucketChange>> = [];
  let part: Record<string, BucketChange> = {};
  let inPart = 0;
  for (const [bucket, change] of log) {
    const n = new Set([...Object.keys(change.at ?? {}), ...Object.keys(change.latest ?? {}), ...Object.keys(change.first ?? {})]).size;
    if (inPart > 0 && inPart + n > LOG_FLATS_PER_DOC) {
      parts.push(part);
      part = {};
      inPart = 0;
    }
    part[bucket] = change;
    inPart += n;
  }
  if (inPart > 0) parts.push(part);
  return parts;
}
