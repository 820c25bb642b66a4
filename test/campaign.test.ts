/**
 * `flatline chaos campaign` as a user runs it: a 3-minute seeded campaign of
 * overlapping faults of every kind against a real stack holds every
 * invariant, and the same campaign (replayed from its report) against a
 * weakened ingestion, one that drops a fetch whose Append failed instead of
 * keeping it in its outbox, fails on zero gaps. A campaign that cannot fail
 * proves nothing.
 */
import { expect } from 'chai';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CAMPAIGN_KINDS, databaseWatchLines, tempDir } from '@flatline/stack';
import { campaign, type CampaignOutcome } from './support/campaign-run.ts';

/** Seed 16 draws every kind in 3 minutes, and the database frozen at +5 s: the weakened run fails early. */
const SEED = '16';

describe('flatline chaos campaign', function () {
  this.timeout(480000);
  const dir = tempDir('campaign');
  const reports = join(dir.path, 'reports');
  after(() => dir.cleanup());
  let strong: CampaignOutcome | undefined;

  it(`a 3-minute campaign (seed ${SEED}) of overlapping faults of every kind holds every invariant, and reports it`, async () => {
    strong = await campaign(reports, join(dir.path, 'strong'), ['--duration', '3m', '--seed', SEED], 420000);
    const o = strong;
    const shown = `${o.stdout.slice(-4000)}\n${readFileSync(join(o.dir, 'report.md'), 'utf8').slice(0, 3000)}\n${databaseWatchLines(join(dir.path, 'strong', 'logs'))}`;
    expect(o.code, shown).to.equal(0);
    expect(o.verdict.verdict, shown).to.equal('passed');
    expect(o.verdict.violations).to.equal(0);
    expect(o.stdout).to.include(`seed ${SEED}:`);
    // It hunted: many faults, every kind, overlapping, each on and off as the timeline says.
    expect(o.verdict.faults).to.be.at.least(15);
    expect(o.verdict.injected, 'injected (a process not running when due is skipped)').to.equal(o.verdict.faults - o.verdict.skipped.length);
    expect(o.verdict.injected).to.be.at.least(o.verdict.faults - 2);
    expect(new Set(o.schedule.faults.map((f) => f.kind))).to.deep.equal(new Set(CAMPAIGN_KINDS));
    const on = o.timeline.filter((e) => e.type === 'fault' && e.phase === 'on').map((e) => e.id);
    const off = o.timeline.filter((e) => e.type === 'fault' && e.phase === 'off').map((e) => e.id);
    expect(on).to.have.length(o.verdict.injected);
    expect([...off].sort()).to.deep.equal([...on].sort(), 'every fault that went on went off');
    expect(o.schedule.faults.filter((f) => o.schedule.faults.some((g) => g.id < f.id && g.healMs > f.atMs)).length, 'overlapping faults').to.be.at.least(5);
    // The stack it started runs the Istio plane (the default): each gRPC and HTTP fault went on and off as a
    // VirtualService istiod pushed and its clients ACKed, not into the fault file, which no client there reads.
    for (const [kind, hosts] of [['grpc', /storage|query/], ['http', /devices/]] as const) {
      const ids = new Set(o.schedule.faults.filter((f) => f.kind === kind).map((f) => f.id));
      const events = o.timeline.filter((e) => e.type === 'fault' && ids.has(e.id ?? -1));
      expect(events.length, `${kind} faults on and off`).to.be.at.least(2);
      for (const e of events) expect(e.detail, `#${e.id} ${e.phase}`).to.match(new RegExp(`istiod pushed the routes of (${hosts.source}): ACKed by`));
    }
    // Checked continuously, not only at the end.
    expect(o.timeline.filter((e) => e.type === 'gaps').length).to.be.at.least(10);
    expect(o.timeline.filter((e) => e.type === 'freshness').length).to.be.at.least(100);
    // Ingestion's freshness is judged through the database and storage faults that excuse query's.
    const fetchedChecked = o.timeline.filter((e) => e.type === 'fetched' && typeof e.worst === 'number');
    const queryChecked = o.timeline.filter((e) => e.type === 'freshness' && typeof e.worst === 'number');
    expect(fetchedChecked.length, 'fetch freshness samples judged').to.be.at.least(20);
    expect(fetchedChecked.length, 'more of the run judged by fetch freshness than by query freshness').to.be.above(queryChecked.length / 2);
    expect(o.verdict.finalChecks['zero-gaps']).to.match(/^zero gaps: \d+ readings/);
    const png = readFileSync(join(o.dir, 'timeline.png'));
    expect(png.subarray(1, 4).toString()).to.equal('PNG');
    expect(statSync(join(o.dir, 'timeline.png')).size).to.be.above(20000);
    expect(readFileSync(join(o.dir, 'report.md'), 'utf8')).to.include(`# Fault campaign, seed ${SEED}: PASSED`);
  });

  it('the same campaign, replayed against an ingestion that drops what it cannot forward, fails on zero gaps', async function () {
    if (strong === undefined) this.skip();
    const o = await campaign(reports, join(dir.path, 'weak'), ['--replay', strong.dir, '--fail-fast', '--env', 'ingestion:FLATLINE_FORWARD_ON_FAILURE=drop'], 420000);
    expect(o.schedule.faults, 'the replay runs the same schedule').to.deep.equal(strong.schedule.faults);
    expect(o.schedule.seed).to.equal(strong.schedule.seed);
    expect(o.code, o.stdout.slice(-4000)).to.equal(1);
    expect(o.verdict.verdict).to.equal('failed');
    expect(o.verdict.byInvariant['zero-gaps'], JSON.stringify(o.verdict.byInvariant)).to.be.at.least(1);
    expect(o.verdict.finalChecks['zero-gaps']).to.match(/reading\(s\) lost/);
    // Found while it ran (fail-fast stopped it early), not only by the final count.
    const firstLoss = o.timeline.find((e) => e.type === 'violation' && e.invariant === 'zero-gaps');
    expect(firstLoss?.tMs).to.be.below(o.schedule.durationMs);
  });
});
