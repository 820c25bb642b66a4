/** Runs `flatline chaos campaign` as a user does, and reads the report folder it wrote. */
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, type CampaignSchedule } from '@flatline/stack';
import { CLI, run } from './chaos-run.ts';

export interface CampaignOutcome {
  code: number;
  stdout: string;
  dir: string;
  verdict: { verdict: string; seed: number; faults: number; injected: number; skipped: string[]; violations: number; byInvariant: Record<string, number>; finalChecks: Record<string, string> };
  schedule: CampaignSchedule;
  timeline: Array<{ type: string; tMs: number; phase?: string; id?: number; detail?: string; invariant?: string; excused?: number | 'all'; worst?: number | null }>;
}

export async function campaign(reports: string, stateDir: string, args: string[], timeoutMs: number): Promise<CampaignOutcome> {
  const before = new Set(existsSync(reports) ? readdirSync(reports) : []);
  const { code, stdout } = await run(process.execPath, [...CLI, 'chaos', 'campaign', '--state-dir', stateDir, '--reports', reports, ...args], { cwd: REPO_ROOT, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }).then(
    (r) => ({ code: 0, stdout: r.stdout }),
    (e: { code?: number; stdout?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '' }),
  );
  const fresh = readdirSync(reports).filter((d) => !before.has(d));
  expect(fresh, `one new report folder\n${stdout.slice(-4000)}`).to.have.length(1);
  const dir = join(reports, fresh[0]!);
  expect(existsSync(join(dir, 'verdict.json')), `verdict.json (exit ${code})\n${stdout.slice(-4000)}`).to.equal(true);
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  return {
    code,
    stdout,
    dir,
    verdict: JSON.parse(read('verdict.json')) as CampaignOutcome['verdict'],
    schedule: JSON.parse(read('schedule.json')) as CampaignSchedule,
    timeline: read('timeline.jsonl')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as CampaignOutcome['timeline'][number]),
  };
}
