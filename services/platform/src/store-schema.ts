/**
 * The MongoDB collections storage writes and query reads.
 *
 * FerretDB v1 has no $max/$last in $group, so the latest reading per device
 * and the last successful fetch per flat are kept, not aggregated. They live
 * in "flat state" documents, one per bucket of flats: one document per flat
 * or per device would cost one update per fetch, and FerretDB v1 on SQLite
 * takes about 2 ms per update (measured), so 10,000 flats every 5 s could
 * not keep up. Every change merges as $max would (the greater value; the
 * lower for `first`), so replicas and retries may write in any order; they
 * reach the buckets through the flat-state log (state-log.ts), and a bucket
 * is stored packed (state-log.ts, packBucket).
 */
import { createHash } from 'node:crypto';

/** Collection names. */
export const COLLECTIONS = {
  readings: 'readings',
  state: 'flat_state',
  /** One document per one-off migration done (its _id names it): a replica's start skips what is done. */
  migrations: 'migrations',
} as const;

/** The migration that gave readings stored before epochs epoch 0 (a scan of every reading: once, not at every start). */
export const EPOCH_BACKFILL = 'readings-epoch-0';

/**
 * The record of when storage began to write slots (SlotsRecord): the first
 * storage replica of a release with slots writes it when it starts, without
 * `since` if the database held no reading yet (every reading has a slot)
 * or with its start time otherwise (readings stored before it may have
 * none: query reads the part of a range before `since` the old way).
 */
export const READING_SLOTS = 'reading-slots';

/** The migrations document READING_SLOTS. */
export interface SlotsRecord {
  _id: typeof READING_SLOTS;
  /** Every reading stored at or after this time has a slot; absent: every reading has one (FerretDB drops a null in $setOnInsert). */
  since?: Date;
  done_at: Date;
}

/**
 * The length of a slot: a minute. A slot is a flat's readings taken in one
 * minute, "<flat>/<minute since the epoch>" (slotOf), written on every
 * reading (ReadingDoc.slot) so that they are one equality match: FerretDB v1
 * pushes down nothing but top-level equality (SQLite: only on _id; on
 * PostgreSQL `_jsonb->'slot' @> '"<slot>"'`, which a GIN index on
 * `(_jsonb->'slot')` answers: stack/src/postgres.ts). Query reads a time
 * range slot by slot there (services/query/src/mongo/query-store.ts).
 */
export const SLOT_MS = 60_000;

/** The minute since the Unix epoch that a time (ms) falls in, floored (times before 1970 fall in negative minutes). */
export function slotMinute(ms: number): number {
  return Math.floor(ms / SLOT_MS);
}

/** The slot of flatId's readings of minute (slotMinute): "<flat>/<minute>"; a flat id holds no '/'. */
export function slotOf(flatId: string, minute: number): string {
  return `${flatId}/${minute}`;
}

/**
 * The indexes of the readings collection on MongoDB, as the driver's
 * createIndexes takes them: storage creates them (and a benchmark's raw runs
 * the same; see readingIndexesFor):
 * - a reading is (flat, device, epoch, seq): unique, so a retry never stores
 *   one twice, and a device whose seq starts again after a reset stores its
 *   new readings beside the old ones;
 * - ListMeasurements filters on flat_id and a taken_at range and sorts by
 *   (taken_at, device_id, seq): the second index (RANGE_INDEX) serves both
 *   without a sort.
 */
export const READING_INDEXES = [
  { key: { flat_id: 1, device_id: 1, epoch: 1, seq: 1 }, name: 'flat_device_epoch_seq', unique: true },
  { key: { flat_id: 1, taken_at: 1, device_id: 1, seq: 1 }, name: 'flat_taken_at_device_seq' },
] as const;

/** The name of the range index of READING_INDEXES (ListMeasurements' on MongoDB). */
export const RANGE_INDEX = 'flat_taken_at_device_seq';

