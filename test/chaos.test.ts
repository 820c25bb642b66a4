/**
 * The chaos experiments (H1, devices failing, storage unavailable, the TCP
 * faults, H2, Ctrl-C) on one shared stack of two nodes on the Istio plane, as
 * a user runs them (`npm run chaos -- <experiment>` starts that plane): every
 * mesh fault is a VirtualService istiod pushes, and the events say so. (The
 * local plane, `--mesh local`, keeps its own tests of the fault file.)
 */
import { expect } from 'chai';
import { planOf } from '@flatline/mesh';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, readEvents, type LocalStack, eventually, holdFor, ROUTE_CONFIGURATION, startTestStack, tempDir, freshness, xdsInSync } from '@flatline/stack';
import { chaosRun, CLI, run, expectNoToxicLeft, expectNothingLeft, expectReport, expectZeroGaps, stackWarnings } from './support/chaos-run.ts';

describe('chaos experiments: flatline chaos run under the real Chaos Toolkit', function () {
  this.timeout(300000);
  const dir = tempDir('chaos');
  const reports = join(dir.path, 'reports');
  let stack: LocalStack;

  before(async () => {
    stack = await startTestStack(join(dir.path, 'stack'), 24, { ingestion: { FLATLINE_BACKOFF_MAX_MS: '2000' } }, 2, 'istio');
    await eventually('the query service to report all 24 flats', async () => (await freshness(stack.queryAddress)).flatCount === 24, 30000, 500);
  });

  /** The replicas the plane's ServiceEntry of service lists. */
  const endpointsOf = (service: string): string[] =>
    (JSON.parse(readFileSync(join(stack.istioConfigDir, `serviceentry-${service}.yaml`), 'utf8')) as { spec: { endpoints: Array<{ labels: { replica: string } }> } }).spec.endpoints.map((e) => e.labels.replica);

  after(async () => {
    await stack?.stop();
    dir.cleanup();
  });

  it('H1 passes: healthy flats stay fresher than 20 s while three flats answer 30 s late; proof and rollback; zero gaps', async () => {
    const o = await chaosRun(reports, stack.options.stateDir, 'new-measurements', { fault_seconds: '12' });
    expect(o.code, `${o.stdout.slice(-3000)}\n${stackWarnings(stack)}`).to.equal(0);
    expect(o.verdict.verdict).to.equal('passed');
    expect(o.verdict.steady_state_checks).to.be.at.least(5);
    expectReport(o, 'passed');
    const journal = JSON.parse(readFileSync(join(o.dir, 'journal.json'), 'utf8')) as { run: Array<{ activity: { name: string }; output?: { status: number } }> };
    expect(journal.run.map((r) => [r.activity.name, r.output?.status])).to.deep.include.members([
      ['the-delay-took-effect', 0],
      // An http probe of the supervisor: 409, the flats were asked and are staler than the proof age.
      ['the-faulted-flats-went-stale', 409],
    ]);
    // The route istiod generated for the replicas' sidecar identity, applied by ingestion's HTTP interceptor.
    const injected = readEvents(stack.options.stateDir).filter((e) => e.action === 'inject' && e.target === 'devices-slow');
    expect(injected.some((e) => e.detail.endsWith('(istiod)')), JSON.stringify(injected)).to.equal(true);
    expectNothingLeft(stack);
    await expectZeroGaps(stack);
  });

  it('devices answering 503: healthy flats stay fresh, the failing ones are isolated', async () => {
    const o = await chaosRun(reports, stack.options.stateDir, 'devices-answer-errors', { fault_seconds: '8' });
    expect(o.code, `${o.stdout.slice(-3000)}\n${stackWarnings(stack)}`).to.equal(0);
    expectReport(o, 'passed');
    expectNothingLeft(stack);
  });

  it('storage answering UNAVAILABLE: nothing is lost, the outboxes drain after', async () => {
    const since = new Date();
    const o = await chaosRun(reports, stack.options.stateDir, 'storage-is-unavailable', { fault_seconds: '8' });
    expect(o.code, `${o.stdout.slice(-3000)}\n${stackWarnings(stack)}`).to.equal(0);
    expectReport(o, 'passed');
    const events = readEvents(stack.options.stateDir, since).filter((e) => e.target === 'storage-unavailable');
    expect(events.map((e) => `${e.action} ${e.detail.endsWith('(istiod)') ? 'istiod' : e.detail}`), JSON.stringify(events)).to.deep.include.members(['inject istiod']);
    expectNothingLeft(stack);
    await expectZeroGaps(stack);
  });

  it('database connections reset (db-reset through Toxiproxy): nothing is lost, the resets took effect, the outboxes drain after', async () => {
    const o = await chaosRun(reports, stack.options.stateDir, 'database-connections-reset', { fault_seconds: '8' });
    expect(o.code, `${o.stdout.slice(-3000)}\n${stackWarnings(stack)}`).to.equal(0);
    expectReport(o, 'passed');
    // The proof, as the journal has it: the toxic on each database link, and bytes that met it.
    const journal = JSON.parse(readFileSync(join(o.dir, 'journal.json'), 'utf8')) as { run: Array<{ activity: { name: string }; output?: { stdout?: string } }> };
    const proof = journal.run.find((r) => r.activity.name === 'the-resets-took-effect')?.output?.stdout ?? '';
    for (const link of ['storage-db', 'query-db', 'ingestion-db']) {
      expect(proof, 'the proof').to.match(new RegExp(`db-reset ${link}: db-reset-${link}-reset_peer-downstream; [1-9]\\d* bytes received since it went on`));
    }
    expectNothingLeft(stack);
    await expectNoToxicLeft(stack);
    await expectZeroGaps(stack);
  });

  it('device links slow at the TCP level (flat 7 30 s, 13 5 s, 21 12 s through Toxiproxy): healthy flats stay fresh; the latency acted on each flat\'s own link', async () => {
    const o = await chaosRun(reports, stack.options.stateDir, 'device-links-slow-down', { fault_seconds: '10' });
    expect(o.code, `${o.stdout.slice(-3000)}\n${stackWarnings(stack)}`).to.equal(0);
    expectReport(o, 'passed');
    const journal = JSON.parse(readFileSync(join(o.dir, 'journal.json'), 'utf8')) as { run: Array<{ activity: { name: string }; output?: { status?: number; stdout?: string } }> };
    const proof = journal.run.find((r) => r.activity.name === 'the-latency-took-effect')?.output?.stdout ?? '';
    for (const flat of ['7', '13', '21']) expect(proof, 'the proof').to.match(new RegExp(`ingestion-devices-flat-${flat}: devices-tcp-slow-latency-downstream; [1-9]\\d* bytes received since it went on`));
    expect(journal.run.find((r) => r.activity.name === 'the-faulted-flats-went-stale')?.output?.status).to.equal(409);
    expectNothingLeft(stack);
    await expectNoToxicLeft(stack);
  });

  it('device connections cut mid-answer (flats 5, 17) and dribbled (9, 19): healthy flats stay fresh, nothing half-read is stored, zero gaps', async () => {
    const o = await chaosRun(reports, stack.options.stateDir, 'device-connections-break', { fault_seconds: '10' });
    expect(o.code, `${o.stdout.slice(-3000)}\n${stackWarnings(stack)}`).to.equal(0);
    expectReport(o, 'passed');
    const journal = JSON.parse(readFileSync(join(o.dir, 'journal.json'), 'utf8')) as { run: Array<{ activity: { name: string }; output?: { status?: number; stdout?: string } }> };
    const out = (name: string): string => journal.run.find((r) => r.activity.name === name)?.output?.stdout ?? '';
    for (const flat of ['5', '17']) expect(out('the-cuts-took-effect')).to.match(new RegExp(`ingestion-devices-flat-${flat}: devices-cut-limit_data-downstream; [1-9]\\d* bytes`));
    for (const flat of ['9', '19']) expect(out('the-dribble-took-effect')).to.match(new RegExp(`ingestion-devices-flat-${flat}: devices-dribble-slicer-downstream; [1-9]\\d* bytes`));
    expect(journal.run.find((r) => r.activity.name === 'the-faulted-flats-went-stale')?.output?.status).to.equal(409);
    expectNothingLeft(stack);
    await expectNoToxicLeft(stack);
    await expectZeroGaps(stack);
  });

  for (const failure of ['crash', 'drain', 'freeze']) {
    it(`H2 (${failure}) passes on the Istio plane: the supervisor asks query through istiod, every flat stays fresh while node-a is down, its replicas are back in the endpoints after; zero gaps${failure === 'crash' ? '; the sweep takes off a fault left on the plane' : ''}`, async () => {
      // The probes' client of query is an xDS client of istiod, in sync before the run.
      const supervisor = (await stack.istiod!.syncz()).find((c) => c.proxy === 'flatline-supervisor.flatline');
      expect(xdsInSync(supervisor, ROUTE_CONFIGURATION), JSON.stringify(supervisor)).to.equal(true);
      const queryFaults = (): string[] => planOf(JSON.parse(readFileSync(join(stack.istioConfigDir, 'virtualservice-query.yaml'), 'utf8')) as Record<string, unknown>).map((f) => f.name);
      if (failure === 'crash') {
        // A fault H2's rollback (node restore --all) does not touch, on the plane before the run (at 0 %: it delays no call).
        await run(process.execPath, [...CLI, 'fault', 'on', 'query-slow', '--percent', '0', '--delay', '1s', '--state-dir', stack.options.stateDir], { cwd: REPO_ROOT });
        expect(queryFaults()).to.deep.equal(['query-slow']);
      }
      const since = new Date();
      const o = await chaosRun(reports, stack.options.stateDir, 'the-system-stays-reachable', { failure, fault_seconds: '12' });
      expect(o.code, `${o.stdout.slice(-3000)}\n${stackWarnings(stack)}`).to.equal(0);
      expect(o.verdict.steady_state_checks).to.be.at.least(5);
      expectReport(o, 'passed');
      // The sweep found it on the plane (the fault file, which it also reads, has none) and put the baseline back.
      const found = failure === 'crash' ? ['faults still on the Istio plane for query: query-slow'] : [];
      expect(JSON.parse(readFileSync(join(o.dir, 'sweep.json'), 'utf8'))).to.deep.equal({ found });
      expect(queryFaults(), 'swept').to.deep.equal([]);
      expect(readEvents(stack.options.stateDir, since).some((e) => e.action === 'inject' && e.target === 'node-a'), 'node-a went down').to.equal(true);
      expectNothingLeft(stack);
      await eventually("node-a's replicas back in the plane's endpoints", async () => endpointsOf('query').length === 2 && endpointsOf('storage').length === 2, 60000, 200);
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
      await holdFor(1500, 'the experiment runs with its fault on before Ctrl-C');
      child.kill('SIGINT');
      expect(await exited, `${experiment}: exit code after Ctrl-C`).to.equal(130);
      expectNothingLeft(stack);
    }
    await eventually('every flat fresher than 20 s after the interrupted runs', async () => (await freshness(stack.queryAddress)).worstAgeSeconds < 20, 30000, 500);
  });
});
