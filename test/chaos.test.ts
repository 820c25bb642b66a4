import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, TOOLS_BIN } from '@flatline/cli/paths.js';
import type { LocalStack } from '@flatline/cli/stack/stack.js';
import { eventually, startTestStack, tempDir } from './support/stack.ts';
import { freshness } from './support/checks.ts';

const run = promisify(execFile);
const H1 = join(REPO_ROOT, 'chaos', 'new-measurements-keep-arriving-when-devices-slow-down', 'experiment.json');
const H3 = join(REPO_ROOT, 'chaos', 'no-measurement-is-lost-while-the-database-is-unreachable', 'experiment.json');

interface Journal {
  status: string;
  deviated: boolean;
  steady_states: { before: { steady_state_met: boolean } | null; after: { steady_state_met: boolean } | null; during: Array<{ steady_state_met: boolean }> };
  run: Array<{ activity: { name: string }; status: string }>;
  rollbacks: Array<{ activity: { name: string }; status: string }>;
}

/** Every steady-state check of the run (before, during, after) held. */
function heldThroughout(j: Journal): boolean {
  return [j.steady_states.before, ...j.steady_states.during, j.steady_states.after].every((s) => s?.steady_state_met === true);
}

/** Runs the real `chaos run` from the repository root; resolves with the journal whatever the exit code. */
async function chaosRun(experiment: string, journal: string, vars: Record<string, string>, continuously = true): Promise<Journal> {
  const strategy = continuously ? ['--hypothesis-strategy', 'continuously', '--hypothesis-frequency', '2', '--fail-fast'] : [];
  const args = ['--no-version-check', '--log-file', `${journal}.log`, 'run', '--rollback-strategy', 'always', ...strategy, '--journal-path', journal];
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}=${v}`);
  await run(join(TOOLS_BIN, 'chaos'), [...args, experiment], { cwd: REPO_ROOT, timeout: 180000 }).catch(() => undefined);
  return JSON.parse(readFileSync(journal, 'utf8')) as Journal;
}

describe('chaos experiments under the real Chaos Toolkit (local stack)', function () {
  this.timeout(240000);
  const dir = tempDir('chaos');
  let stack: LocalStack;

  before(async () => {
    stack = await startTestStack(dir.path, 24, { ingestion: { FLATLINE_POLL_TIMEOUT_MS: '600', FLATLINE_BACKOFF_MAX_MS: '2000' } });
    expect(await eventually(async () => (await freshness(stack.query.grpc)).flatCount === 24, 20000, 500)).to.equal(true);
  });

  after(async () => {
    await stack?.stop();
    dir.cleanup();
  });

  it('H1: healthy flats stay fresher than 20 s while flat 7 answers 30 s late; the delay took effect and is rolled back', async () => {
    const journal = await chaosRun(H1, join(dir.path, 'h1.json'), { state_dir: dir.path, fault_seconds: '12' });
    expect(journal.status).to.equal('completed');
    expect(journal.deviated).to.equal(false);
    expect(heldThroughout(journal), 'steady state held before, during and after').to.equal(true);
    expect(journal.steady_states.during.length, 'checked during the fault').to.be.at.least(2);
    expect(journal.run.map((r) => [r.activity.name, r.status])).to.deep.equal([
      ['delay-the-slow-flats', 'succeeded'],
      ['let-the-fault-act', 'succeeded'],
      ['the-delay-took-effect', 'succeeded'],
    ]);
    expect(journal.rollbacks.map((r) => r.status)).to.deep.equal(['succeeded']);
    expect(JSON.parse(readFileSync(stack.faultsFile, 'utf8'))).to.deep.equal({ version: 1, faults: [] });
  });

  it('H1 deviates when its steady state cannot hold (max age 0.5 s at a 1 s interval), and still rolls back', async () => {
    const journal = await chaosRun(H1, join(dir.path, 'h1-deviated.json'), { state_dir: dir.path, fault_seconds: '5', max_age_seconds: '0.5' });
    expect(heldThroughout(journal)).to.equal(false);
    expect(journal.rollbacks.map((r) => r.status)).to.deep.equal(['succeeded']);
    expect(JSON.parse(readFileSync(stack.faultsFile, 'utf8'))).to.deep.equal({ version: 1, faults: [] });
  });

  it('H3: nothing is lost while the database is frozen for 15 s; the outboxes drain and every sequence is whole', async () => {
    const journal = await chaosRun(H3, join(dir.path, 'h3.json'), { state_dir: dir.path, outage_seconds: '15' }, false);
    expect(journal.status).to.equal('completed');
    expect(journal.deviated).to.equal(false);
    expect(heldThroughout(journal), 'zero gaps, drained and fresh, before and after').to.equal(true);
    expect(journal.run.map((r) => [r.activity.name, r.status])).to.deep.equal([
      ['freeze-the-database', 'succeeded'],
      ['keep-it-away', 'succeeded'],
      ['storage-reports-not-serving', 'succeeded'],
      ['thaw-the-database', 'succeeded'],
    ]);
    expect(journal.rollbacks.map((r) => r.status)).to.deep.equal(['succeeded']);
  });
});
