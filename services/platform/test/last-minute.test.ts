import { expect } from 'chai';
import { LastMinute } from '../src/metrics.ts';

describe('LastMinute: tallies of the last 60 s', () => {
  it('counts and keeps the largest value of the last 60 s, and forgets what is older', () => {
    let now = 1_000_000;
    const m = new LastMinute(() => now);
    expect(m.read()).to.deep.equal({ n: 0, max: 0 });
    m.add(0.5);
    now += 30_000;
    m.add(2.0);
    m.add(0.1);
    expect(m.read()).to.deep.equal({ n: 3, max: 2.0 });
    // 60 s after the first: it is gone, the two from 30 s later stay.
    now += 30_000;
    expect(m.read()).to.deep.equal({ n: 2, max: 2.0 });
    // And once they are 60 s old too, nothing is left (the largest value with them).
    now += 30_000;
    expect(m.read()).to.deep.equal({ n: 0, max: 0 });
  });

  it('stays bounded: a slot per second however many are added', () => {
    let now = 0;
    const m = new LastMinute(() => now);
    for (let i = 0; i < 10_000; i++) {
      now += 100;
      m.add(1);
    }
    // Ten a second: about 600 in the last 60 one-second slots (the newest slot has just begun).
    expect(m.read().n).to.be.within(590, 600);
    expect((m as unknown as { slots: Map<number, unknown> }).slots.size).to.be.at.most(121);
  });
});
