/** `flatline`'s command table: lazy, complete, and the same names the modules declare. */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '@flatline/stack';
import { COMMANDS } from '@flatline/cli';

const run = promisify(execFile);

describe('flatline command table', function () {
  this.timeout(60000);

  it('loads each command by the name it lists', async () => {
    for (const c of COMMANDS) expect((await c.load()).name(), c.name).to.equal(c.name);
  });

  it('imports no command module up front (the table loads them on demand)', () => {
    for (const file of ['main.ts', 'commands.ts']) {
      const text = readFileSync(join(REPO_ROOT, 'cli', 'src', file), 'utf8');
      const statics = [...text.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
      expect(statics.filter((s) => s!.includes('/commands/')), file).to.deep.equal([]);
    }
  });

  it('lists every command in --help, and runs a command\'s own --help', async () => {
    const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'cli', 'src', 'main.ts'), ...args], { cwd: REPO_ROOT });
    const { stdout } = await cli('--help');
    for (const c of COMMANDS) expect(stdout).to.match(new RegExp(`^  ${c.name} `, 'm'));
    expect((await cli('gaps', '--help')).stdout).to.match(/--mongodb-uri/);
    expect((await cli('help', 'deadletters')).stdout).to.match(/replay/);
  });
});
