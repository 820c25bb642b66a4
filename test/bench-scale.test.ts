/** The scale suite's arithmetic (the suite itself runs with `npm run bench -- --only scale`; npm test only prints its plan). */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { backlogGoal, perMinute, scaleFigures, scalePlan, scaleSuite, worstSteadyP99, type ScaleRepeat, type ScaleSample } from '@flatline/bench';
import { cpuSeconds, eventually, treeStats } from '@flatline/stack';

const say = (): void => {};

/** Samples every 5 s for minutes, p99 as given per minute. */
function samples(p99PerMinute: readonly number[], visible = 100, outbox: number[] = [10, 20]): ScaleSample[] {
  return p99PerMinute.flatMap((p99, m) => Array.from({ length: 12 }, (_, i) => ({ t: m * 60 + i * 5, p50: p99 / 2, p99: i === 3 ? p99 : p99 / 2, worst: p99 + 1, visible, outbox })));
}

function repeat(flatline: ScaleRepeat['flatline'], peerP99 = [3, 3, 3]): ScaleRepeat {
  return {
    repeat: 1,
    ...(flatline === undefined ? {} : { flatline }),
    peers: [{ name: 'Prometheus', version: '2.42', samples: samples(peerP99), windowS: 180, cpuS: 9, rssMaxBytes: 500 * 2 ** 20, scrapes: 36_000, problems: [] }],
    errors: [],
  };
}

function side(p99PerMinute: readonly number[], over: Partial<NonNullable<ScaleRepeat['flatline']>> = {}): NonNullable<ScaleRepeat['flatline']> {
  return {
    samples: samples(p99PerMinute),
    windowS: 60 * p99PerMinute.length,
    components: [
      { name: 'ingestion-0', cpuS: 30, rssMaxBytes: 120 * 2 ** 20 },
      { name: 'ingestion-1', cpuS: 30, rssMaxBytes: 140 * 2 ** 20 },
    ],
    steadyPolls: 48_000,
    steadyIngestionCpuS: 9.6,
    outboxAtEnd: [10, 20],
    missed: 0,
    outboxFull: 0,
    drainS: 2,
    gaps: { runs: 300, readings: 90_000, missing: 0, runsWithGaps: 0 },
    problems: [],
    ...over,
  };
}

const figure = (figs: ReturnType<typeof scaleFigures>, start: string) => figs.find((f) => f.name.startsWith(start))!;

describe('bench suite: scale (its arithmetic; not run here)', () => {
  it('plans 10,000 flats for 10 minutes × 3 repeats (quick: 2,000 × 2 minutes × 1), on the stack npm start runs; sizes from the command line win', () => {
    expect(scalePlan(false)).to.include({ flats: 10_000, minutes: 10, repeats: 3, nodes: 2, replicas: 2, devicesPerFlat: 3, devicePeriodMs: 5000, intervalMs: 5000 });
    expect(scalePlan(true)).to.include({ flats: 2000, minutes: 2, repeats: 1 });
    expect(scalePlan(false, { flats: 500, minutes: 1, repeats: 2 })).to.include({ flats: 500, minutes: 1, repeats: 2, peerMinutes: 1 });
    expect(scaleSuite.plan({ quick: true, keep: false, say })).to.include('2000 flats').and.include('VictoriaMetrics');
    expect(scaleSuite.plan({ quick: false, keep: false, say, sizes: { flats: 7 } })).to.include('7 flats');
  });

  it('reports per minute the median p50, the worst sample\'s p99, the fewest visible and the largest outbox of each replica; failed samples apart', () => {
    const s: ScaleSample[] = [...samples([4, 12]), { t: 61, error: 'UNAVAILABLE' }];
    const rows = perMinute(s);
    expect(rows.map((r) => [r.minute, r.p99, r.failedSamples])).to.deep.equal([
      [1, 4, 0],
      [2, 12, 1],
    ]);
    expect(rows[1]!.p50).to.equal(6);
    expect(rows[0]!.outboxMax).to.deep.equal([10, 20]);
    expect(worstSteadyP99(rows), 'the first minute does not count').to.equal(12);
    expect(worstSteadyP99(perMinute(samples([30, 5, 5])))).to.equal(5);
  });

  it('meets the goals only when every one holds: freshness after the first minute, every flat visible, a bounded backlog, zero gaps, RSS, CPU per poll', () => {
    const plan = scalePlan(false, { flats: 100 });
    const good = scaleFigures([repeat(side([40, 5, 6]))], plan);
    expect(good.map((f) => f.met).filter((m) => m !== undefined)).to.deep.equal([true, true, true, true, true, true]);
    expect(figure(good, 'ingestion CPU/poll').ratio).to.be.closeTo(0.2 / 0.25, 1e-9);
    // The negative controls, one goal at a time.
    expect(figure(scaleFigures([repeat(side([4, 5, 10.5]))], plan), 'knowledge freshness').met).to.equal(false);
    expect(figure(scaleFigures([repeat(side([4, 5], { samples: samples([4, 5], 99) }))], plan), 'flats visible').met).to.equal(false);
    expect(figure(scaleFigures([repeat(side([4, 5], { outboxAtEnd: [10, backlogGoal(plan) + 1] }))], plan), 'outbox backlog').met).to.equal(false);
    expect(figure(scaleFigures([repeat(side([4, 5], { gaps: { runs: 300, readings: 89_999, missing: 1, runsWithGaps: 1 } }))], plan), 'gaps').met).to.equal(false);
    expect(figure(scaleFigures([repeat(side([4, 5], { components: [{ name: 'ingestion-0', cpuS: 1, rssMaxBytes: 151 * 2 ** 20 }] }))], plan), 'ingestion RSS').met).to.equal(false);
    expect(figure(scaleFigures([repeat(side([4, 5], { steadyIngestionCpuS: 12.1 }))], plan), 'ingestion CPU/poll').met).to.equal(false);
  });

  it('gives no verdict where nothing was measured (a stack that failed to start)', () => {
    const figs = scaleFigures([{ repeat: 1, peers: [], errors: ['stack: could not start'] }], scalePlan(false));
    expect(figs.every((f) => f.met === undefined)).to.equal(true);
  });

  it('a backlog goal of one interval\'s readings per replica: 10,000 flats × 3 devices / 2 replicas', () => {
    expect(backlogGoal(scalePlan(false))).to.equal(15_000);
  });

  it('counts the CPU of a process tree: a shell\'s busy child counts for the shell', async () => {
    const shell = spawn('sh', ['-c', `${JSON.stringify(process.execPath)} -e "const e = Date.now() + 3000; while (Date.now() < e);"; true`], { stdio: 'ignore' });
    try {
      await eventually('the child to burn a second', async () => treeStats(shell.pid!).cpuS >= 1, 10_000, 100);
      expect(cpuSeconds(shell.pid!), 'the shell itself is idle').to.be.below(0.5);
    } finally {
      shell.kill('SIGKILL');
    }
  });
});