/**
 * The indexes storage keeps on the readings of a server. FerretDB v1 uses no
 * secondary index for a find: on SQLite it narrows only by _id, on
 * PostgreSQL it filters with `_jsonb->'<field>' @> …`, which the btree it
 * makes for an index cannot answer (query reads a range by slots there). The
 * range index would only slow every insert, so FerretDB keeps only the
 * unique one, which still refuses a duplicate reading. Measured on this
 * machine (FerretDB on PostgreSQL, 90,000 readings in insertMany of 1,000,
 * two runs each): with the range index 8.0–9.0 s of database CPU, without it
 * 6.9–7.1 s (about -18 %).
 */
export function readingIndexesFor(server: { readonly ferretdb: boolean }): ReadonlyArray<(typeof READING_INDEXES)[number]> {
  return server.ferretdb ? READING_INDEXES.filter((i) => i.name !== RANGE_INDEX) : READING_INDEXES;
}

/** The unique index of the releases before epochs: it would refuse a new epoch's seq 1. */
export const LEGACY_READING_INDEX = 'flat_device_seq';

/**
 * The record of when storage began to store readings per fetch (FetchDoc):
 * the first storage replica that does writes it when it starts. Query reads
 * a database that holds it slot by slot only (FLATLINE_QUERY_SLOT_READS):
 * a range read the old way would not see those readings, so it refuses.
 */
export const FETCH_DOCUMENTS = 'reading-fetch-documents';

/** The migrations document FETCH_DOCUMENTS. */
export interface FetchDocumentsRecord {
  _id: typeof FETCH_DOCUMENTS;
  since: Date;
}

/**
 * One fetch result's readings of one minute, in one document (storage with
 * FLATLINE_STORAGE_FETCH_DOCUMENTS=1, FerretDB only). Why: FerretDB v1
 * converts every field of every document into and out of PostgreSQL's
 * jsonb, and that, per reading, was most of the database's CPU: 60,000
 * readings at 3 per fetch cost 93–113 µs of database CPU each as one
 * document per reading, 60–70 µs as an array of subdocuments per fetch,
 * 20–21 µs as one JSON string per fetch (FerretDB on PostgreSQL with the
 * stack's indexes, measured on this machine). PostgreSQL still reads the
 * string as JSON (the gap count: stack/src/postgres.ts).
 *
 * - slot: as ReadingDoc.slot, so that a slot lookup finds both kinds;
 * - _id: the slot and a hash of the readings, so that a retried Append
 *   meets its own duplicate key, and a different fetch result (another
 *   replica's, with readings this one stored too) is a document of its own:
 *   readers drop the repeated readings (readingsOfDocs);
 * - readings_json: JSON of PackedReading rows.
 *
 * No field of ReadingDoc's unique index is set, so FerretDB's unique index
 * (NULLs never collide there) leaves these documents alone; MongoDB treats a
 * missing field as null, which would collide: storage refuses the layout
 * there.
 */
export interface FetchDoc {
  _id: string;
  slot: string;
  stored_at: Date;
  readings_json: string;
}

/** A reading in FetchDoc.readings_json: [device_id, epoch, seq, taken_at in ms, quantity, unit, value]. */
export type PackedReading = [deviceId: string, epoch: number, seq: number, takenAtMs: number, quantity: string, unit: string, value: number];

/** A reading as a reader of the readings collection sees it, whichever document held it. */
export interface StoredReading {
  readonly flatId: string;
  readonly deviceId: string;
  readonly epoch: number;
  readonly seq: number;
  readonly takenAtMs: number;
  readonly quantity: string;
  readonly unit: string;
  readonly value: number;
}

/**
 * The FetchDocs of one fetch result of flatId, each with how many readings
 * it holds: one per minute its readings were taken in, each with its
 * readings in the order given. The same readings in the same order give the
 * same documents (and _ids).
 */
