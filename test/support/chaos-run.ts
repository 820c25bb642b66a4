/**
 * Shared by the chaos test files (split so that mocha runs them in
 * parallel): the chaos experiments as a user runs them: `flatline chaos run <experiment>`
 * (the real Chaos Toolkit, rollbacks always, the steady state checked
 * continuously with fail-fast), with shortened durations. Each hypothesis
 * holds on the real system, and deviates on a deliberately weakened one: an
 * experiment that cannot fail proves nothing. Interrupted runs leave nothing
 * behind.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, type LocalStack, stackWarningLines } from '@flatline/stack';
import { planOf } from '@flatline/mesh';

/** execFile as a promise. */
export const run = promisify(execFile);
/** The flatline command's node arguments. */
export const CLI = ['--import', 'tsx', join(REPO_ROOT, 'cli', 'src', 'main.ts')];

/** verdict.json of a run. */
export interface Verdict {
  verdict: 'passed' | 'deviated' | 'failed';
  status: string;
  reason: string;
  steady_state_checks: number;
  steady_state_failures: number;
}

/** What a run left. */
export interface Outcome {
  code: number;
  stdout: string;
  dir: string;
  verdict: Verdict;
}

/** `flatline chaos run` as a user types it; resolves with its exit code and the report folder it wrote. */
export async function chaosRun(reports: string, stateDir: string, experiment: string, vars: Record<string, string>, extra: string[] = []): Promise<Outcome> {
  const before = new Set(existsSync(reports) ? readdirSync(reports) : []);
  const args = [...CLI, 'chaos', 'run', experiment, '--state-dir', stateDir, '--reports', reports, ...extra];
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}=${v}`);
  const { code, stdout } = await run(process.execPath, args, { cwd: REPO_ROOT, timeout: 240000, maxBuffer: 64 * 1024 * 1024 }).then(
    (r) => ({ code: 0, stdout: r.stdout }),
    (e: { code?: number; stdout?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '' }),
  );
  const fresh = readdirSync(reports).filter((d) => !before.has(d));
  expect(fresh, `one new report folder\n${stdout.slice(-3000)}`).to.have.length(1);
  const dir = join(reports, fresh[0]!);
  expect(existsSync(join(dir, 'verdict.json')), `a verdict.json in ${dir} (exit ${code})\n${stdout.slice(-3000)}`).to.equal(true);
  return { code, stdout, dir, verdict: JSON.parse(readFileSync(join(dir, 'verdict.json'), 'utf8')) as Verdict };
}

/** The report folder has the journal, a readable report with the verdict and the plot. */
export function expectReport(o: Outcome, verdict: string): void {
  for (const f of ['journal.json', 'report.md', 'freshness.png', 'timeline.jsonl', 'events.jsonl']) expect(existsSync(join(o.dir, f)), f).to.equal(true);
  expect(readFileSync(join(o.dir, 'report.md'), 'utf8')).to.include(`**Verdict: ${verdict.toUpperCase()}**`);
  expect(readFileSync(join(o.dir, 'freshness.png')).subarray(1, 4).toString()).to.equal('PNG');
  expect(statSync(join(o.dir, 'freshness.png')).size).to.be.above(10000);
}

/** Nothing left behind: no fault on, every node ready with its processes running, the database not frozen. */
export function expectNothingLeft(stack: LocalStack): void {
  expect(JSON.parse(readFileSync(stack.faultsFile, 'utf8'))).to.deep.equal({ version: 1, faults: [] });
  if (stack.options.mesh === 'istio') {
    // On the Istio plane the faults are VirtualServices in istiod's folder: every host back to its baseline.
    const left = readdirSync(stack.istioConfigDir)
      .filter((f) => /^virtualservice-.*\.yaml$/.test(f))
      .flatMap((f) => planOf(JSON.parse(readFileSync(join(stack.istioConfigDir, f), 'utf8')) as Record<string, unknown>).map((fault) => `${fault.name} in ${f}`));
    expect(left, 'faults left on the Istio plane').to.deep.equal([]);
  }
  expect(stack.nodes().map((n) => n.state)).to.deep.equal(['ready', 'ready']);
  for (const p of stack.processes()) {
    expect(p.running, `${p.name} runs`).to.equal(true);
    expect(readFileSync(`/proc/${p.pid}/stat`, 'utf8').split(') ')[1]![0], `${p.name} not stopped`).to.not.equal('T');
  }
}

/** No TCP fault left on any of the stack's Toxiproxy links. */
export async function expectNoToxicLeft(stack: LocalStack): Promise<void> {
  if (stack.toxiproxy === undefined) return;
  const left = Object.values(await stack.toxiproxy.client.listProxies()).flatMap((p) => p.toxics.map((t) => `${t.name} on ${p.name}`));
  expect(left, 'TCP faults left on').to.deep.equal([]);
}

/** What the stack's logs say went wrong (ingestion's warnings, the database watch of storage and query), for a failed run's message. */
export function stackWarnings(stack: LocalStack): string {
  return stackWarningLines(join(stack.options.stateDir, 'logs'));
}

/** Every reading fetched is stored: outboxes drained (flatline drained), then no gap in any device's sequence. */
export async function expectZeroGaps(stack: LocalStack): Promise<void> {
  await run(process.execPath, [...CLI, 'drained', '--timeout', '60s', '--state-dir', stack.options.stateDir], { cwd: REPO_ROOT });
  const report = await stack.storedGaps();
  expect(report.readings).to.be.above(0);
  expect(report.gaps, `${JSON.stringify(report.gaps.slice(0, 5))}\n${stackWarnings(stack)}`).to.deep.equal([]);
}

/**
 * H3 runs on a stack of its own whose devices keep 5 s of readings (the
 * default is 60 s): with a long window, a replica that takes a flat over after
 * the outage fetches the whole window again and heals a loss, so H3 could pass
 * without the outbox. Its negative control runs on the same stack but for the
 * outbox bypassed.
 */
export const H3_STACK = ['--env', 'devices:FLATLINE_DEVICES_WINDOW_MS=5000'];

/**
 * The stack of H3's passing run: devices keep 10 s, still far less than the
 * 15 s outage (so the outbox must carry it), but a poll that a machine busy
 * with other test files holds up for 5 s is not a loss at the device.
 */
export const H3_PASS_STACK = ['--env', 'devices:FLATLINE_DEVICES_WINDOW_MS=10000'];
