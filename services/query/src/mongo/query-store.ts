/** Reads of the collections that storage writes. */
import type { Db, Filter } from 'mongodb';
import type { Reading } from '@flatline/proto';
import {
  deadline,
  guard,
  silentLogger,
  COLLECTIONS,
  decodeLatest,
  deviceIdOf,
  readingsOfDoc,
  readingsOfDocs,
  slotMinute,
  slotOf,
  DeadlineExceededError,
  FailedPreconditionError,
  FETCH_DOCUMENTS,
  SLOT_MS,
  UnavailableError,
  type FetchDoc,
  type FetchDocumentsRecord,
  type ReadingDoc,
  type StoredReading,
} from '@flatline/platform';
import type { LastFetch } from '../domain/freshness.ts';
import type { Cursor } from '../domain/page-token.ts';
import type { RangeQuery } from '../domain/query-args.ts';
import type { SlotHorizon } from './slot-horizon.ts';
import { StateSnapshot } from './state-snapshot.ts';

/** Bound on the refresh a QueryStore without a kept snapshot does at each call. */
const PER_CALL_REFRESH_TIMEOUT_MS = 5000;

function toReading(r: StoredReading): Reading {
  return { flatId: r.flatId, deviceId: r.deviceId, seq: String(r.seq), takenAt: new Date(r.takenAtMs), quantity: r.quantity, unit: r.unit, value: r.value, epoch: r.epoch };
}

/** How often a query that reads the old way looks again for fetch documents (FETCH_DOCUMENTS), which it cannot read. */
const FETCH_DOCUMENTS_CHECK_MS = 5000;

/**
 * The index of readings that a ListMeasurements page follows exactly:
 * equality on flat_id, then the keyset order. Storage creates it on
 * MongoDB (ensureIndexes, readingIndexesFor): a page is one index range read
 * in order, with no in-memory sort. FerretDB v1 uses no secondary index for
 * a find (on SQLite its explain shows a full SCAN, sortPushdown false), so
 * storage does not make it there: a page is read by slots on PostgreSQL,
 * and costs a scan of the collection on SQLite.
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

/** Whether a reading passes rangeFind(q)'s filter: the same test in memory, for the readings of a slot's documents. */
export function inRange(q: RangeQuery, r: StoredReading): boolean {
  const { flatId, deviceId, fromMs, toMs } = q.key;
  if (r.flatId !== flatId || (deviceId !== '' && r.deviceId !== deviceId)) return false;
  const lowerMs = q.after === undefined ? fromMs : Math.max(fromMs ?? q.after.takenAtMs, q.after.takenAtMs);
  if ((lowerMs !== undefined && r.takenAtMs < lowerMs) || (toMs !== undefined && r.takenAtMs >= toMs)) return false;
  const a = q.after;
  return a === undefined || r.takenAtMs > a.takenAtMs || r.deviceId > a.deviceId || (r.deviceId === a.deviceId && r.seq > a.seq);
}

/** A page of readings and whether more follow. */
export interface ReadingPage {
  readonly readings: Reading[];
  readonly last: Cursor | undefined;
  readonly more: boolean;
}

/** How one page is read by slots: an old-way part before the horizon, then minutes. */
export interface SlotPlan {
  /** The part of the range before the horizon, read the old way (the query with its end moved to the horizon); undefined when the range starts at or after it. */
  readonly before: RangeQuery | undefined;
  /** The minutes to read slot by slot, first to last, and the query each slot read narrows (its start moved to the horizon, its end to now when open); undefined when no minute is left. */
  readonly slots: { readonly first: number; readonly last: number; readonly query: RangeQuery } | undefined;
}

/**
 * How to read the page of q by slots, given the horizon (every reading taken
 * at or after horizonMs has a slot), the flat's earliest reading since slots
 * exist (firstMs: where a range with no start begins; undefined when the
 * flat has none) and the time now. An open end means "up to now"
 * (query.proto): the slot part ends at nowMs inclusive, so a reading stamped
 * in the future (a device with a fast clock) shows once now passes it.
 */
export function planSlotRead(q: RangeQuery, horizonMs: number, firstMs: number | undefined, nowMs: number): SlotPlan {
  const { fromMs, toMs } = q.key;
  const lowerMs = q.after === undefined ? fromMs : Math.max(fromMs ?? -Infinity, q.after.takenAtMs);
  const endMs = toMs ?? nowMs + 1; // exclusive
  const before: RangeQuery | undefined = (lowerMs ?? -Infinity) < horizonMs ? { ...q, key: { ...q.key, toMs: Math.min(toMs ?? Infinity, horizonMs) } } : undefined;
  const startMs = Math.max(lowerMs ?? firstMs ?? Infinity, horizonMs);
  if (!(startMs < endMs)) return { before, slots: undefined };
  const slotFromMs = Math.max(fromMs ?? -Infinity, horizonMs);
  return {
    before,
    slots: {
      first: slotMinute(startMs),
      last: slotMinute(endMs - 1),
      query: { ...q, key: { ...q.key, fromMs: slotFromMs === -Infinity ? undefined : slotFromMs, toMs: endMs } },
    },
  };
}

