import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { STATE_BUCKETS, stateBucket } from '../src/store-schema.ts';

describe('stateBucket: the state document of a flat', () => {
  // The bucket is part of the stored data: storage writes a flat's state there and query reads it there, in every process and every version.
  const bucketBySha = (flatId: string): string => `b${createHash('sha256').update(flatId).digest().readUInt32BE(0) % STATE_BUCKETS}`;

  it('is the sha256 bucket of the flat id, the same when asked again, beyond the memo that spares the hash and after it is cleared', () => {
    const ids = Array.from({ length: 250_000 }, (_, i) => `flat-${i}`);
    for (const id of ids.slice(0, 1000)) expect(stateBucket(id)).to.equal(bucketBySha(id));
    // More flats than the memo holds: it is cleared once on the way, and every answer stays the hash's.
    let wrong = 0;
    for (const id of ids) if (stateBucket(id) !== bucketBySha(id)) wrong += 1;
    for (const id of ids.slice(0, 1000)) if (stateBucket(id) !== bucketBySha(id)) wrong += 1;
    expect(wrong).to.equal(0);
    expect(stateBucket('0')).to.equal(bucketBySha('0'));
    expect(new Set(ids.slice(0, 5000).map(stateBucket)).size, 'flats spread over every bucket').to.equal(STATE_BUCKETS);
  });
});