export function fetchDocsOf(flatId: string, readings: readonly Omit<StoredReading, 'flatId'>[], storedAt: Date): Array<{ doc: FetchDoc; count: number }> {
  const byMinute = new Map<number, PackedReading[]>();
  for (const r of readings) {
    const minute = slotMinute(r.takenAtMs);
    let rows = byMinute.get(minute);
    if (rows === undefined) byMinute.set(minute, (rows = []));
    rows.push([r.deviceId, r.epoch, r.seq, r.takenAtMs, r.quantity, r.unit, r.value]);
  }
  return [...byMinute].map(([minute, rows]) => {
    const slot = slotOf(flatId, minute);
    const json = JSON.stringify(rows);
    return { doc: { _id: `${slot}/${createHash('sha256').update(json).digest('base64url').slice(0, 22)}`, slot, stored_at: storedAt, readings_json: json }, count: rows.length };
  });
}

/** A document of the readings collection that is not what its shape says (a FetchDoc whose readings_json does not parse as PackedReading rows). */
export class MalformedReadingDocError extends Error {
  override name = 'MalformedReadingDocError';
}

function isPackedReading(row: unknown): row is PackedReading {
  return (
    Array.isArray(row) &&
    row.length === 7 &&
    typeof row[0] === 'string' &&
    Number.isSafeInteger(row[1]) &&
    Number.isSafeInteger(row[2]) &&
    Number.isFinite(row[3]) &&
    typeof row[4] === 'string' &&
    typeof row[5] === 'string' &&
    typeof row[6] === 'number'
  );
}

/** A document of the readings collection as read back (the driver's _id type aside). */
export type ReadingsCollectionDoc = ReadingDoc | (Omit<FetchDoc, '_id'> & { _id?: unknown });

/** The readings of a document of the readings collection: a ReadingDoc's one, or a FetchDoc's all; throws MalformedReadingDocError. */
export function readingsOfDoc(doc: ReadingsCollectionDoc): StoredReading[] {
  if (!('readings_json' in doc)) {
    return [{ flatId: doc.flat_id, deviceId: doc.device_id, epoch: doc.epoch ?? 0, seq: doc.seq, takenAtMs: doc.taken_at.getTime(), quantity: doc.quantity, unit: doc.unit, value: doc.value }];
  }
  const flatId = doc.slot.slice(0, doc.slot.lastIndexOf('/'));
  let rows: unknown;
  try {
    rows = JSON.parse(doc.readings_json);
  } catch {
    throw new MalformedReadingDocError(`readings document ${String(doc._id)}: readings_json is not JSON`);
  }
  if (!Array.isArray(rows) || !rows.every(isPackedReading)) throw new MalformedReadingDocError(`readings document ${String(doc._id)}: readings_json is not a list of [device, epoch, seq, taken_at ms, quantity, unit, value]`);
  return rows.map(([deviceId, epoch, seq, takenAtMs, quantity, unit, value]) => ({ flatId, deviceId, epoch, seq, takenAtMs, quantity, unit, value }));
}

/**
 * The readings of docs in page order (taken_at, device_id, seq, then
 * epoch and flat), each once: a reading two fetch results carried (a
 * replica taking over a flat fetches the devices' whole window again) is in
 * two documents. Readings of different flats are never one.
 */
export function readingsOfDocs(docs: readonly ReadingsCollectionDoc[]): StoredReading[] {
  const all = docs.flatMap(readingsOfDoc);
  const text = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
  all.sort((a, b) => a.takenAtMs - b.takenAtMs || text(a.deviceId, b.deviceId) || a.seq - b.seq || a.epoch - b.epoch || text(a.flatId, b.flatId));
  return all.filter((r, i) => {
    const p = all[i - 1];
    return p === undefined || p.takenAtMs !== r.takenAtMs || p.deviceId !== r.deviceId || p.seq !== r.seq || p.epoch !== r.epoch || p.flatId !== r.flatId;
  });
}

