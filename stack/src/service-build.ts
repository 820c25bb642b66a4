/**
 * The services as the stack runs them: compiled JavaScript, one ES module per
 * service (esbuild, the compiler tsx itself runs on), not TypeScript through
 * tsx's loader. Measured when loading ingestion's module graph: 134 MB RSS
 * under tsx, 94 MB compiled, in every process of the stack; and no
 * TypeScript is compiled again at every start and restart.
 *
 * Only flatline's own workspaces (@flatline/*) go into a bundle; every npm
 * package stays external and is loaded from node_modules as usual, so a
 * bundle lives inside the repository (.cache/services), where Node finds
 * them. A bundle is named by the hash of its content, written once
 * (atomically: stacks of parallel test files build at the same time) and
 * reused while the sources are unchanged; every stack start rebuilds in
 * memory (a fraction of a second), so a bundle is never older than the
 * sources it runs.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { REPO_ROOT, serviceEntry } from './paths.ts';

/** Where the bundles are kept (ignored by git, inside the repository so that node_modules resolves from them). */
export const SERVICE_BUILD_DIR = join(REPO_ROOT, '.cache', 'services');

/** The start of the path of every bundle of service (what its processes' command lines contain). */
export function bundlePrefix(service: string): string {
  return join(SERVICE_BUILD_DIR, `${service}-`);
}

/** Bundles of a service older than this, not the newest, are removed when a new one is written. */
const KEEP_OLD_MS = 60 * 60 * 1000;

/** The npm packages of every workspace: external to the bundles (read once per process: every start and restart builds). */
let externals: string[] | undefined;
function externalPackages(): string[] {
  externals ??= readExternalPackages();
  return externals;
}

function readExternalPackages(): string[] {
  const names = new Set<string>();
  const manifests = [join(REPO_ROOT, 'package.json'), ...['services', 'stack', 'mesh', 'proto'].flatMap((top) => manifestsUnder(join(REPO_ROOT, top)))];
  for (const file of manifests) {
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
    for (const name of Object.keys({ ...pkg.dependencies, ...pkg.devDependencies })) if (!name.startsWith('@flatline/')) names.add(name);
  }
  return [...names].flatMap((name) => [name, `${name}/*`]);
}

function manifestsUnder(dir: string): string[] {
  if (existsSync(join(dir, 'package.json'))) return [join(dir, 'package.json')];
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((d) => join(dir, d, 'package.json'))
    .filter((f) => existsSync(f));
}

/**
 * Compiles service's main (services/<service>/src/main.ts) into one ES module
 * and returns its path; the same sources give the same file, written once.
 */
export async function buildService(service: string): Promise<string> {
  const result = await build({
    entryPoints: [serviceEntry(service)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: externalPackages(),
    write: false,
    // No source map: V8 would keep it in memory with the source; stack traces name the functions all the same.
    logLevel: 'silent',
    absWorkingDir: REPO_ROOT,
  });
  const code = result.outputFiles[0]!.contents;
  const hash = createHash('sha256').update(code).digest('hex').slice(0, 16);
  mkdirSync(SERVICE_BUILD_DIR, { recursive: true });
  const file = `${bundlePrefix(service)}${hash}.mjs`;
  if (!existsSync(file)) {
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
    writeFileSync(tmp, code);
    renameSync(tmp, file);
    prune(service, file);
  }
  return file;
}

/** Removes a service's older bundles (a stack started within the hour may still be running one). */
function prune(service: string, keep: string): void {
  const now = Date.now();
  for (const name of readdirSync(SERVICE_BUILD_DIR)) {
    const path = join(SERVICE_BUILD_DIR, name);
    if (path === keep || !name.startsWith(`${service}-`) || !name.endsWith('.mjs')) continue;
    try {
      if (now - statSync(path).mtimeMs > KEEP_OLD_MS) rmSync(path, { force: true });
    } catch {
      // removed by another stack meanwhile
    }
  }
}
