/** Validation of QueryService requests; every error names the field and what is wrong. */
import type {
  GetFreshnessRequest,
  ListMeasurementsRequest,
  WatchFreshnessRequest,
} from '@flatline/proto';
import { checkDeviceId, checkFlatId, InvalidArgumentError } from '@flatline/platform';
import type { FreshnessSelector } from './freshness.ts';
import type { Cursor, PageTokens, QueryKey } from './page-token.ts';

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
export const DEFAULT_FRESHNESS_LIMIT = 10;
export const MAX_FRESHNESS_LIMIT = 1000;
export const MAX_FLATS_PER_REQUEST = 10000;

/** A validated ListMeasurements query. */
export interface RangeQuery {
  readonly key: QueryKey;
  readonly pageSize: number;
  readonly after: Cursor | undefined;
}

function checkTime(t: Date | undefined, field: string): number | undefined {
  if (t === undefined) return undefined;
  const ms = t.getTime();
  if (Number.isNaN(ms)) throw new InvalidArgumentError(`${field} is not a valid time`);
  return ms;
}

/** Validates a ListMeasurements request; its page token must be signed by tokens. */
export function toRangeQuery(req: ListMeasurementsRequest, tokens: PageTokens): RangeQuery {
  const flatId = checkFlatId(req.flatId);
  const deviceId = req.deviceId === '' ? '' : checkDeviceId(req.deviceId);
  const fromMs = checkTime(req.from, 'from');
  const toMs = checkTime(req.to, 'to');
  if (fromMs !== undefined && toMs !== undefined && fromMs > toMs) {
    throw new InvalidArgumentError(`from (${new Date(fromMs).toISOString()}) must not be after to (${new Date(toMs).toISOString()})`);
  }
  if (!Number.isInteger(req.pageSize) || req.pageSize < 0 || req.pageSize > MAX_PAGE_SIZE) {
    throw new InvalidArgumentError(`page_size must be from 1 to ${MAX_PAGE_SIZE} (0 means ${DEFAULT_PAGE_SIZE}), got ${req.pageSize}`);
  }
  const key: QueryKey = { flatId, deviceId, fromMs, toMs };
  return {
    key,
    pageSize: req.pageSize === 0 ? DEFAULT_PAGE_SIZE : req.pageSize,
    after: req.pageToken === '' ? undefined : tokens.decode(req.pageToken, key),
  };
}

/** Validates the flat selection of GetFreshness (and of WatchFreshness). */
export function toFreshnessSelector(req: GetFreshnessRequest | undefined): FreshnessSelector {
  const flatIds = req?.flatIds ?? [];
  const exclude = req?.excludeFlatIds ?? [];
  if (flatIds.length > MAX_FLATS_PER_REQUEST) throw new InvalidArgumentError(`flat_ids may name at most ${MAX_FLATS_PER_REQUEST} flats, got ${flatIds.length}`);
  if (exclude.length > MAX_FLATS_PER_REQUEST) {
    throw new InvalidArgumentError(`exclude_flat_ids may name at most ${MAX_FLATS_PER_REQUEST} flats, got ${exclude.length}`);
  }
  flatIds.forEach((id, i) => checkFlatId(id, `flat_ids[${i}]`));
  exclude.forEach((id, i) => checkFlatId(id, `exclude_flat_ids[${i}]`));
  const limit = req?.limit ?? 0;
  if (limit > MAX_FRESHNESS_LIMIT) throw new InvalidArgumentError(`limit must be from 0 to ${MAX_FRESHNESS_LIMIT}, got ${limit}`);
  return { flatIds: flatIds.length > 0 ? flatIds : undefined, exclude: new Set(exclude), limit: limit === 0 ? DEFAULT_FRESHNESS_LIMIT : limit };
}

/** Validates WatchFreshness: the selector and the interval in milliseconds. */
export function toWatch(req: WatchFreshnessRequest): { selector: FreshnessSelector; intervalMs: number } {
  const s = req.intervalSeconds;
  if (!Number.isFinite(s) || s < 0 || (s !== 0 && (s < 0.1 || s > 3600))) {
    throw new InvalidArgumentError(`interval_seconds must be from 0.1 to 3600 (0 means 1), got ${s}`);
  }
  return { selector: toFreshnessSelector(req.selector), intervalMs: s === 0 ? 1000 : Math.round(s * 1000) };
}
