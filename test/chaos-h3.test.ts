/** H3 under the real Chaos Toolkit, on a stack of its own whose devices keep 5 s of readings. */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '@flatline/stack';
import { chaosRun, expectReport, H3_PASS_STACK } from './support/chaos-run.ts';

describe('H3 on a stack whose devices keep 10 s of readings', function () {
  this.timeout(300000);
  const dir = tempDir('chaos-h3');
  after(() => dir.cleanup());

  it('passes: the database frozen 15 s loses nothing (outboxes drained, zero gaps, every flat fresh, checked before and after)', async () => {
    const o = await chaosRun(join(dir.path, 'reports'), join(dir.path, 'stack'), 'no-measurement-is-lost-while-the-database', { outage_seconds: '15' }, [...H3_PASS_STACK, '--interval', '1s']);
    expect(o.code, o.stdout.slice(-3000)).to.equal(0);
    expectReport(o, 'passed');
    const journal = JSON.parse(readFileSync(join(o.dir, 'journal.json'), 'utf8')) as { steady_states: { after: { probes: Array<{ activity: { name: string }; output?: { status: number } }> } } };
    expect(journal.steady_states.after.probes.map((p) => [p.activity.name, p.output?.status])).to.deep.include(['zero-gaps-in-every-device-sequence', 200]);
  });
});
