/**
 * The flat-state log: how the last fetch and the latest readings reach query
 * without rewriting the bucket documents on every Append.
 *
 * Why: at 10,000 flats every bucket changes in every round of storage's
 * group commit, so each round rewrote all 64 buckets (~3 MB of documents),
 * and each query replica read all of them back every 500 ms. A CPU profile
 * of FerretDB at 10,000 flats put 60 % of its time in those reads and 24 %
 * in those updates; Appends waited seconds for their round and timed out.
 *
 * The layout:
 * - each storage process is a writer with a random id; a round of its group
 *   commit inserts one small log document, `<writer>.<n>` (n = 1, 2, …, with
 *   no hole: n+1 is inserted only once n is), holding what the round learned,
 *   grouped by bucket. An Append is answered once its round's document is in;
 * - `state_writers` has one document per writer: `through`, the highest n
 *   already compacted into the buckets, and `seen`, its last round;
 * - a compactor (any storage replica, every FLATLINE_STATE_COMPACT_MS) reads
 *   the log, merges it into the buckets (the greater value, as $max:
 *   idempotent), writes each back whole, raises each
 *   writer's `through`, then deletes what it applied. The buckets are then a
 *   checkpoint of everything up to `through`;
 * - query loads the buckets and the log after each writer's `through`, then
 *   follows each writer's log by _id (an equality FerretDB v1 pushes down):
 *   a few small documents a second instead of every bucket.
 *
 * `first.<flat>` (where a range with no start begins) goes through the log
 * too ($min), and ListMeasurements reads it from query's copy.
 *
 * Only one process at a time updates the bucket documents: the holder of
 * the compaction lock (`state_locks`, taken by inserting its one document).
 * FerretDB v1 runs an update as a read and then a write, not atomically
 * (FerretDB issues #3017, #3040): two $max updates of one bucket at once
 * can each write back the document it read, and one loses the other's
 * fields. A test with two compactors at once lost updates that way.
 */
import { type StateDoc } from './store-schema.ts';

/** Collections of the log. */
export const STATE_LOG_COLLECTIONS = {
  log: 'state_log',
  writers: 'state_writers',
  /** The compaction lock (one document, inserted to take it): only its holder updates the bucket documents. */
  locks: 'state_locks',
} as const;

/** What a round learned about one bucket's flats: fields as in StateDoc (`first` keeps the lower value, the others the greater). */
export interface BucketChange {
  at?: Record<string, Date>;
  latest?: Record<string, Record<string, string>>;
  first?: Record<string, Date>;
}

/** One round of one writer. */
export interface StateLogDoc {
  /** `<writer>.<n>` (stateLogId). */
  _id: string;
  /** The writer's id. */
  w: string;
  n: number;
  /** When the writer inserted it. */
  t: Date;
  /**
   * Per bucket id, what changed, as encodeBucketChange's text: one string
   * per bucket rather than a field per flat and device. FerretDB v1 decodes
   * every field of a document it reads with its type schema, and each log
   * document is read by each query replica and a compactor: at 10,000
   * flats, reading the log was most of FerretDB's CPU (profile).
   */
  b: Record<string, string>;
}

/** A BucketChange as compact JSON text (times as milliseconds). */
export function encodeBucketChange(change: BucketChange): string {
  const ms = (r: Record<string, Date> | undefined) => (r === undefined ? undefined : Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.getTime()])));
  return JSON.stringify({ a: ms(change.at), l: change.latest, f: ms(change.first) });
}

/** Decodes encodeBucketChange; throws on text it did not make. */
export function decodeBucketChange(text: string): BucketChange {
  const raw = JSON.parse(text) as { a?: Record<string, number>; l?: Record<string, Record<string, string>>; f?: Record<string, number> };
  const dates = (r: Record<string, number> | undefined) => (r === undefined ? undefined : Object.fromEntries(Object.entries(r).map(([k, v]) => [k, new Date(v)])));
  const change: BucketChange = {};
  if (raw.a !== undefined) change.at = dates(raw.a)!;
  if (raw.l !== undefined) change.latest = raw.l;
  if (raw.f !== undefined) change.first = dates(raw.f)!;
  return change;
}

/** The changes of a log document, per bucket, decoded. */
export function logChanges(log: StateLogDoc): Array<[string, BucketChange]> {
  return Object.entries(log.b).map(([bucket, text]) => [bucket, decodeBucketChange(text)]);
}

/** A writer's record. */
export interface StateWriterDoc {
  _id: string;
  /** Every log document of this writer with n ≤ through is in the buckets (and may be gone from the log). */
  through: number;
  /** When it registered, then its newest round compacted (the compactor forgets a writer with no log whose `seen` is an hour old; the writer then registers again under a new id). */
  seen: Date;
}

/** The _id of writer's n-th log document. */
export function stateLogId(writer: string, n: number): string {
  return `${writer}.${n}`;
}

function maxInto<T extends Date | string>(into: Record<string, T>, from: Record<string, T>): void {
  for (const [k, v] of Object.entries(from)) {
    const known = into[k];
    if (known === undefined || known < v) into[k] = v;
  }
}

function minInto(into: Record<string, Date>, from: Record<string, Date>): void {
  for (const [k, v] of Object.entries(from)) {
    const known = into[k];
    if (known === undefined || v < known) into[k] = v;
  }
}

/** Merges change into bucket doc (in place): `at` and `latest` keep the greater value, as $max does, `first` the lower, as $min. */
export function applyBucketChange(doc: StateDoc, change: BucketChange): void {
  if (change.at !== undefined) maxInto((doc.at ??= {}), change.at);
  if (change.first !== undefined) minInto((doc.first ??= {}), change.first);
  for (const [flatId, devices] of Object.entries(change.latest ?? {})) {
    const latest = (doc.latest ??= {});
    maxInto((latest[flatId] ??= {}), devices);
  }
}

/** Merges a log document into docs (bucket id → doc), creating buckets it names. */
export function applyStateLog(docs: Map<string, StateDoc>, log: StateLogDoc): void {
  for (const [bucket, change] of logChanges(log)) {
    let doc = docs.get(bucket);
    if (doc === undefined) docs.set(bucket, (doc = { _id: bucket }));
    applyBucketChange(doc, change);
  }
}

