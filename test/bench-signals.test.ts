/**
 * `flatline bench` stopped from outside (SIGTERM from a runner's timeout,
 * or a `kill`) while a suite runs: it must stop every process it started.
 * Before, it died on the signal at once, its suites' cleanup never ran, and
 * their PostgreSQL and FerretDB kept running (holding ports, cores and a
 * temporary cluster) until someone found them.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { REPO_ROOT, descendantsOf, eventually } from '@flatline/stack';
import { CLI } from './support/chaos-run.ts';

/** Whether pid runs (a zombie waiting for a reaper counts as ended), with its command line. */
function alive(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return undefined;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return undefined;
  }
}

describe('flatline bench stopped from outside', function () {
  this.timeout(180000);
  const leftovers: number[] = [];
  after(() => {
    // Failed or not, nothing of it outlives the test.
    for (const pid of leftovers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });

  it('SIGTERM during the storage suite: stops its PostgreSQL and FerretDB, exits 143 and writes no figures', async () => {
    const child = spawn(process.execPath, [...CLI, 'bench', '--only', 'storage', '--quick', '--out', '/nonexistent/bench-results'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let started: number[] = [];
    try {
      // The database is up once the first timed run begins.
      await eventually('the storage suite to begin its first run', async () => /storage: repeat 1\/1/.test(out), 120000, 100);
      started = descendantsOf(child.pid!);
      leftovers.push(...started);
      const names = started.map(alive).filter((c): c is string => c !== undefined);
      expect(names.some((c) => c.includes('postgres')), `PostgreSQL among ${names.join(' | ')}`).to.equal(true);
      expect(names.some((c) => c.includes('ferretdb')), `FerretDB among ${names.join(' | ')}`).to.equal(true);
      child.kill('SIGTERM');
      expect(await exited, out.slice(-3000)).to.equal(143);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    // A PostgreSQL backend ends a moment after its postmaster: a few seconds to settle, not more.
    const stillRunning = (): string[] => started.flatMap((pid) => (alive(pid) === undefined ? [] : [`${pid}: ${alive(pid)}`]));
    await eventually('every process the bench started to end', async () => stillRunning().length === 0, 5000, 100).catch(() => undefined);
    expect(stillRunning(), 'processes the bench started that still run').to.deep.equal([]);
    expect(out).to.match(/SIGTERM: stopping every process the bench started/);
    expect(out).to.not.match(/written: /);
  });
});
