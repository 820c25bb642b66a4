/**
 * The house's rooms: every workspace has one entry point and declares the
 * @flatline workspaces it imports, nothing reaches into another's internals
 * (a lint rule, shown refusing), and neither workspaces nor the modules of
 * one import each other in a circle.
 */
import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ESLint } from 'eslint';
import { REPO_ROOT } from '@flatline/stack';

interface Manifest {
  name: string;
  exports?: Record<string, string>;
  dependencies?: Record<string, string>;
}

const workspaces = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { workspaces: string[] }).workspaces;
const manifest = (w: string): Manifest => JSON.parse(readFileSync(join(REPO_ROOT, w, 'package.json'), 'utf8')) as Manifest;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === 'node_modules' || name === 'gen' || name === 'dist') continue;
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

const IMPORT = /^(?:import|export)\s[^'"]*?from\s+'([^']+)';/gm;
// A file another workspace serves (proto's descriptor sets) is a dependency too.
const RESOLVE = /import\.meta\.resolve\([`'](@flatline\/[\w-]+)/g;
/** import('…') loaded on demand (the harness loads a service only when a test starts it in-process). */
const DYNAMIC = /\bimport\('(@flatline\/[\w-]+)'\)/g;
const importsOf = (file: string): string[] => {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT), ...text.matchAll(RESOLVE), ...text.matchAll(DYNAMIC)].map((m) => m[1]!);
};

describe('workspaces', function () {
  this.timeout(60000);

  it('each has one entry point (proto also its descriptor sets), which exists', () => {
    for (const w of workspaces) {
      const m = manifest(w);
      const code = Object.entries(m.exports ?? {}).filter(([key]) => !key.endsWith('.binpb'));
      expect(code.map(([key]) => key), w).to.deep.equal(['.']);
      expect(() => statSync(join(REPO_ROOT, w, code[0]![1])), `${w}: ${code[0]![1]}`).to.not.throw();
    }
  });

  it('each declares every @flatline workspace its sources import, and no other', () => {
    for (const w of workspaces) {
      const m = manifest(w);
      const used = new Set(sources(join(REPO_ROOT, w, w === 'proto' ? '.' : 'src')).flatMap(importsOf).filter((s) => s.startsWith('@flatline/')));
      used.delete(m.name);
      const declared = Object.keys(m.dependencies ?? {}).filter((d) => d.startsWith('@flatline/'));
      expect([...used].sort(), `${w} imports`).to.deep.equal(declared.sort());
    }
  });

  it('depend on each other without a circle', () => {
    const deps = new Map(workspaces.map((w) => [manifest(w).name, Object.keys(manifest(w).dependencies ?? {}).filter((d) => d.startsWith('@flatline/'))]));
    const visiting = new Set<string>();
    const done = new Set<string>();
    const visit = (name: string, path: string[]): void => {
      if (done.has(name)) return;
      expect(visiting.has(name), `a circle: ${[...path, name].join(' → ')}`).to.equal(false);
      visiting.add(name);
      for (const d of deps.get(name) ?? []) visit(d, [...path, name]);
      visiting.delete(name);
      done.add(name);
    };
    for (const name of deps.keys()) visit(name, []);
  });

  it('have no circle of modules inside one workspace either (relative imports)', () => {
    for (const w of workspaces) {
      const files = sources(join(REPO_ROOT, w, w === 'proto' ? '.' : 'src'));
      const edges = new Map(files.map((f) => [f, importsOf(f).filter((s) => s.startsWith('.')).map((s) => resolve(dirname(f), s))]));
      const state = new Map<string, 'visiting' | 'done'>();
      const visit = (f: string, path: string[]): void => {
        if (state.get(f) === 'done') return;
        if (state.get(f) === 'visiting') expect.fail(`${w}: a circle: ${[...path, f].map((p) => relative(REPO_ROOT, p)).join(' → ')}`);
        state.set(f, 'visiting');
        for (const to of edges.get(f) ?? []) if (edges.has(to)) visit(to, [...path, f]);
        state.set(f, 'done');
      };
      // index.ts re-exports everything: it is no part of a circle between modules.
      for (const f of files) if (!f.endsWith('index.ts')) visit(f, []);
    }
  });

  it('the lint rule refuses an import of another workspace\'s internals, and takes its entry point', async () => {
    const eslint = new ESLint({ cwd: REPO_ROOT });
    const lint = async (text: string) => (await eslint.lintText(text, { filePath: join(REPO_ROOT, 'stack', 'src', 'probe.ts') }))[0]!.messages.map((m) => m.ruleId);
    expect(await lint("import { guard } from '@flatline/platform/mongo.js';\nexport { guard };\n")).to.include('no-restricted-imports');
    expect(await lint("import { guard } from '@flatline/platform';\nexport { guard };\n")).to.not.include('no-restricted-imports');
  });
});