/**
 * At most this many minutes are read by slot for one page: a page still short
 * after them (a flat silent for hours inside the range) ends there, with the
 * readings found so far (maybe none) and a token that goes on after the
 * minutes read, so that every page costs a bounded number of lookups.
 */
export const MAX_SLOT_MINUTES_PER_PAGE = 240;

/** Slot reads of one page go one minute first, then as many as the readings found so far say the page needs (twice as many after empty minutes), up to this many at once (a page of 100 at one reading a second from 3 devices fills in one minute). */
export const MAX_SLOTS_AT_ONCE = 16;

/** A device id sorts before this ('~' is after every character of [A-Za-z0-9_.-]): a cursor at (t, AFTER_EVERY_DEVICE) is after every reading taken at t. */
const AFTER_EVERY_DEVICE = '~';

/** ListMeasurements by slots (FLATLINE_QUERY_SLOT_READS=1): where they may start, and the clock that ends an open range. */
export interface SlotReads {
  readonly horizon: Pick<SlotHorizon, 'get'>;
  readonly now?: () => number;
  /** Default MAX_SLOT_MINUTES_PER_PAGE. */
  readonly maxMinutesPerPage?: number;
}

/** The first pageSize readings as a page, and whether there were more. */
function toPage(readings: readonly StoredReading[], pageSize: number): ReadingPage {
  const page = readings.slice(0, pageSize);
  const tail = page.at(-1);
  return {
    readings: page.map(toReading),
    last: tail === undefined ? undefined : { takenAtMs: tail.takenAtMs, deviceId: tail.deviceId, seq: tail.seq },
    more: readings.length > pageSize,
  };
}

/** The query service's MongoDB repository. */
export class QueryStore {
  /** Answers latest and last fetches (see state-snapshot.ts). */
  private readonly snapshot: StateSnapshot;
  /** Whether the database holds fetch documents (FETCH_DOCUMENTS), and when that was last asked (it never stops holding them). */
  private fetchDocuments = { found: false, askedAtMs: -Infinity };

  constructor(
    private readonly db: Db,
    /** The copy of the flat state the service keeps; absent: one refreshed at every call. */
    snapshot?: StateSnapshot,
    /** Reads ListMeasurements pages slot by slot where the horizon allows (planSlotRead); absent: the old way. */
    private readonly slots?: SlotReads,
  ) {
    this.snapshot = snapshot ?? new StateSnapshot(db, { refreshMs: 0, maxAgeMs: 0, timeoutMs: PER_CALL_REFRESH_TIMEOUT_MS }, silentLogger());
  }

