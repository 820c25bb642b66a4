/** Where a flat's first poll falls in the interval, so that polls of many flats spread evenly. */
import { stableFraction } from '@flatline/platform';

export { stableFraction };

/** The lease bucket of a flat. */
export function bucketOf(flatId: string, buckets: number): number {
  return Math.floor(stableFraction(`bucket:${flatId}`) * buckets);
}
