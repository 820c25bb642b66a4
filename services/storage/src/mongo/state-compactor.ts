/**
 * Moves the flat-state log into the bucket documents (platform/state-log.ts).
 * Any storage replica may run it at any time, several at once: each pass
 * reads the whole log, applies it to the buckets with $max (idempotent, in
 * any order), raises each writer's `through` to the highest n it applied,
 * and only then deletes what it applied. A pass that fails part-way leaves
 * the log in place for the next one. So a writer that crashed loses nothing
 * it acknowledged: its log is compacted by whoever comes next.
 */
import type { Db } from 'mongodb';
import {
  deadline,
  guard,
  STATE_LOG_COLLECTIONS,
  bucketChangeFields,
  type StateLogDoc,
  type StateWriterDoc,
} from '@flatline/platform';
import { updateBucket } from './state-writer.ts';

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
}

/** The compactor of the flat-state log. */
export class StateCompactor {
  constructor(
    private readonly db: Db,
    private readonly timeoutMs: number,
  ) {}

  /** One pass. */
  async compact(nowMs: number): Promise<CompactOutcome> {
    const timeoutMS = this.timeoutMs;
    const logs = await guard('read flat-state log', () => this.log().find({}, deadline(timeoutMS)).toArray());
    const merged = new Map<string, Map<string, Date | string>>();
    const through = new Map<string, number>();
    for (const doc of logs) {
      through.set(doc.w, Math.max(through.get(doc.w) ?? 0, doc.n));
      for (const [bucket, change] of Object.entries(doc.b)) {
        let fields = merged.get(bucket);
        if (fields === undefined) merged.set(bucket, (fields = new Map()));
        for (const [field, value] of bucketChangeFields(change)) {
          const known = fields.get(field);
          if (known === undefined || known < value) fields.set(field, value);
        }
      }
    }
    let failedBuckets = 0;
    let lastError: unknown;
    for (const [bucket, fields] of merged) {
      try {
        await updateBucket(this.db, bucket, fields, new Map(), timeoutMS);
      } catch (err) {
        failedBuckets += 1;
        lastError = err;
      }
    }
    // Nothing is marked or deleted unless every bucket took its part.
    if (failedBuckets > 0) throw Object.assign(new Error(`compaction left the log in place: ${failedBuckets} bucket update(s) failed: ${String(lastError)}`), { cause: lastError });
    for (const [writer, n] of through) {
      await guard('mark state writer compacted', () => this.writers().updateOne({ _id: writer }, { $max: { through: n } }, deadline(timeoutMS)));
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
    const gone = (await guard('read state writers', () => this.writers().find({}, deadline(timeoutMS)).toArray())).filter((w) => w.seen < old && !through.has(w._id));
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
