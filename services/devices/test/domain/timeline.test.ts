import { expect } from 'chai';
import { checkTimeline, continueTimeline, forEachReading, startTimeline, type Timeline } from '../../src/domain/timeline.ts';

function readings(timeline: Timeline, seed: number, from: number, to: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  forEachReading(timeline, seed, from, to, (seq, t) => out.push([seq, t]));
  return out;
}

describe('timeline', () => {
  const T0 = 1_000_000;

  it('numbers a device\'s readings 1, 2, 3 … one period apart from its phase after the epoch', () => {
    const tl = startTimeline(1000, T0);
    // seed 1234 → phase 234 ms
    expect(readings(tl, 1234, T0 - 5000, T0 + 3500)).to.deep.equal([
      [1, T0 + 234],
      [2, T0 + 1234],
      [3, T0 + 2234],
      [4, T0 + 3234],
    ]);
  });

  it('holds the window (from, to]: a reading taken exactly at from is out, one exactly at to is in', () => {
    const tl = startTimeline(1000, T0);
    expect(readings(tl, 0, T0 + 1000, T0 + 3000).map(([s]) => s)).to.deep.equal([3, 4]);
    expect(readings(tl, 0, T0 + 999, T0 + 2999).map(([s]) => s)).to.deep.equal([2, 3]);
  });

  it('takes nothing before the epoch', () => {
    expect(readings(startTimeline(1000, T0), 7, 0, T0)).to.deep.equal([]);
  });

  it('two overlapping windows agree on the readings they share', () => {
    const tl = startTimeline(100, T0);
    const a = readings(tl, 99, T0 + 10_000, T0 + 16_000);
    const b = readings(tl, 99, T0 + 13_000, T0 + 19_000);
    const shared = a.filter(([s]) => b.some(([t]) => t === s));
    expect(shared.length).to.equal(30);
    expect(b.slice(0, 30)).to.deep.equal(shared);
  });

  it('keeps the same timeline while the period is unchanged', () => {
    const tl = startTimeline(1000, T0);
    expect(continueTimeline(tl, 1000, T0 + 99_999)).to.equal(tl);
  });

  for (const [from, to] of [
    [1000, 250],
    [250, 1000],
    [1000, 1000 - 1],
    [333, 777],
  ] as const) {
    it(`carries seq on without a gap or a repeat when the period changes from ${from} to ${to} ms`, () => {
      const restart = T0 + 10_500;
      const tl = continueTimeline(startTimeline(from, T0), to, restart);
      for (const seed of [0, 1, 332, 999, 123_456_789, 0xffffffff]) {
        const all = readings(tl, seed, 0, restart + 20_000);
        expect(all.map(([s]) => s)).to.deep.equal(all.map((_, i) => i + 1));
        for (let i = 1; i < all.length; i++) expect(all[i]![1]).to.be.greaterThan(all[i - 1]![1]);
        // Before the restart, exactly what the old timeline had taken.
        const before = readings(startTimeline(from, T0), seed, 0, restart - 1);
        expect(all.filter(([, t]) => t < restart)).to.deep.equal(before);
      }
    });
  }

  it('never starts a segment before the last one, even if the clock went back', () => {
    const tl = continueTimeline(startTimeline(1000, T0), 500, T0 - 50_000);
    expect(tl[1]!.startMs).to.equal(T0 + 1);
    expect(() => checkTimeline(tl)).not.to.throw();
  });

  it('rejects a malformed timeline', () => {
    expect(() => checkTimeline([])).to.throw(/at least one/);
    expect(() => checkTimeline([{ startMs: 5, periodMs: 0 }])).to.throw(/period/);
    expect(() => checkTimeline([{ startMs: 5, periodMs: 10 }, { startMs: 5, periodMs: 20 }])).to.throw(/increase/);
  });
});
