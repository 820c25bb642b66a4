/**
 * `flatline chaos campaign` stopped from outside: SIGTERM (a test runner's
 * timeout, a CI job cancelled) while a fault is on, and the reader of its
 * output gone at once (the pipe closed), as when the runner that started it
 * exits. It must heal, write its report and stop the stack it started,
 * without the final checks that may wait minutes. Before, such a campaign
 * died at its next line (EPIPE) and left its whole stack running.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessRecord, REPO_ROOT, eventually, tempDir } from '@flatline/stack';
import { CLI } from './support/chaos-run.ts';

/** The processes a stack recorded in its state folder (processes.json) that still run. */
function stillRunning(stateDir: string): string[] {
  const file = join(stateDir, 'processes.json');
  if (!existsSync(file)) return [];
  const entries = JSON.parse(readFileSync(file, 'utf8')) as Array<{ name: string; pid: number; marker: string }>;
  return entries
    .filter((e) => {
      try {
        return readFileSync(`/proc/${e.pid}/cmdline`, 'utf8').includes(e.marker);
      } catch {
        return false;
      }
    })
    .map((e) => `${e.name} (pid ${e.pid})`);
}

describe('flatline chaos campaign stopped from outside', function () {
  this.timeout(240000);
  const dir = tempDir('campaign-signals');
  const stateDir = join(dir.path, 'state');
  after(async () => {
    // Failed or not, nothing of it outlives the test.
    await new ProcessRecord(stateDir).stopLeftovers();
    dir.cleanup();
  });

  it('SIGTERM while a fault is on, its output pipe closed: heals, reports "interrupted" and stops its stack, without the final checks', async () => {
    const reports = join(dir.path, 'reports');
    const child = spawn(process.execPath, [...CLI, 'chaos', 'campaign', '--state-dir', stateDir, '--reports', reports, '--faults', 'db', '--duration', '2m', '--seed', '8', '--flats', '8'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await eventually('the campaign to put its first fault on', async () => / on +#1 /.test(out), 180000, 200);
      expect(stillRunning(stateDir), 'its stack runs').to.not.deep.equal([]);
      child.kill('SIGTERM');
      // The runner that started it is gone: nobody reads its output any more.
      child.stdout.destroy();
      child.stderr.destroy();
      const started = Date.now();
      const code = await exited;
      expect(code, out.slice(-3000)).to.equal(130);
      // Without the final checks: the drain timeout alone is 120 s.
      expect(Date.now() - started, 'it did not wait for the final checks').to.be.below(90000);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    expect(stillRunning(stateDir), 'the stack it started is stopped').to.deep.equal([]);
    const [report] = readdirSync(reports);
    const verdict = JSON.parse(readFileSync(join(reports, report!, 'verdict.json'), 'utf8')) as { verdict: string; finalChecks: Record<string, string> };
    expect(verdict.verdict).to.equal('interrupted');
    expect(verdict.finalChecks).to.deep.equal({ skipped: 'terminated before the final checks ended' });
  });
});
