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
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { Binary } from 'mongodb';
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
   * Per bucket id, what changed (encodeLogChanges): JSON, deflated, as one
   * binary field. FerretDB v1 decodes every field of a document it reads
   * with its type schema and stores a document as JSON text, so a log
   * document of ~150 KB of JSON strings (the form before, `b`) cost it and
   * PostgreSQL ~57 ms of CPU to insert and read three times (each query
   * replica and a compactor read each); deflated to ~14 KB in one field,
   * ~7 ms (measured on this machine, FerretDB on PostgreSQL, 150 documents
   * of 530 flats each, as a round at 10,000 flats holds).
   *
   * A reader of a release before it finds no `b` and fails (an old
   * compactor's pass throws before it deletes anything; the log stays for a
   * new one): in a rolling upgrade, query before storage.
   */
  z?: Binary;
  /** The form of releases before `z`: per bucket id, encodeBucketChange's text. Read, never written. */
  b?: Record<string, string>;
}

/** A BucketChange as JSON (times as milliseconds). */
interface WireChange {
  a?: Record<string, number>;
  l?: Record<string, Record<string, string>>;
  f?: Record<string, number>;
}

function toWire(change: BucketChange): WireChange {
  const ms = (r: Record<string, Date> | undefined) => (r === undefined ? undefined : Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.getTime()])));
  return { a: ms(change.at), l: change.latest, f: ms(change.first) };
}

function fromWire(raw: WireChange): BucketChange {
  const dates = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, new Date(v)]));
  const change: BucketChange = {};
  if (raw.a !== undefined) change.at = dates(raw.a);
  if (raw.l !== undefined) change.latest = raw.l;
  if (raw.f !== undefined) change.first = dates(raw.f);
  return change;
}

/** value as JSON, raw deflate at level 1 (fast; ~10× smaller on flat state), in one binary field: the `z` of log documents and buckets. */
function deflateJson(value: unknown): Binary {
  return new Binary(deflateRawSync(JSON.stringify(value), { level: 1 }));
}

/** What deflateJson made. */
function inflateJson<T>(z: Binary): T {
  return JSON.parse(inflateRawSync(z.value()).toString('utf8')) as T;
}

/** A BucketChange as compact JSON text (times as milliseconds): the old log form (`b`). */
export function encodeBucketChange(change: BucketChange): string {
  return JSON.stringify(toWire(change));
}

/** Decodes encodeBucketChange; throws on text it did not make. */
export function decodeBucketChange(text: string): BucketChange {
  return fromWire(JSON.parse(text) as WireChange);
}

/** A log document's changes (bucket id → change) as its `z` field (deflateJson). */
export function encodeLogChanges(changes: Readonly<Record<string, BucketChange>>): Binary {
  return deflateJson(Object.fromEntries(Object.entries(changes).map(([bucket, change]) => [bucket, toWire(change)])));
}

/** The changes of a log document, per bucket, decoded (either form); throws on a document with neither. */
export function logChanges(log: StateLogDoc): Array<[string, BucketChange]> {
  if (log.z !== undefined) {
    return Object.entries(inflateJson<Record<string, WireChange>>(log.z)).map(([bucket, raw]) => [bucket, fromWire(raw)]);
  }
  if (log.b !== undefined) return Object.entries(log.b).map(([bucket, text]) => [bucket, decodeBucketChange(text)]);
  throw new Error(`flat-state log document ${log._id} holds no changes (neither z nor b)`);
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

/**
 * A bucket document as it is stored: its `at`, `latest` and `first` as one
 * deflated binary field, `z` (packBucket), for the reason the log's changes
 * are (StateLogDoc.z): FerretDB v1 decodes and encodes every field of a
 * document through its type schema, and a bucket at 10,000 flats has ~620
 * of them (~46 KB). The compactor reads and writes back each bucket every
 * pass, the pruner and query's full load read them all: those reads and
 * writes were ~15 % of a core in FerretDB at 10,000 flats (profile).
 * Plain `at`/`latest`/`first` fields are the form of releases before `z`
 * (and what a compactor of such a release adds beside it): read too, merged
 * as the log is. Fields flatline does not know are kept as they are.
 */
export interface StoredBucket extends StateDoc {
  z?: Binary;
}

/** A plain field of a stored bucket, which must be an object (of objects, for latest); throws on anything else. */
function objectField<T>(bucket: string, name: string, value: unknown, depth: 1 | 2): Record<string, T> {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
  if (!isObject(value) || (depth === 2 && !Object.values(value).every(isObject))) throw new Error(`flat-state bucket ${bucket} is malformed: its ${name} is not a map`);
  return value as Record<string, T>;
}

/** The bucket stored (either form, or both) as one plain StateDoc, fields flatline does not know included; throws on a malformed one. */
export function unpackBucket(stored: StoredBucket): StateDoc {
  const { z, at, latest, first, ...rest } = stored;
  const doc: StateDoc = { ...rest, _id: stored._id };
  if (z !== undefined) applyBucketChange(doc, fromWire(inflateJson<WireChange>(z)));
  const plain: BucketChange = {};
  if (at !== undefined) plain.at = objectField<Date>(stored._id, 'at', at, 1);
  if (latest !== undefined) plain.latest = objectField<Record<string, string>>(stored._id, 'latest', latest, 2);
  if (first !== undefined) plain.first = objectField<Date>(stored._id, 'first', first, 1);
  applyBucketChange(doc, plain);
  return doc;
}

/** A plain bucket as it is stored: `at`, `latest` and `first` deflated into `z` (deflateJson), other fields as they are. */
export function packBucket(doc: StateDoc): StoredBucket {
  const { at, latest, first, ...rest } = doc as StoredBucket;
  delete rest.z;
  return { ...rest, _id: doc._id, z: deflateJson(toWire({ at, latest, first })) };
}

/** Merges a log document into docs (bucket id → doc), creating buckets it names. */
export function applyStateLog(docs: Map<string, StateDoc>, log: StateLogDoc): void {
  for (const [bucket, change] of logChanges(log)) {
    let doc = docs.get(bucket);
    if (doc === undefined) docs.set(bucket, (doc = { _id: bucket }));
    applyBucketChange(doc, change);
  }
}

