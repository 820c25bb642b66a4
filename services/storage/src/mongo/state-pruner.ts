/**
 * Keeps the flat-state documents bounded. A bucket document holds the latest
 * reading of every device of its flats and nothing ever removed a device, so
 * replaced meters accumulated until the bucket passed MongoDB's 16 MiB
 * document limit and every state write of that bucket failed for good. The
 * pruner removes the latest reading of devices not seen for deviceTtlMs
 * (their readings stay in the readings collection) and reports the size of
 * the largest bucket, so that a deployment heading for the limit is told
 * (log, metric, health) long before a write fails.
 */
import { randomBytes } from 'node:crypto';
import { BSON, type Db } from 'mongodb';
import { withBucketLock } from './state-compactor.ts';
import { deadline, guard, COLLECTIONS, decodeLatest, packBucket, unpackBucket, type Logger, type StateDoc, type StoredBucket } from '@flatline/platform';

/** MongoDB's document limit. */
export const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;

/** Pruner settings. */
export interface PruneSettings {
  /** A device whose latest reading was taken longer ago than this loses its entry in the flat state. */
  readonly deviceTtlMs: number;
  readonly timeoutMs: number;
  /** Where a lock that could not be let go is told (default: nowhere). */
  readonly logger?: Logger;
}

/** What one prune found and did. */
export interface PruneOutcome {
  /** Device entries removed. */
  readonly removed: number;
  /** Size of the largest bucket document after pruning. */
  readonly largestBytes: number;
  /** Entries that changed between the read and the removal (kept; a later round looks again). */
  readonly raced: number;
}

/** A latest-reading entry of a device not seen for the TTL, with the value read (the removal is conditional on it). */
interface StaleEntry {
  readonly flatId: string;
  /** The device's field name (deviceKey). */
  readonly key: string;
  readonly text: string;
}

/** The entries of one bucket whose devices were not seen for the TTL. */
function staleEntries(doc: StateDoc, oldestMs: number): StaleEntry[] {
  const stale: StaleEntry[] = [];
  for (const [flatId, devices] of Object.entries(doc.latest ?? {})) {
    for (const [key, text] of Object.entries(devices)) {
      const v = decodeLatest(text);
      // An entry that does not decode is no reading anyone can use: it goes too.
      if (v === undefined || v.takenAtMs < oldestMs) stale.push({ flatId, key, text });
    }
  }
  return stale;
}

/** What a read of the flat state found: per bucket, its size and the stale entries with the values read. */
export interface PrunePlan {
  readonly buckets: ReadonlyArray<{ readonly id: string; readonly bytes: number; readonly stale: readonly StaleEntry[] }>;
}

/** Prunes the flat state. */
export class StatePruner {
  constructor(
    private readonly db: Db,
    private readonly settings: PruneSettings,
    private readonly owner: string = randomBytes(6).toString('hex'),
  ) {}

  /** One pass over every bucket, plan then apply, holding the lock of the bucket documents (waits up to 30 s for it; state-compactor.ts). */
  async prune(nowMs: number): Promise<PruneOutcome> {
    const outcome = await withBucketLock(this.db, this.owner, this.settings.timeoutMs, async () => this.apply(await this.plan(nowMs)), 30_000, this.settings.logger);
    if (outcome === undefined) throw new Error('the flat-state lock stayed held by another replica for 30 s; pruning at the next pass');
    return outcome;
  }

  /** Reads every bucket and finds the stale device entries; a bucket's size is what it takes stored (packed). */
  async plan(nowMs: number): Promise<PrunePlan> {
    const docs = await guard('read flat state', () => this.state().find({}, deadline(this.settings.timeoutMs)).toArray());
    const oldestMs = nowMs - this.settings.deviceTtlMs;
    return { buckets: docs.map((doc) => ({ id: doc._id, bytes: BSON.calculateObjectSize(doc), stale: staleEntries(unpackBucket(doc), oldestMs) })) };
  }

  /**
   * Removes the planned entries from each bucket, read again and written
   * back whole (packed) under the lock of the buckets: an entry whose value
   * changed since the plan read it (a device that came back) keeps its new
   * reading and counts as raced (the next pass looks again). A flat left
   * with no device loses its empty entry.
   */
  async apply(plan: PrunePlan): Promise<PruneOutcome> {
    const timeoutMS = this.settings.timeoutMs;
    let removed = 0;
    let raced = 0;
    let largestBytes = 0;
    for (const bucket of plan.buckets) {
      let bytes = bucket.bytes;
      if (bucket.stale.length > 0) {
        const stored = await guard('read flat state', () => this.state().findOne({ _id: bucket.id }, deadline(timeoutMS)));
        const doc = stored === null ? undefined : unpackBucket(stored);
        let gone = 0;
        for (const { flatId, key, text } of bucket.stale) {
          const devices = doc?.latest?.[flatId];
          if (devices?.[key] !== text) {
            raced += 1;
            continue;
          }
          delete devices[key];
          if (Object.keys(devices).length === 0) delete doc!.latest![flatId];
          gone += 1;
        }
        if (doc !== undefined && gone > 0) {
          const packed = packBucket(doc);
          await guard('prune flat state', () => this.state().replaceOne({ _id: bucket.id }, packed, deadline(timeoutMS)));
          removed += gone;
          bytes = BSON.calculateObjectSize(packed);
        }
      }
      largestBytes = Math.max(largestBytes, bytes);
    }
    return { removed, largestBytes, raced };
  }

  private state() {
    return this.db.collection<StoredBucket>(COLLECTIONS.state);
  }
}
