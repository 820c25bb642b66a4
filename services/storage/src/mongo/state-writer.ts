/**
 * Group commit of flat state (last fetch per flat, latest reading per
 * device): Appends add what they learned to a pending set and wait for the
 * write that carries it; the writer turns everything pending into one $max
 * update per bucket document, so the cost follows the number of buckets, not
 * of flats. An Append is answered only once its state is written.
 */
import type { Db } from 'mongodb';
import { guard } from '@flatline/platform/mongo.js';
import { COLLECTIONS, deviceKey, encodeLatest, stateBucket, type LatestValue, type StateDoc } from '@flatline/platform/store-schema.js';

/** What one Append contributes. */
export interface StateUpdate {
  readonly fetches: ReadonlyMap<string, Date>;
  readonly latest: ReadonlyArray<{ flatId: string; deviceId: string; value: LatestValue }>;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Field → value to $max, per bucket document. */
type Pending = Map<string, Map<string, Date | string>>;

function merge(into: Pending, bucket: string, field: string, value: Date | string): void {
  let fields = into.get(bucket);
  if (fields === undefined) into.set(bucket, (fields = new Map()));
  const known = fields.get(field);
  if (known === undefined || known < value) fields.set(field, value);
}

/** The group-commit writer of flat state. */
export class StateWriter {
  private pending: Pending = new Map();
  private waiters: Waiter[] = [];
  private writing = false;

  constructor(
    private readonly db: Db,
    private readonly timeoutMs: number,
  ) {}

  /** Adds update to the next write; resolves once it is written, rejects if that write fails. */
  write(update: StateUpdate): Promise<void> {
    for (const [flatId, at] of update.fetches) merge(this.pending, stateBucket(flatId), `at.${flatId}`, at);
    for (const l of update.latest) merge(this.pending, stateBucket(l.flatId), `latest.${l.flatId}.${deviceKey(l.deviceId)}`, encodeLatest(l.value));
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.writing) void this.drain();
    return done;
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.waiters.length > 0) {
      const batch = this.pending;
      const waiters = this.waiters;
      this.pending = new Map();
      this.waiters = [];
      try {
        const state = this.db.collection<StateDoc>(COLLECTIONS.state);
        for (const [bucket, fields] of batch) {
          await guard('write flat state', () =>
            state.updateOne({ _id: bucket }, { $max: Object.fromEntries(fields) }, { upsert: true, timeoutMS: this.timeoutMs }),
          );
        }
        waiters.forEach((w) => w.resolve());
      } catch (err) {
        // Put it back ($max: harmless to write twice) for the next write; the
        // callers get the error and retry their Append anyway.
        for (const [bucket, fields] of batch) for (const [field, value] of fields) merge(this.pending, bucket, field, value);
        waiters.forEach((w) => w.reject(err));
      }
    }
    this.writing = false;
  }
}
