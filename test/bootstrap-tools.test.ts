/**
 * What each command installs before it runs (scripts/ensure-tools.mjs,
 * scripts/bootstrap.mjs, tools/install.sh): the per-command tool sets checked
 * against the binaries the code spawns and against package.json; a warm run
 * that builds nothing and says at most one line; a cold run (stand-in tools in
 * a scratch copy of tools/) that first says what it builds and how long that
 * takes, then one line per tool; unknown names refused with the list.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const INSTALL = join(ROOT, 'tools', 'install.sh');

/** The module under test, loaded per test so that one missing export fails one test, not the file. */
const tools = () => import('../scripts/ensure-tools.mjs');

interface Ran {
  code: number | null;
  out: string;
  lines: string[];
  ms: number;
}

function run(command: string, args: string[], env: Record<string, string> = {}, cwd = ROOT): Ran {
  const t0 = performance.now();
  const r = spawnSync(command, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20 * 60_000 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return { code: r.status, out, lines: out.split('\n').filter((l) => l.trim() !== ''), ms: performance.now() - t0 };
}

/** Tool names the files reference as .tools/bin/<binary> or ensureTool('<name>'), as installer names. */
function spawnedTools(paths: string[]): Set<string> {
  const installerOf: Record<string, string> = { chaos: 'chaostoolkit', promtool: 'prometheus', 'toxiproxy-server': 'toxiproxy', postgres: 'postgresql', initdb: 'postgresql', psql: 'postgresql', 'pilot-discovery': 'istiod' };
  const found = new Set<string>();
  const files = paths.flatMap((p) => (!existsSync(p) ? [] : statSync(p).isDirectory() ? readdirSync(p).filter((f) => f.endsWith('.ts')).map((f) => join(p, f)) : [p]));
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/TOOLS_BIN,\s*'([\w-]+)'|ensureTool\(\s*'([\w-]+)'/g)) {
      const bin = (m[1] ?? m[2])!;
      found.add(installerOf[bin] ?? bin);
    }
  }
  return found;
}

const sorted = (xs: Iterable<string>): string[] => [...new Set(xs)].sort();

/** The tool names package.json's script passes to bootstrap, or undefined when it does not run bootstrap. */
function bootstrapArgs(script: string): string[] | undefined {
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const m = /node scripts\/bootstrap\.mjs((?:\s+[\w-]+)*)\s*(?:&&|$)/.exec(scripts[script] ?? '');
  return m === null ? undefined : m[1]!.trim().split(/\s+/).filter(Boolean);
}

/** Each cache entry with its BUILD-INFO's mtime: a build renames a new entry into place, so any build changes this. */
function snapshot(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((e) => e !== '.locks')
    .map((e) => {
      const info = join(dir, e, 'BUILD-INFO');
      return `${e} ${lstatSync(join(dir, e)).mtimeMs} ${existsSync(info) ? lstatSync(info).mtimeMs : '-'}`;
    })
    .sort();
}

