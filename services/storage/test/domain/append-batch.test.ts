import { expect } from 'chai';
import type { AppendRequest } from '@flatline/proto';
import { toAppendBatch } from '../../src/domain/append-batch.ts';

const NOW = new Date('2026-11-30T10:00:00Z');
const ahead = (ms: number): Date => new Date(NOW.getTime() + ms);
const clock = { now: NOW, maxSkewMs: 5000 };

function reading(flatId: string, seq: number) {
  return { flatId, deviceId: 'heat', seq: String(seq), takenAt: ahead(-60000 + seq), quantity: 'temperature', unit: 'Cel', value: seq, epoch: 0 };
}

describe('toAppendBatch: fetch times ahead of storage clock', () => {
  it('leaves a fetch 1 h ahead out of the last fetches, keeps its readings and counts one refusal', () => {
    const request: AppendRequest = { fetches: [{ flatId: 'f1', fetchedAt: ahead(3600000), readings: [reading('f1', 1), reading('f1', 2)] }] };
    const batch = toAppendBatch(request, clock);
    expect([...batch.fetches]).to.deep.equal([]);
    expect(batch.readings.map((r) => r.seq)).to.deep.equal([1, 2]);
    expect(batch.fetchCount).to.equal(1);
    expect(batch.futureFetches).to.deep.equal([{ flatId: 'f1', fetchedAt: ahead(3600000), aheadMs: 3600000 }]);
  });

  it('keeps a fetch 1 s ahead with a 5 s skew allowed, and one exactly at the bound', () => {
    const request: AppendRequest = {
      fetches: [
        { flatId: 'f1', fetchedAt: ahead(1000), readings: [reading('f1', 1)] },
        { flatId: 'f2', fetchedAt: ahead(5000), readings: [] },
      ],
    };
    const batch = toAppendBatch(request, clock);
    expect([...batch.fetches]).to.deep.equal([
      ['f1', ahead(1000)],
      ['f2', ahead(5000)],
    ]);
    expect(batch.futureFetches).to.deep.equal([]);
  });

  it('refuses one millisecond beyond the bound', () => {
    const batch = toAppendBatch({ fetches: [{ flatId: 'f1', fetchedAt: ahead(5001), readings: [] }] }, clock);
    expect([...batch.fetches]).to.deep.equal([]);
    expect(batch.futureFetches.map((f) => f.aheadMs)).to.deep.equal([5001]);
  });

  it('keeps the latest acceptable fetch of a flat when a later one of the same flat is refused', () => {
    const request: AppendRequest = {
      fetches: [
        { flatId: 'f1', fetchedAt: ahead(-2000), readings: [reading('f1', 1)] },
        { flatId: 'f1', fetchedAt: ahead(3600000), readings: [reading('f1', 2)] },
        { flatId: 'f1', fetchedAt: ahead(-4000), readings: [] },
      ],
    };
    const batch = toAppendBatch(request, clock);
    expect([...batch.fetches]).to.deep.equal([['f1', ahead(-2000)]]);
    expect(batch.readings.map((r) => r.seq)).to.deep.equal([1, 2]);
    expect(batch.futureFetches).to.have.length(1);
  });

  it('still refuses the whole request when another field is invalid', () => {
    const request: AppendRequest = {
      fetches: [
        { flatId: 'f1', fetchedAt: ahead(3600000), readings: [] },
        { flatId: 'f2', fetchedAt: undefined, readings: [] },
      ],
    };
    expect(() => toAppendBatch(request, clock)).to.throw(/fetches\[1\]\.fetched_at is required/);
  });

  it('judges no fetch time without a clock (validation only, as the benchmarks use it)', () => {
    const batch = toAppendBatch({ fetches: [{ flatId: 'f1', fetchedAt: ahead(3600000), readings: [] }] });
    expect([...batch.fetches]).to.deep.equal([['f1', ahead(3600000)]]);
    expect(batch.futureFetches).to.deep.equal([]);
  });
});
