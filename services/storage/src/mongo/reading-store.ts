/** Writes validated batches to MongoDB; returns only what the database acknowledged. */
import { MongoBulkWriteError, type AnyBulkWriteOperation, type Db } from 'mongodb';
import { guard } from '@flatline/platform/mongo.js';
import { COLLECTIONS, latestKey, type FetchDoc, type LatestDoc, type ReadingDoc } from '@flatline/platform/store-schema.js';
import type { AppendBatch, ValidReading } from '../domain/append-batch.ts';

const DUPLICATE_KEY = 11000;

/** What one append stored. */
export interface AppendOutcome {
  readonly inserted: number;
  readonly duplicates: number;
}

/** Splits a bulk write error into duplicate keys (expected) and anything else (rethrown). */
function countDuplicates(err: unknown): { inserted: number; duplicates: number } {
  if (!(err instanceof MongoBulkWriteError)) throw err;
  const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
  if (errors.some((e) => e.code !== DUPLICATE_KEY) || err.writeConcernError) throw err;
  return { inserted: err.result.insertedCount, duplicates: errors.length };
}

/**
 * FerretDB v1 (SQLite) stalls on unordered update batches of about a hundred
 * statements (measured: 50 took 0.1 s, 100 never answered), so updates go in
 * small batches.
 */
const UPDATE_CHUNK = 25;

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += UPDATE_CHUNK) out.push(items.slice(i, i + UPDATE_CHUNK));
  return out;
}

/** Per device, the reading with the highest seq in the batch. */
function latestPerDevice(readings: readonly ValidReading[]): ValidReading[] {
  const best = new Map<string, ValidReading>();
  for (const r of readings) {
    const key = latestKey(r.flatId, r.deviceId);
    const known = best.get(key);
    if (known === undefined || known.seq < r.seq) best.set(key, r);
  }
  return [...best.values()];
}

/** The storage service's MongoDB repository. */
export class ReadingStore {
  constructor(private readonly db: Db) {}

  /** Creates the indexes the store relies on (idempotent). */
  async ensureIndexes(timeoutMS: number): Promise<void> {
    await guard('create indexes', async () => {
      const readings = this.db.collection<ReadingDoc>(COLLECTIONS.readings);
      await readings.createIndex({ flat_id: 1, device_id: 1, seq: 1 }, { unique: true, name: 'flat_device_seq', timeoutMS });
      await readings.createIndex({ flat_id: 1, taken_at: 1 }, { name: 'flat_taken_at', timeoutMS });
      await this.db.collection<LatestDoc>(COLLECTIONS.latest).createIndex({ flat_id: 1 }, { name: 'flat', timeoutMS });
    });
  }

  /**
   * Stores a batch: readings first (duplicates on (flat, device, seq) are
   * counted, not errors), then the latest reading per device, then the last
   * fetch per flat. A failure part-way leaves nothing the retry cannot redo.
   */
  async append(batch: AppendBatch, timeoutMS: number): Promise<AppendOutcome> {
    const storedAt = new Date();
    let outcome: AppendOutcome = { inserted: 0, duplicates: 0 };
    if (batch.readings.length > 0) {
      const docs: ReadingDoc[] = batch.readings.map((r) => ({
        flat_id: r.flatId,
        device_id: r.deviceId,
        seq: r.seq,
        taken_at: r.takenAt,
        quantity: r.quantity,
        unit: r.unit,
        value: r.value,
        stored_at: storedAt,
      }));
      outcome = await guard('insert readings', async () => {
        try {
          const res = await this.db.collection<ReadingDoc>(COLLECTIONS.readings).insertMany(docs, { ordered: false, timeoutMS });
          return { inserted: res.insertedCount, duplicates: 0 };
        } catch (err) {
          return countDuplicates(err);
        }
      });
      const latest: AnyBulkWriteOperation<LatestDoc>[] = latestPerDevice(batch.readings).map((r) => ({
        updateOne: {
          // Matches only an older latest; when a newer one exists the upsert
          // collides on _id, which is what "keep the newer" means here.
          filter: { _id: latestKey(r.flatId, r.deviceId), seq: { $lt: r.seq } },
          update: {
            $set: { flat_id: r.flatId, device_id: r.deviceId, seq: r.seq, taken_at: r.takenAt, quantity: r.quantity, unit: r.unit, value: r.value },
          },
          upsert: true,
        },
      }));
      for (const chunk of chunks(latest)) {
        await guard('update latest', async () => {
          try {
            await this.db.collection<LatestDoc>(COLLECTIONS.latest).bulkWrite(chunk, { ordered: false, timeoutMS });
          } catch (err) {
            countDuplicates(err);
          }
        });
      }
    }
    const fetches: AnyBulkWriteOperation<FetchDoc>[] = [...batch.fetches].map(([flatId, at]) => ({
      updateOne: { filter: { _id: flatId }, update: { $max: { last_fetch_at: at } }, upsert: true },
    }));
    for (const chunk of chunks(fetches)) {
      await guard('record fetches', () => this.db.collection<FetchDoc>(COLLECTIONS.fetches).bulkWrite(chunk, { ordered: false, timeoutMS }));
    }
    return outcome;
  }
}
