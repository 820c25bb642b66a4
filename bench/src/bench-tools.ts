/**
 * The external tools of the polling and http-floor suites (Prometheus, wrk):
 * Debian packages that tools/install.sh unpacks into the per-user cache on
 * demand. Bench-only, so `npm test` never installs them; a suite that cannot
 * have its tool reports "skipped: <reason>" instead of figures.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, TOOLS_BIN } from '@flatline/stack';

/** A tool's path, or why it cannot be had. */
export type ToolLookup = { readonly path: string } | { readonly skipped: string };

/**
 * .tools/bin/<name>, installed by `bash tools/install.sh <name>` when
 * missing; the reason is the installer's last line when that fails.
 */
export function ensureTool(name: string, say: (line: string) => void): ToolLookup {
  const path = join(TOOLS_BIN, name);
  if (existsSync(path)) return { path };
  say(`${name} is missing: bash tools/install.sh ${name}…`);
  const run = spawnSync('bash', [join(REPO_ROOT, 'tools', 'install.sh'), name], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 300_000 });
  if (run.status === 0 && existsSync(path)) return { path };
  const last = `${run.stderr ?? ''}${run.stdout ?? ''}`.trim().split('\n').pop() ?? '';
  return { skipped: `${name} could not be installed (bash tools/install.sh ${name}: ${run.error?.message ?? (last || `exit ${run.status}`)})` };
}

/** The first line a tool prints for its version flag, e.g. "prometheus, version 2.42.0+ds (…)"; '' when it prints nothing. */
export function toolVersionLine(path: string, flag = '--version'): string {
  const run = spawnSync(path, [flag], { encoding: 'utf8', timeout: 10_000 });
  return `${run.stdout ?? ''}${run.stderr ?? ''}`.trim().split('\n')[0] ?? '';
}

/** Seconds shown as milliseconds with the unit, e.g. 0.000412 → "0.412 ms". */
export function showSecondsAsMs(seconds: number, digits = 3): string {
  return Number.isFinite(seconds) ? `${(seconds * 1000).toFixed(digits)} ms` : 'n/a';
}

/** Bytes as MB (2^20), e.g. "84 MB". */
export function mb(bytes: number): string {
  return Number.isFinite(bytes) && bytes > 0 ? `${(bytes / 2 ** 20).toFixed(0)} MB` : 'n/a';
}
