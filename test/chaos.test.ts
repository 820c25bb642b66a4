/**
 * The chaos experiments as a user runs them: `flatline chaos run <experiment>`
 * (the real Chaos Toolkit, rollbacks always, the steady state checked
 * continuously with fail-fast), with shortened durations. Each hypothesis
 * holds on the real system, and deviates on a deliberately weakened one: an
 * experiment that cannot fail proves nothing. Interrupted runs leave nothing
 * behind.
 */
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, TOOLS_BIN, readEvents, type LocalStack, eventually, startTestStack, tempDir, freshness, seqGaps } from '@flatline/stack';

const run = promisify(execFile);
const CLI = ['--import', 'tsx', join(REPO_ROOT, 'cli', 'src', 'main.ts')];

interface Verdict {
  verdict: 'passed' | 'deviated' | 'failed';
  status: string;
  reason: string;
  steady_state_checks: number;
  steady_state_failures: number;
}

interface Outcome {
  code: number;
  stdout: string;
  dir: string;
  verdict: Verdict;
}

/** `flatline chaos run` as a user types it; resolves with its exit code and the report folder it wrote. */
async function chaosRun(reports: string, stateDir: string, experiment: string, vars: Record<string, string>, extra: string[] = []): Promise<Outcome> {
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
function expectReport(o: Outcome, verdict: string): void {
  for (const f of ['journal.json', 'report.md', 'freshness.png', 'timeline.jsonl', 'events.jsonl']) expect(existsSync(join(o.dir, f)), f).to.equal(true);
  expect(readFileSync(join(o.dir, 'report.md'), 'utf8')).to.include(`**Verdict: ${verdict.toUpperCase()}**`);
  expect(readFileSync(join(o.dir, 'freshness.png')).subarray(1, 4).toString()).to.equal('PNG');
  expect(statSync(join(o.dir, 'freshness.png')).size).to.be.above(10000);
}

/** Nothing left behind: no fault on, every node ready with its processes running, the database not frozen. */
function expectNothingLeft(stack: LocalStack): void {
  expect(JSON.parse(readFileSync(stack.faultsFile, 'utf8'))).to.deep.equal({ version: 1, faults: [] });
  expect(stack.nodes().map((n) => n.state)).to.deep.equal(['ready', 'ready']);
  for (const p of stack.processes()) {
    expect(p.running, `${p.name} runs`).to.equal(true);
    expect(readFileSync(`/proc/${p.pid}/stat`, 'utf8').split(') ')[1]![0], `${p.name} not stopped`).to.not.equal('T');
  }
}

/** Every reading fetched is stored: outboxes drained (flatline drained), then no gap in any device's sequence. */
async function expectZeroGaps(stack: LocalStack): Promise<void> {
  await run(process.execPath, [...CLI, 'drained', '--timeout', '60s', '--state-dir', stack.options.stateDir], { cwd: REPO_ROOT });
  const report = await seqGaps(stack.db.uri);
  expect(report.readings).to.be.above(0);
  expect(report.gaps, JSON.stringify(report.gaps.slice(0, 5))).to.deep.equal([]);
}

describe('chaos experiments: flatline chaos run under the real Chaos Toolkit', function () {
  this.timeout(300000);
  const dir = tempDir('chaos');
  const reports = join(dir.path, 'reports');
  let stack: LocalStack;

  before(async () => {
    stack = await startTestStack(join(dir.path, 'stack'), 24, { ingestion: { FLATLINE_POLL_TIMEOUT_MS: '600', FLATLINE_BACKOFF_MAX_MS: '2000' } }, 2);
    await eventually('the query service to report all 24 flats', async () => (await freshness(stack.queryAddress)).flatCount === 24, 30000, 500);
  });

  after(async () => {
    await stack?.stop();
    dir.cleanup();
  });

  it('H1 passes: healthy flats stay fresher than 20 s while three flats answer 30 s late; proof and rollback; zero gaps', async () => {
    const o = await chaosRun(reports, stack.options.stateDir, 'new-measurements', { fault_seconds: '12' });
    expect(o.code, o.stdout.slice(-3000)).to.equal(0);
    expect(o.verdict.verdict).to.equal('passed');
    expect(o.verdict.steady_state_checks).to.be.at.least(5);
    expectReport(o, 'passed');
    const journal = JSON.parse(readFileSync(join(o.dir, 'journal.json'), 'utf8')) as { run: Array<{ activity: { name: string }; output?: { status: number } }> };
    expect(journal.run.map((r) => [r.activity.name, r.output?.status])).to.deep.include.members([
      ['the-delay-took-effect', 0],
      // An http probe of the supervisor: 409, the flats were asked and are staler than the proof age.
      ['the-faulted-flats-went-stale', 409],
    ]);
    expect(readEvents(join(stack.options.stateDir)).some((e) => e.action === 'inject' && e.target === 'devices-slow')).to.equal(true);
    expectNothingLeft(stack);
    await expectZeroGaps(stack);
  });

  it('devices answering 503: healthy flats stay fresh, the failing ones are isolated', async () => {
    const o = await chaosRun(reports, stack.options.stateDir, 'devices-answer-errors', { fault_seconds: '8' });
    expect(o.code, o.stdout.slice(-3000)).to.equal(0);
    expectReport(o, 'passed');
    expectNothingLeft(stack);
  });

  it('storage answering UNAVAILABLE: nothing is lost, the outboxes drain after', async () => {
    const o = await chaosRun(reports, stack.options.stateDir, 'storage-is-unavailable', { fault_seconds: '8' });
    expect(o.code, o.stdout.slice(-3000)).to.equal(0);
    expectReport(o, 'passed');
    expectNothingLeft(stack);
    await expectZeroGaps(stack);
  });

  for (const failure of ['crash', 'drain', 'freeze']) {
    it(`H2 (${failure}) passes: query answers through HAProxy and every flat stays fresh while node-a is down; zero gaps`, async () => {
      const o = await chaosRun(reports, stack.options.stateDir, 'the-system-stays-reachable', { failure, fault_seconds: '12' });
      expect(o.code, o.stdout.slice(-3000)).to.equal(0);
      expect(o.verdict.steady_state_checks).to.be.at.least(5);
      expectReport(o, 'passed');
      expectNothingLeft(stack);
      await expectZeroGaps(stack);
    });
  }


  it('Ctrl-C during a frozen node and during a delay: the run ends interrupted and leaves nothing behind', async () => {
    for (const [experiment, vars, injected] of [
      ['the-system-stays-reachable', { failure: 'freeze', fault_seconds: '120' }, 'node-a'],
      ['new-measurements', { fault_seconds: '120' }, 'devices-slow'],
    ] as const) {
      const since = new Date();
      const args = [...CLI, 'chaos', 'run', experiment, '--state-dir', stack.options.stateDir, '--reports', reports];
      for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}=${v}`);
      const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: 'ignore' });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await eventually(`${experiment} to inject its fault on ${injected}`, async () => readEvents(stack.options.stateDir, since).some((e) => e.action === 'inject' && e.target === injected), 60000, 200);
      await new Promise((r) => setTimeout(r, 1500));
      child.kill('SIGINT');
      expect(await exited, `${experiment}: exit code after Ctrl-C`).to.equal(130);
      expectNothingLeft(stack);
    }
    await eventually('every flat fresher than 20 s after the interrupted runs', async () => (await freshness(stack.queryAddress)).worstAgeSeconds < 20, 30000, 500);
  });
});

/**
 * H3 runs on a stack of its own whose devices keep 5 s of readings (the
 * default is 60 s): with a long window, a replica that takes a flat over after
 * the outage fetches the whole window again and heals a loss, so H3 could pass
 * without the outbox. Its negative control runs on the same stack but for the
 * outbox bypassed.
 */
const H3_STACK = ['--env', 'devices:FLATLINE_DEVICES_WINDOW_MS=5000'];

describe('H3 on a stack whose devices keep 5 s of readings', function () {
  this.timeout(300000);
  const dir = tempDir('chaos-h3');
  after(() => dir.cleanup());

  it('passes: the database frozen 15 s loses nothing (outboxes drained, zero gaps, every flat fresh, checked before and after)', async () => {
    const o = await chaosRun(join(dir.path, 'reports'), join(dir.path, 'stack'), 'no-measurement-is-lost-while-the-database', { outage_seconds: '15' }, [...H3_STACK, '--interval', '1s']);
    expect(o.code, o.stdout.slice(-3000)).to.equal(0);
    expectReport(o, 'passed');
    const journal = JSON.parse(readFileSync(join(o.dir, 'journal.json'), 'utf8')) as { steady_states: { after: { probes: Array<{ activity: { name: string }; output?: { status: number } }> } } };
    expect(journal.steady_states.after.probes.map((p) => [p.activity.name, p.output?.status])).to.deep.include(['zero-gaps-in-every-device-sequence', 200]);
  });
});

describe('chaos experiments deviate on a weakened system (negative controls)', function () {
  this.timeout(300000);
  const dir = tempDir('chaos-weak');
  const reports = join(dir.path, 'reports');
  after(() => dir.cleanup());

  const cases: Array<[string, string, Record<string, string>, string[]]> = [
    [
      'H1 with a poll timeout (40 s) longer than the delay and one poll at a time (no per-flat isolation)',
      'new-measurements',
      { fault_seconds: '30' },
      ['--env', 'ingestion:FLATLINE_POLL_TIMEOUT_MS=40000', '--env', 'ingestion:FLATLINE_POLL_CONCURRENCY=1'],
    ],
    ['H2 with a single replica of each service (node-a holds them all)', 'the-system-stays-reachable', { failure: 'crash', fault_seconds: '30' }, ['--replicas', '1']],
    ['H3 with the outbox bypassed (a failed Append is dropped)', 'no-measurement-is-lost-while-the-database', { outage_seconds: '12' }, [...H3_STACK, '--env', 'ingestion:FLATLINE_FORWARD_ON_FAILURE=drop']],
  ];
  for (const [title, experiment, vars, extra] of cases) {
    it(`${title}: deviates, and still leaves nothing behind`, async () => {
      const stateDir = join(dir.path, experiment);
      const o = await chaosRun(reports, stateDir, experiment, vars, [...extra, '--interval', '1s']);
      expect(o.code, o.stdout.slice(-3000)).to.equal(1);
      expect(o.verdict.verdict, o.verdict.reason).to.equal('deviated');
      expect(o.verdict.steady_state_failures).to.be.at.least(1);
      expectReport(o, 'deviated');
      expect(JSON.parse(readFileSync(join(o.dir, 'sweep.json'), 'utf8'))).to.deep.equal({ found: [] });
      // The stack writes its fault file (no fault) when it starts, so it exists whether or not the experiment toggled a mesh fault.
      expect(JSON.parse(readFileSync(join(stateDir, 'faults.json'), 'utf8')), 'no fault left on').to.deep.equal({ version: 1, faults: [] });
    });
  }
});

describe('the cluster variants of the experiments', () => {
  it('pass chaos validate (chaostoolkit-kubernetes drain_nodes/uncordon_node, NetworkPolicy, rendered VirtualServices), as do the local ones (http probes of the supervisor)', async function () {
    this.timeout(120000);
    const files = readdirSync(join(REPO_ROOT, 'chaos'))
      .flatMap((d) => ['experiment.cluster.json', 'experiment.json'].map((f) => join(REPO_ROOT, 'chaos', d, f)))
      .filter((f) => existsSync(f));
    expect(files).to.have.length.at.least(10);
    for (const f of files) {
      const { stderr, stdout } = await run(join(TOOLS_BIN, 'chaos'), ['--no-version-check', 'validate', f], { cwd: REPO_ROOT });
      expect(`${stdout}${stderr}`, f).to.include('experiment syntax and semantic look valid');
    }
  });

  it('chaos validate fails on a cluster experiment that names a function chaostoolkit-kubernetes lacks (the check can fail)', async function () {
    this.timeout(60000);
    const broken = tempDir('chaos-broken');
    try {
      const e = JSON.parse(readFileSync(join(REPO_ROOT, 'chaos', 'the-system-stays-reachable-when-a-node-fails', 'experiment.cluster.json'), 'utf8')) as { method: Array<{ provider: { func?: string } }> };
      e.method[0]!.provider.func = 'drain_nodez';
      const file = join(broken.path, 'experiment.json');
      (await import('node:fs')).writeFileSync(file, JSON.stringify(e));
      const res = await run(join(TOOLS_BIN, 'chaos'), ['--no-version-check', 'validate', file], { cwd: REPO_ROOT }).then(
        () => 0,
        (err: { code?: number }) => err.code ?? -1,
      );
      expect(res).to.not.equal(0);
    } finally {
      broken.cleanup();
    }
  });
});
