import { expect } from 'chai';
import { freshnessReport, quantile } from '../../src/domain/freshness.ts';

describe('freshness', () => {
  it('quantile uses the nearest rank', () => {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantile(v, 0.5)).to.equal(50);
    expect(quantile(v, 0.99)).to.equal(99);
    expect(quantile([7], 0.99)).to.equal(7);
    expect(quantile([], 0.5)).to.equal(0);
  });

  it('ranks flats stalest first and leaves excluded ones out of every figure', () => {
    const now = new Date('2026-01-01T00:01:00Z');
    const ago = (s: number) => new Date(now.getTime() - s * 1000);
    const report = freshnessReport(
      [
        { flatId: 'a', at: ago(1) },
        { flatId: 'b', at: ago(30) },
        { flatId: 'c', at: ago(5) },
      ],
      { flatIds: undefined, exclude: new Set(['b']), limit: 10 },
      now,
    );
    expect(report.flatCount).to.equal(2);
    expect(report.worstAgeSeconds).to.equal(5);
    expect(report.stalest.map((f) => f.flatId)).to.deep.equal(['c', 'a']);
  });

  it('counts asked-for flats that were never fetched', () => {
    const report = freshnessReport([], { flatIds: ['x', 'y', 'x'], exclude: new Set(), limit: 1 }, new Date());
    expect(report.flatCount).to.equal(0);
    expect(report.neverFetchedCount).to.equal(2);
    expect(report.neverFetchedFlatIds).to.deep.equal(['x']);
  });

  it('knows only fetched flats: with no flats asked for, nothing counts as never fetched (callers must name the flats they expect)', () => {
    const now = new Date();
    const fetched = [{ flatId: 'a', at: now }];
    expect(freshnessReport(fetched, { flatIds: undefined, exclude: new Set(), limit: 10 }, now).neverFetchedCount).to.equal(0);
    const named = freshnessReport(fetched, { flatIds: ['a', 'b', 'c'], exclude: new Set(['c']), limit: 10 }, now);
    expect(named.flatCount).to.equal(1);
    expect(named.neverFetchedFlatIds).to.deep.equal(['b']);
  });

  it('ranks ties by flat id, and its percentiles and stalest list are those of every age sorted on its own (2,000 flats, many tied ages)', () => {
    const now = new Date('2026-01-01T01:00:00Z');
    let x = 7;
    const random = (): number => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
    // Ages in whole 100 ms steps over 20 s: hundreds of flats share each.
    const fetches = Array.from({ length: 2000 }, (_, i) => ({ flatId: `f${(i * 7919) % 2000}`, at: new Date(now.getTime() - Math.floor(random() * 200) * 100) }));
    const report = freshnessReport(fetches, { flatIds: undefined, exclude: new Set(['f3']), limit: 2000 }, now);
    const kept = fetches.filter((f) => f.flatId !== 'f3').map((f) => ({ flatId: f.flatId, age: (now.getTime() - f.at.getTime()) / 1000 }));
    const ages = kept.map((f) => f.age).sort((a, b) => a - b);
    const order = [...kept].sort((a, b) => b.age - a.age || a.flatId.localeCompare(b.flatId)).map((f) => f.flatId);
    expect(report.flatCount).to.equal(1999);
    expect(report.stalest.map((f) => f.flatId)).to.deep.equal(order);
    expect(report.stalest.map((f) => f.ageSeconds)).to.deep.equal([...ages].reverse());
    expect([report.p50AgeSeconds, report.p99AgeSeconds, report.worstAgeSeconds]).to.deep.equal([quantile(ages, 0.5), quantile(ages, 0.99), ages.at(-1)]);
    expect(report.p99AgeSeconds).to.be.greaterThan(report.p50AgeSeconds);
  });
});
