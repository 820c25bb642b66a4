/** The chaos report generator (chaos/flatline_chaos/report.py) is Python: its own unittest suite runs here, in the project's .venv. */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '@flatline/stack';

const run = promisify(execFile);

describe('the chaos report generator (report.py)', () => {
  it('passes its unittest suite: verdicts from real journals, fault windows, the plot', async function () {
    this.timeout(120000);
    const python = join(REPO_ROOT, '.venv', 'bin', 'python');
    const res = await run(python, ['-m', 'unittest', 'discover', '-s', 'chaos', '-p', 'test_*.py'], { cwd: REPO_ROOT, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } }).then(
      (r) => ({ code: 0, out: r.stderr }),
      (e: { code?: number; stderr?: string }) => ({ code: e.code ?? -1, out: e.stderr ?? '' }),
    );
    expect(res.code, res.out.slice(-3000)).to.equal(0);
    expect(res.out).to.match(/Ran \d+ tests/);
  });
});
