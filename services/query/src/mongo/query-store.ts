/** Reads of the collections that storage writes. */
import type { Db, Filter } from 'mongodb';
import type { Reading } from '@flatline/proto';
import { deadline, guard, COLLECTIONS, decodeLatest, deviceIdOf, stateBucket, type ReadingDoc, type StateDoc } from '@flatline/platform';
import type { LastFetch } from '../domain/freshness.ts';
import type { Cursor } from '../domain/page-token.ts';
import type { RangeQuery } from '../domain/query-args.ts';
import type { StateSnapshot } from './state-snapshot.ts';

function toReading(d: ReadingDoc): Reading {
  return { flatId: d.flat_id, deviceId: d.device_id, seq: String(d.seq), takenAt: d.taken_at, quantity: d.quantity, unit: d.unit, value: d.value, epoch: d.epoch ?? 0 };
}

/**
 * The index of readings that a ListMeasurements page follows exactly:
 * equality on flat_id, then the keyset order. Storage creates it
 * (ensureIndexes); on MongoDB a page is one index range read in order, with
 * no in-memory sort. FerretDB v1 on SQLite uses no secondary index for a
 * find (its explain shows a full SCAN, sortPushdown false): locally a page
 * costs a scan of the collection whatever the index.
 */
export const RANGE_INDEX_KEY = { flat_id: 1, taken_at: 1, device_id: 1, seq: 1 } as const;

/** The order of a page: RANGE_INDEX_KEY after its equality prefix (flat_id), same directions. */
export const RANGE_SORT = { taken_at: 1, device_id: 1, seq: 1 } as const;

/**
 * The filter and sort of one page. taken_at carries one range (the query's
 * from/to, narrowed to the cursor's time), so the index bounds are
 * flat_id = f, taken_at in [lower, to); the tie-break on (device_id, seq) at
 * the cursor's own time is a residual $or on the same index entries.
 */
export function rangeFind(q: RangeQuery): { filter: Filter<ReadingDoc>; sort: typeof RANGE_SORT } {
  const { flatId, deviceId, fromMs, toMs } = q.key;
  const filter: Filter<ReadingDoc> = { flat_id: flatId };
  const lowerMs = q.after === undefined ? fromMs : Math.max(fromMs ?? q.after.takenAtMs, q.after.takenAtMs);
  if (lowerMs !== undefined || toMs !== undefined) {
    filter.taken_at = {
      ...(lowerMs !== undefined ? { $gte: new Date(lowerMs) } : {}),
      ...(toMs !== undefined ? { $lt: new Date(toMs) } : {}),
    };
  }
  if (deviceId !== '') filter.device_id = deviceId;
  if (q.after !== undefined) {
    filter.$or = [{ taken_at: { $gt: new Date(q.after.takenAtMs) } }, { device_id: { $gt: q.after.deviceId } }, { device_id: q.after.deviceId, seq: { $gt: q.after.seq } }];
  }
  return { filter, sort: RANGE_SORT };
}

/** A page of readings and whether more follow. */
export interface ReadingPage {
  readonly readings: Reading[];
  readonly last: Cursor | undefined;
  readonly more: boolean;
}

/** The query service's MongoDB repository. */
export class QueryStore {
  constructor(
    private readonly db: Db,
    /** Answers latest and last fetches from memory while recent (see state-snapshot.ts). */
    private readonly snapshot?: StateSnapshot,
  ) {}

  /** Latest reading of each device of a flat, ordered by device id, and its last fetch. */
  async latest(flatId: string, timeoutMS: number): Promise<{ readings: Reading[]; lastFetchAt: Date | undefined }> {
    const doc = this.snapshot?.usable()
      ? this.snapshot.bucketOf(flatId)
      : await guard('read latest', () =>
          this.db
            .collection<StateDoc>(COLLECTIONS.state)
            .findOne({ _id: stateBucket(flatId) }, deadline(timeoutMS, { projection: { [`at.${flatId}`]: 1, [`latest.${flatId}`]: 1 } })),
        );
    const readings = Object.entries(doc?.latest?.[flatId] ?? {})
      .flatMap(([key, text]): Reading[] => {
        const v = decodeLatest(text);
        return v === undefined
          ? []
          : [{ flatId, deviceId: deviceIdOf(key), seq: String(v.seq), takenAt: new Date(v.takenAtMs), quantity: v.quantity, unit: v.unit, value: v.value, epoch: v.epoch }];
      })
      .sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
    return { readings, lastFetchAt: doc?.at?.[flatId] };
  }

  /** One page of a flat's readings in a time range, ordered by (taken_at, device_id, seq). */
  async range(q: RangeQuery, timeoutMS: number): Promise<ReadingPage> {
    const { filter, sort } = rangeFind(q);
    const docs = await guard('read range', () =>
      this.db
        .collection<ReadingDoc>(COLLECTIONS.readings)
        .find(filter, deadline(timeoutMS))
        .sort(sort)
        .limit(q.pageSize + 1)
        .toArray(),
    );
    const page = docs.slice(0, q.pageSize);
    const tail = page.at(-1);
    return {
      readings: page.map(toReading),
      last: tail === undefined ? undefined : { takenAtMs: tail.taken_at.getTime(), deviceId: tail.device_id, seq: tail.seq },
      more: docs.length > q.pageSize,
    };
  }

  /** Last successful fetch of the given flats, or of every flat when flatIds is undefined. */
  async lastFetches(flatIds: readonly string[] | undefined, timeoutMS: number): Promise<LastFetch[]> {
    const filter: Filter<StateDoc> = flatIds === undefined ? {} : { _id: { $in: [...new Set(flatIds.map(stateBucket))] } };
    const docs = this.snapshot?.usable()
      ? this.snapshot.all()
      : await guard('read fetches', () => this.db.collection<StateDoc>(COLLECTIONS.state).find(filter, deadline(timeoutMS, { projection: { at: 1 } })).toArray());
    const wanted = flatIds === undefined ? undefined : new Set(flatIds);
    return docs.flatMap((d) =>
      Object.entries(d.at ?? {})
        .filter(([flatId]) => wanted === undefined || wanted.has(flatId))
        .map(([flatId, at]) => ({ flatId, at })),
    );
  }
}