describe('bootstrap: what each command installs', function () {
  describe('the per-command tool sets', () => {
    it('flatline up (npm start) installs exactly what the local stack spawns: ferretdb, haproxy, toxiproxy, postgresql and istiod, not grpcurl', async () => {
      const { TOOLS_FOR } = await tools();
      const stackSpawns = spawnedTools([join(ROOT, 'stack', 'src'), join(ROOT, 'cli', 'src', 'stack')]);
      expect(sorted(TOOLS_FOR.up)).to.deep.equal(sorted(stackSpawns));
      expect(sorted(TOOLS_FOR.up)).to.deep.equal(['ferretdb', 'haproxy', 'istiod', 'postgresql', 'toxiproxy']);
    });

    it('chaos adds Chaos Toolkit to the stack it may start; bench adds what its suites spawn', async () => {
      const { TOOLS_FOR } = await tools();
      const chaos = spawnedTools([join(ROOT, 'cli', 'src', 'commands', 'chaos.ts')]);
      expect(sorted(TOOLS_FOR.chaos)).to.deep.equal(sorted([...TOOLS_FOR.up, ...chaos]));
      expect(sorted(TOOLS_FOR.chaos)).to.deep.equal(['chaostoolkit', 'ferretdb', 'haproxy', 'istiod', 'postgresql', 'toxiproxy']);
      const bench = spawnedTools([join(ROOT, 'bench', 'src'), join(ROOT, 'cli', 'src', 'bench'), join(ROOT, 'cli', 'src', 'commands', 'bench.ts')]);
      expect(sorted(TOOLS_FOR.bench)).to.deep.equal(sorted([...TOOLS_FOR.up, ...bench]));
      expect(sorted(TOOLS_FOR.bench)).to.deep.equal(['ferretdb', 'ghz', 'haproxy', 'istiod', 'postgresql', 'prometheus', 'toxiproxy', 'victoria-metrics', 'wrk']);
    });

    it('the manifest and Tiltfile checks name the tools their tests spawn', async () => {
      const { TOOLS_FOR } = await tools();
      expect(sorted(TOOLS_FOR.manifests)).to.deep.equal(sorted(spawnedTools([join(ROOT, 'test', 'manifests.test.ts')])));
      expect(sorted(TOOLS_FOR.tiltfile)).to.deep.equal(sorted(spawnedTools([join(ROOT, 'test', 'tiltfile.test.ts')])));
    });

    it('npm test installs every default tool, which covers every tool a test spawns', async () => {
      const { defaultTools } = await tools();
      const tests = spawnedTools([join(ROOT, 'test'), ...readdirSync(join(ROOT, 'services')).map((s) => join(ROOT, 'services', s, 'test'))]);
      expect(bootstrapArgs('test'), 'npm test runs bootstrap with no names').to.deep.equal([]);
      expect(defaultTools()).to.include.members([...tests]);
    });

    it('package.json passes each command its set: start, chaos, flatline, bench', async () => {
      const { TOOLS_FOR } = await tools();
      expect(bootstrapArgs('start'), 'start').to.deep.equal(TOOLS_FOR.up);
      expect(bootstrapArgs('chaos'), 'chaos').to.deep.equal(TOOLS_FOR.chaos);
      // npm run flatline -- up|chaos run|chaos campaign on a fresh clone: the packages, and what those start (it crashed without tsx before).
      expect(bootstrapArgs('flatline'), 'flatline').to.deep.equal(TOOLS_FOR.chaos);
      expect(bootstrapArgs('bench'), 'bench').to.deep.equal(TOOLS_FOR.bench);
    });

    it('every installer names its tool and its measured cold time (# summary:, # cold: ~N s|min)', async () => {
      const { availableTools } = await tools();
      const names = availableTools();
      expect(names).to.include.members(['ferretdb', 'haproxy', 'chaostoolkit', 'prometheus', 'wrk', 'ghz', 'istioctl', 'kubeconform', 'tilt']);
      for (const t of names) {
        const text = readFileSync(join(ROOT, 'tools', `install-${t}.sh`), 'utf8');
        expect(text, t).to.match(/^# summary: \S/m);
        expect(text, t).to.match(/^# cold: ~\d+ (s|min)$/m);
      }
    });
  });

  describe('a warm run', function () {
    // On a cold machine this builds them once (FerretDB: a minute or two); the tests then measure the warm run.
    before(async function () {
      this.timeout(30 * 60_000);
      const { ensureTools, TOOLS_FOR } = await tools();
      ensureTools(TOOLS_FOR.up, { quiet: true });
    });

    it('tools/install.sh ferretdb haproxy toxiproxy postgresql istiod (npm start\'s tools) builds nothing and prints at most one line, within 2 s even on a loaded machine', async () => {
      const { TOOLS_FOR } = await tools();
      const cache = join(process.env['XDG_CACHE_HOME'] ?? join(process.env['HOME'] ?? '', '.cache'), 'flatline');
      const before = snapshot(cache);
      const r = run('bash', [INSTALL, ...TOOLS_FOR.up]);
      expect(r.code, r.out).to.equal(0);
      expect(r.lines.length, r.out).to.be.at.most(1);
      expect(r.out).to.not.match(/build/i);
      // About 0.05 s on an idle 2-core machine; the bound leaves room for a loaded one (npm test runs beside builds).
      expect(r.ms, 'warm install.sh').to.be.below(2000);
      expect(snapshot(cache), 'the cache is unchanged').to.deep.equal(before);
      const binOf: Record<string, string> = { toxiproxy: 'toxiproxy-server', postgresql: 'postgres', istiod: 'pilot-discovery' };
      for (const tool of TOOLS_FOR.up) expect(existsSync(join(ROOT, '.tools', 'bin', binOf[tool] ?? tool)), tool).to.equal(true);
    });

    it('node scripts/bootstrap.mjs ferretdb haproxy toxiproxy postgresql istiod (npm start\'s bootstrap) likewise, when node_modules is current', async function () {
      const stamp = join(ROOT, 'node_modules', '.flatline-lock-sha256');
      const { createHash } = await import('node:crypto');
      const lock = createHash('sha256').update(readFileSync(join(ROOT, 'package-lock.json'))).digest('hex');
      // npm ci under mocha would delete the node_modules this test runs from.
      if (!existsSync(stamp) || readFileSync(stamp, 'utf8').trim() !== lock) this.skip();
      const { TOOLS_FOR } = await tools();
      const r = run('node', [join(ROOT, 'scripts', 'bootstrap.mjs'), ...TOOLS_FOR.up]);
      expect(r.code, r.out).to.equal(0);
      expect(r.lines.length, r.out).to.be.at.most(1);
      expect(r.out).to.not.match(/build|npm ci/i);
      expect(r.ms, 'warm bootstrap (about 0.1 s idle)').to.be.below(3000);
    });

    it('ensureTools(…, { quiet: true }) prints nothing when all is cached', async () => {
      const script = `import { ensureTools } from ${JSON.stringify(join(ROOT, 'scripts', 'ensure-tools.mjs'))}; ensureTools(['ferretdb', 'haproxy'], { quiet: true });`;
      const r = run('node', ['--input-type=module', '-e', script]);
      expect(r.code, r.out).to.equal(0);
      expect(r.out).to.equal('');
    });
  });

  describe('a cold run (stand-in tools in a scratch copy of tools/, an empty cache)', function () {
    let dir: string;
    let env: Record<string, string>;
    const installer = (name: string, cold: string, build: string): string => `#!/usr/bin/env bash
# Usage: tools/install-${name}.sh
#
# summary: ${name}, a stand-in
# cold: ${cold}
set -euo pipefail
here="$(cd "$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
source "$here/lib.sh"
tools_args "\${BASH_SOURCE[0]}" "$@"
build() {
  ${build}
}
tools_install ${name} v1 ${name}-v1 ${name} build none
`;
    const ok = (name: string) => `echo "compiling ${name}, noisily"; printf '#!/bin/sh\\necho ${name}\\n' >"$1/${name}"; chmod +x "$1/${name}"`;

    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'bootstrap-tools-'));
      mkdirSync(join(dir, 'tools'));
      for (const f of ['install.sh', 'lib.sh']) copyFileSync(join(ROOT, 'tools', f), join(dir, 'tools', f));
      writeFileSync(join(dir, 'tools', 'install-alpha.sh'), installer('alpha', '~2 min', ok('alpha')));
      writeFileSync(join(dir, 'tools', 'install-beta.sh'), installer('beta', '~30 s', ok('beta')));
      writeFileSync(join(dir, 'tools', 'install-broken.sh'), installer('broken', '~10 s', 'echo "compiler says no: missing.h"; return 1'));
      env = { XDG_CACHE_HOME: join(dir, 'cache'), FLATLINE_TOOLS_REBUILD: '' };
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('says first what it builds with each time and the sum, then one line per tool; the second run one line at most', () => {
      const cold = run('bash', [join(dir, 'tools', 'install.sh'), 'alpha', 'beta'], env, dir);
      expect(cold.code, cold.out).to.equal(0);
      expect(cold.lines.length, cold.out).to.equal(3);
      expect(cold.lines[0], cold.out).to.match(/alpha \(~2 min\).*beta \(~30 s\).*~3 min/);
      expect(cold.lines[1], cold.out).to.match(/^\[tools\] alpha\b.*building.*done in \d+ s$/);
      expect(cold.lines[2], cold.out).to.match(/^\[tools\] beta\b.*building.*done in \d+ s$/);
      expect(cold.out, 'the builds\' own output goes to a log').to.not.include('noisily');
      expect(run(join(dir, '.tools', 'bin', 'alpha'), []).out.trim()).to.equal('alpha');

      const warm = run('bash', [join(dir, 'tools', 'install.sh'), 'alpha', 'beta'], env, dir);
      expect(warm.code, warm.out).to.equal(0);
      expect(warm.lines.length, warm.out).to.be.at.most(1);
      expect(warm.out).to.not.match(/build/i);
    });

    it('a failed build exits non-zero and shows the tail of its log; nothing half-built stays in the cache', () => {
      const r = run('bash', [join(dir, 'tools', 'install.sh'), 'broken'], env, dir);
      expect(r.code, r.out).to.not.equal(0);
      expect(r.out).to.match(/broken.*failed/);
      expect(r.out).to.include('compiler says no: missing.h');
      const left = readdirSync(join(dir, 'cache', 'flatline')).filter((f) => f !== '.locks' && f !== '.logs');
      expect(left, 'cache entries').to.deep.equal([]);
      expect(existsSync(join(dir, '.tools', 'bin', 'broken'))).to.equal(false);
    });
  });

  describe('unknown tool names', () => {
    it('bootstrap refuses one with a one-line message naming it and the tools there are, before npm ci', () => {
      const r = run('node', [join(ROOT, 'scripts', 'bootstrap.mjs'), 'ferretdb', 'nosuchtool']);
      expect(r.code).to.equal(2);
      expect(r.lines.length, r.out).to.equal(1);
      expect(r.out).to.match(/unknown tool: nosuchtool\b.*\bferretdb\b.*\bhaproxy\b/);
      expect(r.out, 'no stack trace').to.not.match(/^\s+at |Command failed/m);
    });

    it('ensureTools throws an Error that names it and the tools there are', async () => {
      const { ensureTools } = await tools();
      expect(() => ensureTools(['nosuchtool'])).to.throw(/unknown tool: nosuchtool\b.*\bferretdb\b/);
    });
  });
});
