/**
 * `flatline chaos campaign` as a user runs it: a 3-minute seeded campaign of
 * overlapping faults of every kind against a real stack holds every
 * invariant, and the same campaign (replayed from its report) against a
 * weakened ingestion, one that drops a fetch whose Append failed instead of
 * keeping it in its outbox, fails on zero gaps. A campaign that cannot fail
 * proves nothing.
 */
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CAMPAIGN_KINDS, REPO_ROOT, tempDir, type CampaignSchedule } from '@flatline/stack';
import { CLI, run } from './support/chaos-run.ts';

/** Seed 16 draws every kind in 3 minutes, and the database frozen at +5 s: the weakened run fails early. */
const SEED = '16';

interface CampaignOutcome {
  code: number;
  stdout: string;
  dir: string;
  verdict: { verdict: string; seed: number; faults: number; injected: number; skipped: string[]; violations: number; byInvariant: Record<string, number>; finalChecks: Record<string, string> };
  schedule: CampaignSchedule;
  timeline: Array<{ type: string; tMs: number; phase?: string; id?: number; invariant?: string }>;
}

async function campaign(reports: string, stateDir: string, args: string[], timeoutMs: number): Promise<CampaignOutcome> {
  const before = new Set(existsSync(reports) ? readdirSync(reports) : []);
  const { code, stdout } = await run(process.execPath, [...CLI, 'chaos', 'campaign', '--state-dir', stateDir, '--reports', reports, ...args], { cwd: REPO_ROOT, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }).then(
    (r) => ({ code: 0, stdout: r.stdout }),
    (e: { code?: number; stdout?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '' }),
  );
  const fresh = readdirSync(reports).filter((d) => !before.has(d));
  expect(fresh, `one new report folder\n${stdout.slice(-4000)}`).to.have.length(1);
  const dir = join(reports, fresh[0]!);
  expect(existsSync(join(dir, 'verdict.json')), `verdict.json (exit ${code})\n${stdout.slice(-4000)}`).to.equal(true);
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  return {
    code,
    stdout,
    dir,
    verdict: JSON.parse(read('verdict.json')) as CampaignOutcome['verdict'],
    schedule: JSON.parse(read('schedule.json')) as CampaignSchedule,
    timeline: read('timeline.jsonl')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as CampaignOutcome['timeline'][number]),
  };
}

describe('flatline chaos campaign', function () {
  this.timeout(480000);
  const dir = tempDir('campaign');
  const reports = join(dir.path, 'reports');
  after(() => dir.cleanup());
  let strong: CampaignOutcome | undefined;

  it(`a 3-minute campaign (seed ${SEED}) of overlapping faults of every kind holds every invariant, and reports it`, async () => {
    strong = await campaign(reports, join(dir.path, 'strong'), ['--duration', '3m', '--seed', SEED], 420000);
    const o = strong;
    const shown = `${o.stdout.slice(-4000)}\n${readFileSync(join(o.dir, 'report.md'), 'utf8').slice(0, 3000)}`;
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
    // Checked continuously, not only at the end.
    expect(o.timeline.filter((e) => e.type === 'gaps').length).to.be.at.least(10);
    expect(o.timeline.filter((e) => e.type === 'freshness').length).to.be.at.least(100);
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