/** Buckets of flat state documents. */
export const STATE_BUCKETS = 64;

/**
 * One stored reading; unique on (flat_id, device_id, epoch, seq). Readings
 * stored before epochs existed get epoch 0 when storage starts (an absent
 * field would never collide in FerretDB's unique index).
 */
export interface ReadingDoc {
  flat_id: string;
  device_id: string;
  epoch: number;
  seq: number;
  taken_at: Date;
  quantity: string;
  unit: string;
  value: number;
  stored_at: Date;
  /** slotOf(flat_id, slotMinute(taken_at)); absent on readings stored before slots (see READING_SLOTS). */
  slot?: string;
}

/**
 * The state of a bucket of flats: `at.<flat>` is the last successful fetch,
 * `latest.<flat>.<device key>` the latest reading, encoded by encodeLatest,
 * `first.<flat>` the earliest taken_at of the flat's readings stored since
 * slots exist ($min; where a range with no start begins). Stored packed
 * (StoredBucket): read it with unpackBucket.
 */
export interface StateDoc {
  _id: string;
  at?: Record<string, Date>;
  first?: Record<string, Date>;
  latest?: Record<string, Record<string, string>>;
}

/** Buckets of the flats seen last (a sha256 per call was 8.5-9.4 % of a storage replica's CPU at 10,000 flats); cleared when full. */
const bucketMemo = new Map<string, string>();
const BUCKET_MEMO_MAX = 200_000;

/** _id of the state document of flatId's bucket. */
export function stateBucket(flatId: string): string {
  const known = bucketMemo.get(flatId);
  if (known !== undefined) return known;
  const bucket = `b${createHash('sha256').update(flatId).digest().readUInt32BE(0) % STATE_BUCKETS}`;
  if (bucketMemo.size >= BUCKET_MEMO_MAX) bucketMemo.clear();
  bucketMemo.set(flatId, bucket);
  return bucket;
}

/** A device id as a field name: '.' would split the path, '%' never occurs in an id. */
export function deviceKey(deviceId: string): string {
  return deviceId.replaceAll('.', '%2E');
}

/** The device id of a field name made by deviceKey. */
export function deviceIdOf(key: string): string {
  return key.replaceAll('%2E', '.');
}

/** The latest-reading fields of one device. */
export interface LatestValue {
  /** How often the device's seq went backwards (0: never). */
  readonly epoch: number;
  readonly seq: number;
  readonly takenAtMs: number;
  readonly value: number;
  readonly quantity: string;
  readonly unit: string;
}

/**
 * A reading as a string whose order is the order of (epoch, seq), so that
 * `$max` keeps the newest reading: epoch 0 is 16 zero-padded digits of seq
 * first (the format from before epochs); a later epoch is "e", 6 digits of
 * epoch, then the 16 digits of seq, and "e" sorts after every digit.
 */
export function encodeLatest(v: LatestValue): string {
  const prefix = v.epoch === 0 ? '' : `e${String(v.epoch).padStart(6, '0')}`;
  return `${prefix}${String(v.seq).padStart(16, '0')}${JSON.stringify([v.takenAtMs, v.value, v.quantity, v.unit])}`;
}

/** Decodes encodeLatest; undefined for anything else. */
export function decodeLatest(text: string): LatestValue | undefined {
  const epoch = text.startsWith('e') ? Number(text.slice(1, 7)) : 0;
  const rest = text.startsWith('e') ? text.slice(7) : text;
  const seq = Number(rest.slice(0, 16));
  try {
    const [takenAtMs, value, quantity, unit] = JSON.parse(rest.slice(16)) as [number, number, string, string];
    return Number.isSafeInteger(seq) && Number.isSafeInteger(epoch) ? { epoch, seq, takenAtMs, value, quantity, unit } : undefined;
  } catch {
    return undefined;
  }
}
