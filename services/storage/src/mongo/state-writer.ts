/**
 * Group commit of flat state (last fetch per flat, latest reading per
 * device, earliest reading per flat): Appends add what they learned to a
 * pending set and wait for the write that carries it; the writer turns
 * everything pending into one $max (and $min) update per bucket document, so the cost follows the number of buckets, not
 * of flats. An Append is answered only once its state is written.
 */
import type { Db } from 'mongodb';
import { deadline, guard, UnavailableError, COLLECTIONS, deviceKey, encodeLatest, stateBucket, type LatestValue, type StateDoc } from '@flatline/platform';

/** What one Append contributes. */
export interface StateUpdate {
  readonly fetches: ReadonlyMap<string, Date>;
  readonly latest: ReadonlyArray<{ flatId: string; deviceId: string; value: LatestValue }>;
  /** Per flat, the earliest taken_at of its readings in the Append ($min into `first.<flat>`). */
  readonly first?: ReadonlyMap<string, Date>;
}

interface Waiter {
  /** The buckets this waiter's update touches: it fails only if one of them does. */
  readonly buckets: ReadonlySet<string>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Per bucket document, field → value to $max and field → value to $min. */
type Pending = Map<string, { max: Map<string, Date | string>; min: Map<string, Date> }>;

function fieldsOf(into: Pending, bucket: string): { max: Map<string, Date | string>; min: Map<string, Date> } {
  let fields = into.get(bucket);
  if (fields === undefined) into.set(bucket, (fields = { max: new Map(), min: new Map() }));
  return fields;
}

function merge(into: Pending, bucket: string, field: string, value: Date | string): void {
  const { max } = fieldsOf(into, bucket);
  const known = max.get(field);
  if (known === undefined || known < value) max.set(field, value);
}

function mergeMin(into: Pending, bucket: string, field: string, value: Date): void {
  const { min } = fieldsOf(into, bucket);
  const known = min.get(field);
  if (known === undefined || value < known) min.set(field, value);
}

/**
 * The group-commit writer of flat state. Each bucket document is written on
 * its own: a bucket whose update fails fails only the Appends that touched
 * it, and what failed is not kept for the next round (the failed Appends
 * carry it again when the outbox retries them), so one bad bucket can never
 * block the others or every later round.
 */
export class StateWriter {
  private pending: Pending = new Map();
  private waiters: Waiter[] = [];
  private writing = false;

  constructor(
    private readonly db: Db,
    private readonly timeoutMs: number,
  ) {}

  /** Adds update to the next write; resolves once it is written, rejects if the write of one of its buckets fails. */
  write(update: StateUpdate): Promise<void> {
    const buckets = new Set<string>();
    for (const [flatId, at] of update.fetches) {
      const bucket = stateBucket(flatId);
      buckets.add(bucket);
      merge(this.pending, bucket, `at.${flatId}`, at);
    }
    for (const l of update.latest) {
      const bucket = stateBucket(l.flatId);
      buckets.add(bucket);
      merge(this.pending, bucket, `latest.${l.flatId}.${deviceKey(l.deviceId)}`, encodeLatest(l.value));
    }
    for (const [flatId, takenAt] of update.first ?? []) {
      const bucket = stateBucket(flatId);
      buckets.add(bucket);
      mergeMin(this.pending, bucket, `first.${flatId}`, takenAt);
    }
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ buckets, resolve, reject }));
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
      const state = this.db.collection<StateDoc>(COLLECTIONS.state);
      const failed = new Map<string, unknown>();
      let unreachable: unknown;
      for (const [bucket, fields] of batch) {
        if (unreachable !== undefined) {
          // The database is away: the other buckets would each wait out the timeout.
          failed.set(bucket, unreachable);
          continue;
        }
        try {
          await guard('write flat state', () =>
            state.updateOne(
              { _id: bucket },
              {
                // MongoDB refuses an empty operator.
                ...(fields.max.size > 0 ? { $max: Object.fromEntries(fields.max) } : {}),
                ...(fields.min.size > 0 ? { $min: Object.fromEntries(fields.min) } : {}),
              },
              deadline(this.timeoutMs, { upsert: true }),
            ),
          );
        } catch (err) {
          failed.set(bucket, err);
          if (err instanceof UnavailableError) unreachable = err;
        }
      }
      for (const w of waiters) {
        const bad = [...w.buckets].find((b) => failed.has(b));
        if (bad === undefined) w.resolve();
        else w.reject(failed.get(bad));
      }
    }
    this.writing = false;
  }
}
