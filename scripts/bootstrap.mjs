#!/usr/bin/env node
// Makes a fresh clone runnable: installs the npm packages when they are
// missing or older than package-lock.json, then the external tools (FerretDB,
// grpcurl) through tools/install.sh. Idempotent and quiet when all is there.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(`usage: node scripts/bootstrap.mjs [tool…]

Installs what flatline needs on this machine, idempotently:
  npm packages  (npm ci, when node_modules is missing or package-lock.json changed)
  tools         (tools/install.sh: every default tool, or the tools named; see tools/install.sh --help)
npm start and npm test run it first.`);
  process.exit(0);
}

const lock = join(root, 'package-lock.json');
const stamp = join(root, 'node_modules', '.flatline-lock-sha256');
const want = createHash('sha256').update(readFileSync(lock)).digest('hex');
const have = existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : '';
if (have !== want) {
  console.error('[bootstrap] installing npm packages (npm ci)…');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  writeFileSync(stamp, `${want}\n`);
}
// No names: tools/install.sh installs every tool whose installer does not say "default: no".
execFileSync('bash', [join(root, 'tools', 'install.sh'), ...args], { cwd: root, stdio: 'inherit' });
