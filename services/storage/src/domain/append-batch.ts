/** Validation of an Append request into a batch the store can write. */
import type { AppendRequest } from '@flatline/proto';
import { checkDeviceId, checkFlatId, InvalidArgumentError, REFUSED_FETCH_TRAILER } from '@flatline/platform';

/** Limits of one Append (documented in storage.proto). */
export const MAX_FETCHES = 1000;
export const MAX_READINGS = 10000;

/** A validated reading. */
export interface ValidReading {
  readonly flatId: string;
  readonly deviceId: string;
  readonly seq: number;
  /** The device's epoch (how often its seq went backwards). */
  readonly epoch: number;
  readonly takenAt: Date;
  readonly quantity: string;
  readonly unit: string;
  readonly value: number;
}

/** One fetch result's readings, as the request carried them. */
export interface FetchReadings {
  readonly flatId: string;
  readonly readings: readonly ValidReading[];
}

/** A validated batch: readings to store and the last successful fetch per flat. */
export interface AppendBatch {
  /** Every reading of the batch, fetch result after fetch result (the concatenation of results' readings). */
  readonly readings: readonly ValidReading[];
  /** The readings of each fetch result, in request order (storage with fetch documents stores each as its own documents). */
  readonly results: readonly FetchReadings[];
  /** Latest fetch time per flat in the batch. */
  readonly fetches: ReadonlyMap<string, Date>;
  /** Number of fetch results in the request. */
  readonly fetchCount: number;
}

/** Storage's clock, against which fetch times are judged. */
export interface FetchClock {
  readonly now: Date;
  /** How far a fetch time may be ahead of now, in milliseconds, and still be taken as a flat's last fetch. */
  readonly maxSkewMs: number;
}

/** A fetch time ahead of storage's clock by more than the allowed skew. */
export interface FutureFetch {
  readonly flatId: string;
  readonly fetchedAt: Date;
  readonly aheadMs: number;
}

/** A validated batch and the fetch times it refused. */
export interface ValidatedBatch extends AppendBatch {
  /** Fetch times left out of `fetches` (their readings are kept). */
  readonly futureFetches: readonly FutureFetch[];
}

function checkTime(t: Date | undefined, field: string): Date {
  if (t === undefined) throw new InvalidArgumentError(`${field} is required`);
  if (Number.isNaN(t.getTime())) throw new InvalidArgumentError(`${field} is not a valid time`);
  return t;
}

/** Largest epoch (encodeLatest keeps 6 digits of it). */
export const MAX_EPOCH = 999_999;

function checkEpoch(epoch: number, field: string): number {
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > MAX_EPOCH) throw new InvalidArgumentError(`${field} must be from 0 to ${MAX_EPOCH}, got ${epoch}`);
  return epoch;
}

function checkSeq(seq: string, field: string): number {
  const n = /^\d{1,16}$/.test(seq) ? Number(seq) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError(`${field} must be from 1 to ${Number.MAX_SAFE_INTEGER}, got ${seq}`);
  }
  return n;
}

function checkLabel(s: string, field: string, max: number): string {
  if (s.length < 1 || s.length > max) throw new InvalidArgumentError(`${field} must be 1 to ${max} characters`);
  return s;
}

/**
 * Validates request; throws InvalidArgumentError naming the first bad field.
 * With a clock, a fetch time more than clock.maxSkewMs ahead of clock.now is
 * left out of `fetches` and listed in `futureFetches`: a replica with a fast
 * clock would otherwise make its flat look fresh until real time caught up
 * (the state keeps the greatest time). Its readings are valid and kept.
 */
export function toAppendBatch(request: AppendRequest, clock?: FetchClock): ValidatedBatch {
  const n = request.fetches.length;
  if (n < 1 || n > MAX_FETCHES) throw new InvalidArgumentError(`fetches must hold 1 to ${MAX_FETCHES} fetch results, got ${n}`);
  const total = request.fetches.reduce((sum, f) => sum + f.readings.length, 0);
  if (total > MAX_READINGS) throw new InvalidArgumentError(`a request may carry at most ${MAX_READINGS} readings, got ${total}`);
  const readings: ValidReading[] = [];
  const results: FetchReadings[] = [];
  const fetches = new Map<string, Date>();
  const futureFetches: FutureFetch[] = [];
  request.fetches.forEach((fetch, i) => {
    try {
      validateFetch(fetch, i);
    } catch (err) {
      // A verdict about this fetch result's data: the caller may set it aside.
      if (err instanceof InvalidArgumentError) throw new InvalidArgumentError(err.message, { [REFUSED_FETCH_TRAILER]: String(i) });
      throw err;
    }
  });
  return { readings, results, fetches, fetchCount: n, futureFetches };

  function validateFetch(fetch: AppendRequest['fetches'][number], i: number): void {
    const at = `fetches[${i}]`;
    const flatId = checkFlatId(fetch.flatId, `${at}.flat_id`);
    const fetchedAt = checkTime(fetch.fetchedAt, `${at}.fetched_at`);
    const aheadMs = clock === undefined ? 0 : fetchedAt.getTime() - clock.now.getTime();
    if (clock !== undefined && aheadMs > clock.maxSkewMs) {
      futureFetches.push({ flatId, fetchedAt, aheadMs });
    } else {
      const known = fetches.get(flatId);
      if (known === undefined || known < fetchedAt) fetches.set(flatId, fetchedAt);
    }
    const own: ValidReading[] = [];
    fetch.readings.forEach((r, j) => {
      const rat = `${at}.readings[${j}]`;
      if (r.flatId !== flatId) {
        throw new InvalidArgumentError(`${rat}.flat_id must equal ${at}.flat_id (${flatId}), got ${JSON.stringify(r.flatId)}`);
      }
      if (!Number.isFinite(r.value)) throw new InvalidArgumentError(`${rat}.value must be a finite number`);
      own.push({
        flatId,
        deviceId: checkDeviceId(r.deviceId, `${rat}.device_id`),
        seq: checkSeq(r.seq, `${rat}.seq`),
        epoch: checkEpoch(r.epoch, `${rat}.epoch`),
        takenAt: checkTime(r.takenAt, `${rat}.taken_at`),
        quantity: checkLabel(r.quantity, `${rat}.quantity`, 64),
        unit: checkLabel(r.unit, `${rat}.unit`, 32),
        value: r.value,
      });
    });
    readings.push(...own);
    results.push({ flatId, readings: own });
  }
}
