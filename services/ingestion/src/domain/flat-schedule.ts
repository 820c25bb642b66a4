/** Where a flat's first poll falls in the interval, so that polls of many flats spread evenly. */
import { createHash } from 'node:crypto';

/** A stable fraction in [0, 1) for key. */
export function stableFraction(key: string): number {
  return createHash('sha256').update(key).digest().readUInt32BE(0) / 2 ** 32;
}

/** The lease bucket of a flat. */
export function bucketOf(flatId: string, buckets: number): number {
  return Math.floor(stableFraction(`bucket:${flatId}`) * buckets);
}
