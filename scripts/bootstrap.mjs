#!/usr/bin/env node
// Makes a fresh clone runnable for one command: installs the npm packages when
// they are missing or older than package-lock.json, then the tools the command
// names (tools/install.sh), or every default tool when it names none (npm test).
// Cold, it first says in one line what it will build and roughly how long that
// takes; warm, it prints one line and returns in well under a second.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { availableTools, checkToolNames, defaultTools, ensureTools, roughDuration, toolsPlan, ToolsError } from './ensure-tools.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** npm ci of a fresh clone on the 2-core machine, load 4.5: 79 s with a warm npm cache, 70 s with an empty one. */
const NPM_CI_SECONDS = 75;

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  // Installers with "# default: no" (npm test leaves them out) run only when named: say which.
  const optional = availableTools().filter((t) => !defaultTools().includes(t));
  console.log(`usage: node scripts/bootstrap.mjs [tool…]

Installs what a flatline command needs on this machine, idempotently:
  npm packages  (npm ci, when node_modules is missing or package-lock.json changed)
  tools         (tools/install.sh: the tools named, or every default tool when none is;
                 see bash tools/install.sh --help)
npm start, npm test, npm run chaos and npm run bench run it first, each with its tools.
Installed only when named: ${optional.join(', ')}.`);
  process.exit(0);
}

try {
  const option = args.find((a) => a.startsWith('-'));
  if (option !== undefined) throw new ToolsError(`unknown option: ${option} (try --help)`);
  // Before npm ci: a misspelt name should not cost a minute first.
  checkToolNames(args);
  const tools = args.length > 0 ? args : defaultTools();

  const lock = join(root, 'package-lock.json');
  const stamp = join(root, 'node_modules', '.flatline-lock-sha256');
  const want = createHash('sha256').update(readFileSync(lock)).digest('hex');
  const have = existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : '';
  if (have !== want) {
    // One line for the whole cold start: npm ci, then the tools to build.
    const plan = toolsPlan(tools);
    const total = NPM_CI_SECONDS + plan.reduce((s, p) => s + p.seconds, 0);
    const why = have === '' ? 'first run in this clone' : 'package-lock.json changed';
    const then = plan.length === 0 ? '' : `, then building ${plan.map((p) => `${p.tool} (${roughDuration(p.seconds)})`).join(', ')}`;
    console.error(`[bootstrap] ${why}: npm ci (${roughDuration(NPM_CI_SECONDS)})${then}; ${roughDuration(total)} in all`);
    const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
    if (npm.status !== 0) throw new ToolsError(`npm ci failed (${npm.error?.message ?? (npm.signal ?? `exit ${npm.status}`)}): see npm's messages above`);
    writeFileSync(stamp, `${want}\n`);
    ensureTools(tools, { planned: true });
  } else {
    ensureTools(tools);
  }
} catch (err) {
  if (!(err instanceof ToolsError)) throw err;
  console.error(`[bootstrap] ${err.message}`);
  process.exit(/^unknown (tool|option)/.test(err.message) ? 2 : 1);
}
