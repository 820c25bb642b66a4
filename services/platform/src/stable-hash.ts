/** A stable pseudo-random fraction per key: lease buckets, poll offsets, any "share of flats" chosen reproducibly. */
import { createHash } from 'node:crypto';

/** A stable fraction in [0, 1) for key. */
export function stableFraction(key: string): number {
  return createHash('sha256').update(key).digest().readUInt32BE(0) / 2 ** 32;
}
