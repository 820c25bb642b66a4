/** The supervisor's crash loop: back-off that doubles, is capped, and starts over after a healthy run. */
import { expect } from 'chai';
import { CrashLoop } from '@flatline/stack';

const POLICY = { initialDelayMs: 1000, maxDelayMs: 8000, resetAfterMs: 60_000 };

describe('the supervisor crash loop (back-off of a process that keeps dying)', () => {
  let now = 0;
  const clock = () => now;

  /** One run of ranMs, then a crash; returns the back-off. */
  const crashAfter = (loop: CrashLoop, ranMs: number): number => {
    loop.ready(4242);
    now += ranMs;
    const delay = loop.crashed('SIGKILL');
    now += delay;
    loop.restarting();
    return delay;
  };

  it('doubles the back-off on each crash in a row (half jitter), up to the cap', () => {
    const loop = new CrashLoop('ingestion-0', POLICY, clock);
    const delays = Array.from({ length: 7 }, () => crashAfter(loop, 2000));
    const nominal = [1000, 2000, 4000, 8000, 8000, 8000, 8000];
    delays.forEach((d, i) => expect(d, `crash ${i + 1}: ${delays.join(', ')}`).to.be.within(nominal[i]! / 2, nominal[i]!));
    expect(loop.status()).to.deep.include({ name: 'ingestion-0', state: 'starting', restarts: 7 });
  });

  it('starts over from the first delay after a run longer than resetAfterMs', () => {
    const loop = new CrashLoop('storage-0', POLICY, clock);
    for (let i = 0; i < 5; i++) crashAfter(loop, 1000);
    expect(crashAfter(loop, 1000), 'still in the loop').to.be.within(4000, 8000);
    expect(crashAfter(loop, 61_000), 'after a healthy minute').to.be.within(500, 1000);
    expect(loop.status().restarts).to.equal(7);
  });

  it('counts a start that fails as a crash of a run of 0 s (the back-off keeps growing)', () => {
    const loop = new CrashLoop('ferretdb', POLICY, clock);
    crashAfter(loop, 90_000);
    const d = loop.crashed('start failed: address in use');
    expect(d).to.be.within(1000, 2000);
    expect(loop.status()).to.deep.include({ state: 'back-off', lastExit: { code: 'start failed: address in use', at: new Date(now).toISOString(), ranSeconds: 0 } });
    expect(loop.status().nextStartAt).to.equal(new Date(now + d).toISOString());
  });

  it('shows how it last ended, with its pid while it runs and none while it waits', () => {
    const loop = new CrashLoop('devices', POLICY, clock);
    loop.ready(77);
    expect(loop.status()).to.deep.equal({ name: 'devices', state: 'running', pid: 77, restarts: 0 });
    now += 12_300;
    loop.crashed('SIGKILL');
    const s = loop.status();
    expect(s).to.deep.include({ state: 'back-off', restarts: 0, lastExit: { code: 'SIGKILL', at: new Date(now).toISOString(), ranSeconds: 12.3 } });
    expect(s.pid).to.equal(undefined);
    loop.stopped();
    expect(loop.status()).to.deep.include({ state: 'stopped', restarts: 0 });
    expect(loop.status().nextStartAt).to.equal(undefined);
  });
});
