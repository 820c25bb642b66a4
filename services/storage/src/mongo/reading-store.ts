/** Writes validated batches to MongoDB; returns only what the database acknowledged. */
import { MongoBulkWriteError, MongoServerError, type Db } from 'mongodb';
import {
  deadline,
  guard,
  isUnreachable,
  UnavailableError,
  COLLECTIONS,
  EPOCH_BACKFILL,
  LEGACY_READING_INDEX,
  readingIndexesFor,
  isFerretDb,
  RANGE_INDEX,
  READING_SLOTS,
  slotMinute,
  slotOf,
  type ReadingDoc,
  type SlotsRecord,
  DUPLICATE_KEY,
  FETCH_DOCUMENTS,
  fetchDocsOf,
  type FetchDoc,
  type FetchDocumentsRecord,
} from '@flatline/platform';
import type { AppendBatch, ValidReading } from '../domain/append-batch.ts';
import { StateWriter, type StateUpdate } from './state-writer.ts';

const INDEX_NOT_FOUND = 27;
const NAMESPACE_NOT_FOUND = 26;

/** What one append stored. */
export interface AppendOutcome {
  readonly inserted: number;
  readonly duplicates: number;
}

/**
 * What an insertMany that threw still stored. The driver wraps every failure
 * in a MongoBulkWriteError, a reset or a timeout too (with no write errors at
 * all), so only one shape counts as stored: every document accounted for,
 * inserted or refused as a duplicate key, and no write concern error.
 * Anything else fails the Append, which the outbox retries (idempotent).
 */
function storedDespite(err: unknown, readingsPerDoc: readonly number[]): AppendOutcome {
  if (err instanceof MongoBulkWriteError) {
    const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
    const inserted = err.result.insertedCount;
    const onlyDuplicates = errors.length > 0 && errors.every((e) => e.code === DUPLICATE_KEY);
    if (onlyDuplicates && err.writeConcernError === undefined && inserted + errors.length === readingsPerDoc.length) {
      // In readings: a FetchDoc refused as a duplicate is all its readings stored before.
      const total = readingsPerDoc.reduce((a, b) => a + b, 0);
      const duplicates = errors.reduce((n, e) => n + (readingsPerDoc[e.index] ?? Number.NaN), 0);
      if (Number.isFinite(duplicates)) return { inserted: total - duplicates, duplicates };
    }
  }
  if (isUnreachable(err)) throw err; // guard() turns it into UNAVAILABLE
  const reason = err instanceof Error ? err.message : String(err);
  throw new UnavailableError(`insert readings failed, nothing is acknowledged (retry): ${reason}`);
}

/** Per flat, the earliest taken_at of the batch's readings (duplicates too: a retry after a lost state write carries it again). */
function firstPerFlat(readings: readonly ValidReading[]): StateUpdate['first'] {
  const first = new Map<string, Date>();
  for (const r of readings) {
    const known = first.get(r.flatId);
    if (known === undefined || r.takenAt < known) first.set(r.flatId, r.takenAt);
  }
  return first;
}

/** Per device, the newest reading of the batch: the highest (epoch, seq). */
function latestPerDevice(readings: readonly ValidReading[]): StateUpdate['latest'] {
  const best = new Map<string, ValidReading>();
  for (const r of readings) {
    const key = `${r.flatId}\u0000${r.deviceId}`;
    const known = best.get(key);
    if (known === undefined || known.epoch < r.epoch || (known.epoch === r.epoch && known.seq < r.seq)) best.set(key, r);
  }
  return [...best.values()].map((r) => ({
    flatId: r.flatId,
    deviceId: r.deviceId,
    value: { epoch: r.epoch, seq: r.seq, takenAtMs: r.takenAt.getTime(), value: r.value, quantity: r.quantity, unit: r.unit },
  }));
}

/**
 * Readings per insertMany: each chunk has the whole database bound
 * (FLATLINE_DB_TIMEOUT_MS) to itself. A chunk that fails fails the Append;
 * the chunks before it are stored, and the retry counts them as duplicates.
 */
export const INSERT_CHUNK = 1000;

/** How the store keeps readings (see FetchDoc). */
export interface ReadingStoreOptions {
  /** One document per fetch result and minute (FetchDoc) instead of one per reading; FerretDB only (FLATLINE_STORAGE_FETCH_DOCUMENTS). */
  readonly fetchDocuments?: boolean;
}

/** The storage service's MongoDB repository. */
export class ReadingStore {
  private readonly state: StateWriter;
  private readonly fetchDocuments: boolean;
  /**
   * READING_SLOTS' since (-Infinity without one; undefined until ensureIndexes read it):
   * query reads the part of a range before it the old way, which sees only
   * documents of one reading, so a reading taken before it (a backlog from
   * before the upgrade) is stored as one even with fetch documents on.
   */
  private slotsSinceMs: number | undefined;

