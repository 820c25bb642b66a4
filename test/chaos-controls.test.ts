/** The chaos experiments deviate on deliberately weakened systems: an experiment that cannot fail proves nothing. */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, freshness, startTestStack, tempDir, type LocalStack } from '@flatline/stack';
import { chaosRun, expectNoToxicLeft, expectNothingLeft, expectReport, H3_STACK } from './support/chaos-run.ts';

describe('chaos experiments deviate on a weakened system (negative controls)', function () {
  this.timeout(300000);
  const dir = tempDir('chaos-weak');
  const reports = join(dir.path, 'reports');
  after(() => dir.cleanup());

  const cases: Array<[string, string, Record<string, string>, string[]]> = [
    [
      'H1 with a poll timeout (40 s) longer than the delay and one poll at a time (no per-flat isolation)',
      'new-measurements',
      { fault_seconds: '30' },
      ['--env', 'ingestion:FLATLINE_POLL_TIMEOUT_MS=40000', '--env', 'ingestion:FLATLINE_POLL_CONCURRENCY=1'],
    ],
    ['H2 with a single replica of each service (node-a holds them all)', 'the-system-stays-reachable', { failure: 'crash', fault_seconds: '30' }, ['--replicas', '1']],
    ['H3 with the outbox bypassed (a failed Append is dropped)', 'no-measurement-is-lost-while-the-database', { outage_seconds: '12' }, [...H3_STACK, '--env', 'ingestion:FLATLINE_FORWARD_ON_FAILURE=drop']],
    [
      'device links slow at the TCP level with a poll timeout (40 s) longer than the delays and one poll at a time',
      'device-links-slow-down',
      { fault_seconds: '30' },
      ['--env', 'ingestion:FLATLINE_POLL_TIMEOUT_MS=40000', '--env', 'ingestion:FLATLINE_POLL_CONCURRENCY=1'],
    ],
    [
      'device answers dribbled with a poll timeout (40 s) longer than a dribbled answer and one poll at a time',
      'device-connections-break',
      { fault_seconds: '30' },
      ['--env', 'ingestion:FLATLINE_POLL_TIMEOUT_MS=40000', '--env', 'ingestion:FLATLINE_POLL_CONCURRENCY=1'],
    ],
    // Run once on a 24-flat stack started by the test (1 s polls), it passed: no Append met a reset in its 8 s.
    ['database connections reset with the outbox bypassed (a failed Append is dropped)', 'database-connections-reset', { fault_seconds: '8' }, ['--env', 'ingestion:FLATLINE_FORWARD_ON_FAILURE=drop']],
  ];
  for (const [title, experiment, vars, extra] of cases) {
    it(`${title}: deviates, and still leaves nothing behind`, async () => {
      const stateDir = join(dir.path, experiment);
      const o = await chaosRun(reports, stateDir, experiment, vars, [...extra, '--interval', '1s']);
      expect(o.code, o.stdout.slice(-3000)).to.equal(1);
      expect(o.verdict.verdict, o.verdict.reason).to.equal('deviated');
      expect(o.verdict.steady_state_failures).to.be.at.least(1);
      expectReport(o, 'deviated');
      expect(JSON.parse(readFileSync(join(o.dir, 'sweep.json'), 'utf8'))).to.deep.equal({ found: [] });
      // The stack writes its fault file (no fault) when it starts, so it exists whether or not the experiment toggled a mesh fault.
      expect(JSON.parse(readFileSync(join(stateDir, 'faults.json'), 'utf8')), 'no fault left on').to.deep.equal({ version: 1, faults: [] });
    });
  }

  describe('on the Istio plane: an ingestion that drops an Append that failed instead of keeping it in its outbox', function () {
    let stack: LocalStack;
    before(async () => {
      stack = await startTestStack(join(dir.path, 'drop'), 24, { ingestion: { FLATLINE_FORWARD_ON_FAILURE: 'drop' } }, 2, 'istio');
      await eventually('the query service to report all 24 flats', async () => (await freshness(stack.queryAddress)).flatCount === 24, 30000, 500);
    });
    after(async () => {
      await stack?.stop();
    });

    it('storage answering UNAVAILABLE (the fault a VirtualService istiod pushes): deviates (readings lost), and still leaves nothing behind', async () => {
      const o = await chaosRun(reports, stack.options.stateDir, 'storage-is-unavailable', { fault_seconds: '8' });
      expect(o.code, o.stdout.slice(-3000)).to.equal(1);
      // The loss is caught either by the steady state (deviated) or first by the method's own evidence probe
      // zero-gaps-after (failed: seen in CI, with the steady state after not met as well); either way for the gaps.
      expect(o.verdict.verdict, o.verdict.reason).to.be.oneOf(['deviated', 'failed']);
      expect(o.verdict.reason).to.match(/zero-gaps/);
      expect(o.verdict.steady_state_failures).to.be.at.least(1);
      // For the reason it names: the gaps (Chaos Toolkit's journal, the steady state after the method).
      const journal = JSON.parse(readFileSync(join(o.dir, 'journal.json'), 'utf8')) as { steady_states: { after?: { probes: Array<{ activity: { name: string }; tolerance_met: boolean }> } } };
      const unmet = (journal.steady_states.after?.probes ?? []).filter((p) => !p.tolerance_met).map((p) => p.activity.name);
      expect(unmet, JSON.stringify(journal.steady_states.after)).to.include('zero-gaps-in-every-device-sequence');
      if (o.verdict.verdict === 'deviated') expectReport(o, 'deviated');
      else expect(readFileSync(join(o.dir, 'report.md'), 'utf8')).to.include('**Verdict: FAILED');
      expect(JSON.parse(readFileSync(join(o.dir, 'sweep.json'), 'utf8'))).to.deep.equal({ found: [] });
      expectNothingLeft(stack);
      await expectNoToxicLeft(stack);
    });
  });
});
