/** Freshness: the age of each flat's last successful fetch, and percentiles over flats. */
import type { FreshnessReport } from '@flatline/proto';

/** Last successful fetch of one flat. */
export interface LastFetch {
  readonly flatId: string;
  readonly at: Date;
}

/** Which flats a report covers and how many of the stalest it lists. */
export interface FreshnessSelector {
  /** Only these flats; undefined means every flat ever fetched. */
  readonly flatIds: readonly string[] | undefined;
  readonly exclude: ReadonlySet<string>;
  readonly limit: number;
}

/** Nearest-rank quantile (a fraction in (0, 1]) of ascending values; 0 for none. */
export function quantile(ascending: readonly number[], fraction: number): number {
  if (ascending.length === 0) return 0;
  const rank = Math.max(1, Math.ceil(fraction * ascending.length));
  return ascending[rank - 1] ?? 0;
}

/** localeCompare's order, without building a collator on every call. */
const byId = new Intl.Collator();

/** Builds the report for selector from the known last fetches, measured at now. */
export function freshnessReport(fetches: readonly LastFetch[], selector: FreshnessSelector, now: Date): FreshnessReport {
  const byFlat = new Map(fetches.map((f) => [f.flatId, f.at]));
  const flats = (selector.flatIds ?? [...byFlat.keys()]).filter((id) => !selector.exclude.has(id));
  const unique = [...new Set(flats)];
  const fetched = unique.flatMap((flatId) => {
    const at = byFlat.get(flatId);
    return at === undefined ? [] : [{ flatId, lastFetchAt: at, ageSeconds: Math.max(0, (now.getTime() - at.getTime()) / 1000) }];
  });
  const never = unique.filter((id) => !byFlat.has(id)).sort();
  // One sort: the stalest first; the ages ascending are the same order backwards.
  const stalest = fetched.sort((a, b) => b.ageSeconds - a.ageSeconds || byId.compare(a.flatId, b.flatId));
  const ages = stalest.map((f) => f.ageSeconds).reverse();
  return {
    asOf: now,
    flatCount: fetched.length,
    worstAgeSeconds: ages.at(-1) ?? 0,
    p50AgeSeconds: quantile(ages, 0.5),
    p99AgeSeconds: quantile(ages, 0.99),
    stalest: stalest.slice(0, selector.limit),
    neverFetchedFlatIds: never.slice(0, selector.limit),
    neverFetchedCount: never.length,
  };
}