  constructor(
    private readonly db: Db,
    stateTimeoutMs: number,
    options: ReadingStoreOptions = {},
  ) {
    this.state = new StateWriter(db, stateTimeoutMs);
    this.fetchDocuments = options.fetchDocuments ?? false;
  }

  /** Creates the indexes the store relies on (idempotent). */
  async ensureIndexes(timeoutMS: number): Promise<void> {
    await guard('create indexes', async () => {
      const readings = this.db.collection<ReadingDoc>(COLLECTIONS.readings);
      const migrations = this.db.collection<{ _id: string; done_at: Date }>(COLLECTIONS.migrations);
      // Readings of releases before epochs get epoch 0 first: an absent field
      // is NULL to FerretDB's SQLite unique index, and NULLs never collide.
      // It scans every reading (FerretDB uses no index for it), so it runs
      // until it is recorded done, not at every start (a day of history is
      // tens of millions of readings). A rolling upgrade from a release
      // before epochs finishes before this one's replicas start.
      const backfilled = (await migrations.findOne({ _id: EPOCH_BACKFILL }, deadline(timeoutMS))) !== null;
      if (!backfilled) await readings.updateMany({ epoch: { $exists: false } }, { $set: { epoch: 0 } }, deadline(Math.max(timeoutMS, 60000)));
      // One at a time: FerretDB v1.24 panics (and drops the connection) on a
      // createIndexes of several indexes when some already exist — what every
      // replica but the first finds.
      // On FerretDB without the range index, which only MongoDB reads with
      // (readingIndexesFor); one an earlier release made there goes.
      const ferretdb = await isFerretDb(this.db, timeoutMS);
      if (this.fetchDocuments && !ferretdb) {
        throw new Error('FLATLINE_STORAGE_FETCH_DOCUMENTS=1 needs FerretDB: on MongoDB the unique index of readings would refuse every fetch document of a flat but the first (a missing field is null there); set it to 0');
      }
      for (const { key, ...options } of readingIndexesFor({ ferretdb })) await readings.createIndex(key, deadline(timeoutMS, options));
      const unused = ferretdb ? [LEGACY_READING_INDEX, RANGE_INDEX] : [LEGACY_READING_INDEX];
      for (const name of unused) {
        await readings.dropIndex(name, deadline(timeoutMS)).catch((err: unknown) => {
          if (!(err instanceof MongoServerError && (err.code === INDEX_NOT_FOUND || err.code === NAMESPACE_NOT_FOUND))) throw err;
        });
      }
      if (!backfilled) await migrations.updateOne({ _id: EPOCH_BACKFILL }, { $setOnInsert: { done_at: new Date() } }, deadline(timeoutMS, { upsert: true }));
      // From now on every reading has a slot: since when, for query (READING_SLOTS).
      // Checked before writing: the first replica's record stands; a later
      // one's $setOnInsert would not change it either.
      const slots = this.db.collection<SlotsRecord>(COLLECTIONS.migrations);
      let record = await slots.findOne({ _id: READING_SLOTS }, deadline(timeoutMS));
      if (record === null) {
        const empty = (await readings.findOne({}, deadline(timeoutMS, { projection: { _id: 1 } }))) === null;
        const now = new Date();
        await slots.updateOne({ _id: READING_SLOTS }, { $setOnInsert: empty ? { done_at: now } : { since: now, done_at: now } }, deadline(timeoutMS, { upsert: true }));
        // Read back: another replica's record, written first, stands.
        record = await slots.findOne({ _id: READING_SLOTS }, deadline(timeoutMS));
      }
      this.slotsSinceMs = record?.since?.getTime() ?? Number.NEGATIVE_INFINITY;
      // Before the first fetch document: query refuses to read such a database the old way (FETCH_DOCUMENTS).
      if (this.fetchDocuments) {
        const records = this.db.collection<FetchDocumentsRecord>(COLLECTIONS.migrations);
        if ((await records.findOne({ _id: FETCH_DOCUMENTS }, deadline(timeoutMS))) === null) {
          await records.updateOne({ _id: FETCH_DOCUMENTS }, { $setOnInsert: { since: new Date() } }, deadline(timeoutMS, { upsert: true }));
        }
      }
    });
  }