  /** Latest reading of each device of a flat, ordered by device id, and its last fetch. */
  async latest(flatId: string, timeoutMS: number): Promise<{ readings: Reading[]; lastFetchAt: Date | undefined }> {
    await this.snapshot.current(timeoutMS);
    const doc = this.snapshot.bucketOf(flatId);
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

  /**
   * One page of a flat's readings in a time range, ordered by (taken_at,
   * device_id, seq): by slots where they can serve it (see planSlotRead),
   * otherwise with one find of the range (a scan of the collection on
   * FerretDB v1).
   */
  async range(q: RangeQuery, timeoutMS: number): Promise<ReadingPage> {
    const horizonMs = this.slots?.horizon.get();
    if (horizonMs === undefined) {
      if (await this.holdsFetchDocuments(timeoutMS)) {
        // Their readings are seen only slot by slot: a page read the old way would leave them out, silently.
        if (this.slots === undefined) {
          throw new FailedPreconditionError('storage keeps readings one document per fetch (FLATLINE_STORAGE_FETCH_DOCUMENTS=1), which this query replica reads only slot by slot: set FLATLINE_QUERY_SLOT_READS=1');
        }
        throw new UnavailableError('this query replica has not yet read where slot reads start (the slot record); retry');
      }
      return toPage(await this.find(q, q.pageSize + 1, timeoutMS), q.pageSize);
    }
    const endAt = Date.now() + timeoutMS;
    const left = (): number => {
      const ms = endAt - Date.now();
      if (ms <= 0) throw new DeadlineExceededError('ListMeasurements ran out of time reading slot after slot');
      return ms;
    };
    const open = q.key.fromMs === undefined && q.after === undefined;
    const firstMs = open ? await this.firstReading(q.key.flatId, left()) : undefined;
    const plan = planSlotRead(q, horizonMs, firstMs, (this.slots?.now ?? Date.now)());
    const want = q.pageSize + 1;
    const docs = plan.before === undefined ? [] : await this.find(plan.before, want, left());
    if (plan.slots === undefined || docs.length >= want) return toPage(docs, q.pageSize);
    const { first, last, query } = plan.slots;
    const cap = this.slots?.maxMinutesPerPage ?? MAX_SLOT_MINUTES_PER_PAGE;
    const startMs = Math.max(first * SLOT_MS, query.key.fromMs ?? -Infinity, query.after?.takenAtMs ?? -Infinity);
    const endMs = query.key.toMs ?? (last + 1) * SLOT_MS;
    let minute = first;
    let width = 1;
    let coveredMs = 0;
    let found = 0;
    while (docs.length < want && minute <= last) {
      if (minute - first >= cap) {
        // Bounded work per page: the next page goes on after the minutes read, all of whose readings this page holds.
        const page = toPage(docs, q.pageSize);
        return { readings: page.readings, more: true, last: { takenAtMs: minute * SLOT_MS - 1, deviceId: AFTER_EVERY_DEVICE, seq: Number.MAX_SAFE_INTEGER } };
      }
      const through = Math.min(minute + width - 1, last, first + cap - 1);
      const need = want - docs.length;
      const budget = left();
      const minutes = Array.from({ length: through - minute + 1 }, (_, i) => minute + i);
      // Concurrent lookups; their results are in minute order, and no two minutes share a reading.
      const parts = await Promise.all(minutes.map((m) => this.findSlot(query, need, budget, slotOf(query.key.flatId, m))));
      const got = parts.reduce((n, part) => n + part.length, 0);
      for (const part of parts) {
        docs.push(...part);
        if (docs.length >= want) break;
      }
      // The part of the range these minutes covered (the first and last may be partial): the flat's rate so far.
      coveredMs += Math.min((through + 1) * SLOT_MS, endMs) - Math.max(minute * SLOT_MS, startMs);
      found += got;
      minute = through + 1;
      // As many minutes as that rate says the rest of the page needs, one more for luck; twice as many after empty ones.
      width = Math.min(found === 0 ? width * 2 : Math.ceil(((want - docs.length) * coveredMs) / found / SLOT_MS) + 1, MAX_SLOTS_AT_ONCE);
    }
    return toPage(docs, q.pageSize);
  }

  /**
   * The earliest taken_at of flatId's readings stored since slots exist
   * (`first.<flat>` of its state), from the copy of the flat state: storage
   * writes it to the flat-state log, which the copy follows (a drain of old
   * readings that lowers it shows within a refresh).
   */
  private async firstReading(flatId: string, timeoutMS: number): Promise<number | undefined> {
    await this.snapshot.current(timeoutMS);
    return this.snapshot.bucketOf(flatId)?.first?.[flatId]?.getTime();
  }

  /** Up to limit readings of q in page order, read the old way: documents of one reading each (a fetch document has no flat_id, so never matches). */
  private async find(q: RangeQuery, limit: number, timeoutMS: number): Promise<StoredReading[]> {
    const { filter, sort } = rangeFind(q);
    const docs = await guard('read range', () => this.db.collection<ReadingDoc>(COLLECTIONS.readings).find(filter, deadline(timeoutMS)).sort(sort).limit(limit).toArray());
    return docs.flatMap(readingsOfDoc);
  }

  /**
   * Up to limit readings of q in page order from one slot: every document of
   * the slot (a minute of a flat: one per reading, or one per fetch result),
   * each reading once, filtered and ordered here (FerretDB answers only the
   * slot equality from an index; it would filter and sort in its own memory
   * too, and cannot look inside a fetch document).
   */
  private async findSlot(q: RangeQuery, limit: number, timeoutMS: number, slot: string): Promise<StoredReading[]> {
    const docs = await guard('read range slot', () => this.db.collection<ReadingDoc | FetchDoc>(COLLECTIONS.readings).find({ slot }, deadline(timeoutMS)).toArray());
    return readingsOfDocs(docs)
      .filter((r) => inRange(q, r))
      .slice(0, limit);
  }

  /** Whether storage has begun to keep fetch documents (asked again every FETCH_DOCUMENTS_CHECK_MS until it has). */
  private async holdsFetchDocuments(timeoutMS: number): Promise<boolean> {
    if (this.fetchDocuments.found || Date.now() - this.fetchDocuments.askedAtMs < FETCH_DOCUMENTS_CHECK_MS) return this.fetchDocuments.found;
    const record = await guard('read the fetch documents record', () =>
      this.db.collection<FetchDocumentsRecord>(COLLECTIONS.migrations).findOne({ _id: FETCH_DOCUMENTS }, deadline(timeoutMS, { projection: { _id: 1 } })),
    );
    this.fetchDocuments = { found: record !== null, askedAtMs: Date.now() };
    return this.fetchDocuments.found;
  }

  /** Last successful fetch of the given flats, or of every flat when flatIds is undefined. */
  async lastFetches(flatIds: readonly string[] | undefined, timeoutMS: number): Promise<LastFetch[]> {
    await this.snapshot.current(timeoutMS);
    const docs = this.snapshot.all();
    const wanted = flatIds === undefined ? undefined : new Set(flatIds);
    return docs.flatMap((d) =>
      Object.entries(d.at ?? {})
        .filter(([flatId]) => wanted === undefined || wanted.has(flatId))
        .map(([flatId, at]) => ({ flatId, at })),
    );
  }
}