  /**
   * Stores a batch: readings first, INSERT_CHUNK at a time, each insert
   * bounded by timeoutMS (duplicates on (flat, device, epoch, seq) are
   * counted, not errors), then the flat state (last fetch per flat, latest
   * reading per device) through the group-commit writer. A failure part-way
   * leaves nothing the retry cannot redo.
   */
  async append(batch: AppendBatch, timeoutMS: number): Promise<AppendOutcome> {
    const storedAt = new Date();
    const outcome = this.fetchDocuments ? await this.insertFetchDocs(batch, storedAt, timeoutMS) : await this.insertReadingDocs(batch.readings, storedAt, timeoutMS);
    await this.state.write({ fetches: batch.fetches, latest: latestPerDevice(batch.readings), first: firstPerFlat(batch.readings) });
    return outcome;
  }

  /** One document per reading, INSERT_CHUNK at a time. */
  private async insertReadingDocs(readings: readonly ValidReading[], storedAt: Date, timeoutMS: number): Promise<AppendOutcome> {
    const docs: ReadingDoc[] = readings.map((r) => ({
      flat_id: r.flatId,
      device_id: r.deviceId,
      epoch: r.epoch,
      seq: r.seq,
      taken_at: r.takenAt,
      quantity: r.quantity,
      unit: r.unit,
      value: r.value,
      stored_at: storedAt,
      slot: slotOf(r.flatId, slotMinute(r.takenAt.getTime())),
    }));
    return this.insertChunks(docs, docs.map(() => 1), timeoutMS);
  }

  /**
   * One FetchDoc per fetch result and minute: the same fetch result always
   * makes the same documents, so a retry meets its duplicates. Readings
   * taken before slotsSinceMs go one document each (see there).
   */
  private async insertFetchDocs(batch: AppendBatch, storedAt: Date, timeoutMS: number): Promise<AppendOutcome> {
    // Set by ensureIndexes, which the service runs before it takes an Append (a store used without it has no since to go by).
    const sinceMs = this.slotsSinceMs;
    if (sinceMs === undefined) throw new UnavailableError('storage has not prepared the database yet (indexes, slot record); retry');
    const old = batch.readings.filter((r) => r.takenAt.getTime() < sinceMs);
    const before = old.length === 0 ? { inserted: 0, duplicates: 0 } : await this.insertReadingDocs(old, storedAt, timeoutMS);
    const docs: FetchDoc[] = [];
    const weights: number[] = [];
    for (const result of batch.results) {
      const readings = result.readings.filter((r) => r.takenAt.getTime() >= sinceMs).map((r) => ({ deviceId: r.deviceId, epoch: r.epoch, seq: r.seq, takenAtMs: r.takenAt.getTime(), quantity: r.quantity, unit: r.unit, value: r.value }));
      for (const { doc, count } of fetchDocsOf(result.flatId, readings, storedAt)) {
        docs.push(doc);
        weights.push(count);
      }
    }
    const after = await this.insertChunks(docs, weights, timeoutMS);
    return { inserted: before.inserted + after.inserted, duplicates: before.duplicates + after.duplicates };
  }

  /**
   * Inserts docs INSERT_CHUNK readings' worth at a time, each insert bounded by
   * timeoutMS; weights[i] is how many readings docs[i] holds. In chunks, each
   * with its own deadline: a batch of 10,000 readings that one bound cannot
   * cover (a loaded database) still goes in, where one insertMany would be
   * cut at its deadline on every retry, for ever.
   */
  private async insertChunks(docs: ReadonlyArray<ReadingDoc | FetchDoc>, weights: readonly number[], timeoutMS: number): Promise<AppendOutcome> {
    let outcome: AppendOutcome = { inserted: 0, duplicates: 0 };
    for (let i = 0; i < docs.length; ) {
      let end = i;
      for (let readings = 0; end < docs.length && (end === i || readings + weights[end]! <= INSERT_CHUNK); end += 1) readings += weights[end]!;
      const chunk = docs.slice(i, end);
      const chunkWeights = weights.slice(i, end);
      i = end;
      const part = await guard('insert readings', async () => {
        try {
          const res = await this.db.collection<ReadingDoc | FetchDoc>(COLLECTIONS.readings).insertMany(chunk, deadline(timeoutMS, { ordered: false }));
          // Counted in readings only when every document was acknowledged; anything less is not a success to report.
          if (res.insertedCount !== chunk.length) throw new UnavailableError(`insert readings: ${res.insertedCount} of ${chunk.length} documents acknowledged; retry`);
          return { inserted: chunkWeights.reduce((a, b) => a + b, 0), duplicates: 0 };
        } catch (err) {
          return storedDespite(err, chunkWeights);
        }
      });
      outcome = { inserted: outcome.inserted + part.inserted, duplicates: outcome.duplicates + part.duplicates };
    }
    return outcome;
  }
}
