/**
 * The local Istio plane (`flatline up --mesh istio`): the objects the stack
 * keeps in istiod's folder, and a real stack of two nodes with the real
 * istiod whose proxyless xDS clients reach query's replicas through the
 * ServiceEntry, follow a drained node (its replicas leave the endpoints and
 * calls keep working), and see the endpoints come back on restore. Skipped
 * when istiod is not built (bash tools/install.sh istiod). The chaos
 * experiments run on this plane in test/chaos.test.ts.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { register as registerXds } from '@grpc/grpc-js-xds';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetFreshnessRequest, QueryServiceClient } from '@flatline/proto';
import { checkHealth } from '@flatline/platform';
import { eventually, holdFor, tempDir } from '../src/harness.ts';
import { applyPlaneRoute, planeObjects, planeTarget, PlaneRouteError, serviceEntry, syncPlane, type PlaneEndpoint } from '../src/istio-plane.ts';
import { PILOT_DISCOVERY, ROUTE_CONFIGURATION, xdsInSync, type IstioObject, type SyncStatus } from '../src/istiod.ts';
import { callSupervisor } from '../src/supervisor-http.ts';
import { metricValue } from '../src/probes.ts';
import { DEFAULT_MESH, faultVirtualService, planOf, readFaultFile, scenario } from '@flatline/mesh';
import { FREE_PORTS, LocalStack } from '../src/stack.ts';
import { REPO_ROOT } from '../src/paths.ts';

const E = (replica: string, node: string, port: number): PlaneEndpoint => ({ replica, node, address: `127.0.0.1:${port}` });

describe('the local Istio plane: what the stack writes into istiod\'s folder', () => {
  it('a ServiceEntry per service on the cluster\'s host and port, one endpoint per replica (its own port), sorted', () => {
    const se = serviceEntry('query', [E('query-1', 'node-b', 40002), E('query-0', 'node-a', 40001)]) as unknown as { metadata: { namespace: string }; spec: Record<string, unknown> };
    expect(se.metadata.namespace).to.equal('flatline');
    expect(se.spec).to.deep.equal({
      hosts: ['query.flatline.svc.cluster.local'],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [{ number: 7102, name: 'grpc-query', protocol: 'GRPC' }],
      endpoints: [
        { address: '127.0.0.1', ports: { 'grpc-query': 40001 }, labels: { replica: 'query-0', node: 'node-a' } },
        { address: '127.0.0.1', ports: { 'grpc-query': 40002 }, labels: { replica: 'query-1', node: 'node-b' } },
      ],
    });
    expect(planeTarget('storage')).to.equal('xds:///storage.flatline.svc.cluster.local:7101');
    expect(() => serviceEntry('query', [{ replica: 'q', node: 'n', address: 'nowhere' }])).to.throw(/host:port/);
  });

  it('the baseline VirtualService and the DestinationRule of the cluster (outlier detection), without mTLS', () => {
    const objects = planeObjects({ storage: [], query: [] });
    expect([...objects.keys()].sort()).to.deep.equal([
      'destinationrule-query.yaml',
      'destinationrule-storage.yaml',
      'serviceentry-query.yaml',
      'serviceentry-storage.yaml',
      'virtualservice-query.yaml',
      'virtualservice-storage.yaml',
    ]);
    const dr = objects.get('destinationrule-storage.yaml') as unknown as { spec: { host: string; trafficPolicy: { tls: { mode: string }; outlierDetection: unknown } } };
    expect(dr.spec.host).to.equal('storage.flatline.svc.cluster.local');
    expect(dr.spec.trafficPolicy.tls.mode).to.equal('DISABLE');
    expect(dr.spec.trafficPolicy.outlierDetection).to.deep.equal({ consecutive5xxErrors: 5, interval: '5s', baseEjectionTime: '30s', maxEjectionPercent: 50 });
    const vs = objects.get('virtualservice-query.yaml') as unknown as { spec: { hosts: string[]; http: Array<{ name: string }> } };
    expect(vs.spec.hosts).to.deep.equal(['query.flatline.svc.cluster.local']);
    expect(vs.spec.http.map((h) => h.name)).to.deep.equal(['baseline']);
  });

  it('rewrites only the files whose content changed (nothing to push when nothing moved)', () => {
    const dir = tempDir('istio-plane');
    try {
      const config = join(dir.path, 'config');
      const first = syncPlane(config, { storage: [E('storage-0', 'node-a', 1)], query: [E('query-0', 'node-a', 2)] });
      expect(first).to.have.length(6);
      expect(syncPlane(config, { storage: [E('storage-0', 'node-a', 1)], query: [E('query-0', 'node-a', 2)] })).to.deep.equal([]);
      expect(syncPlane(config, { storage: [], query: [E('query-0', 'node-a', 2)] })).to.deep.equal(['serviceentry-storage.yaml']);
      // A fault's VirtualService in place of the baseline is left alone.
      writeFileSync(join(config, 'virtualservice-storage.yaml'), 'a fault route\n');
      expect(syncPlane(config, { storage: [E('storage-0', 'node-a', 1)], query: [E('query-0', 'node-a', 2)] })).to.deep.equal(['serviceentry-storage.yaml']);
      expect(readFileSync(join(config, 'virtualservice-storage.yaml'), 'utf8')).to.equal('a fault route\n');
      expect(readdirSync(config).filter((f) => !f.endsWith('.yaml')), 'no temporary file left').to.deep.equal([]);
    } finally {
      dir.cleanup();
    }
  });
});

describe('a stack with --mesh istio: proxyless clients reach the replicas through istiod', function () {
  this.timeout(180000);
  let dir: ReturnType<typeof tempDir> | undefined;
  let stack: LocalStack | undefined;
  let client: QueryServiceClient | undefined;

  const call = (): Promise<{ code: grpc.status; details: string }> =>
    new Promise((resolve) => {
      client!.getFreshness(GetFreshnessRequest.fromPartial({}), new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err) =>
        resolve(err === null ? { code: grpc.status.OK, details: '' } : { code: err.code, details: err.details }),
      );
    });
  const endpointsOf = (service: string): string[] => {
    const se = JSON.parse(readFileSync(join(stack!.istioConfigDir, `serviceentry-${service}.yaml`), 'utf8')) as { spec: { endpoints: Array<{ labels: { replica: string } }> } };
    return se.spec.endpoints.map((e) => e.labels.replica);
  };

  /** The clients a `fault on|off` line says ACKed the routes istiod pushed for host (every client istiod pushed to is listed). */
  const ackedBy = (out: string, host: string): string[] => {
    const m = new RegExp(`istiod pushed the routes of ${host}: ACKed by ([^\\n]*) in \\d+ ms`).exec(out);
    return m === null ? [] : m[1]!.split(', ');
  };

  /** The flatline command on this stack, as a user types it: its exit code and what it printed. */
  const flatline = (...args: string[]): Promise<{ code: number; out: string }> =>
    new Promise((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'cli', 'src', 'main.ts'), ...args, '--state-dir', dir!.path], { cwd: REPO_ROOT, timeout: 60000 }, (err, stdout, stderr) =>
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, out: `${stdout}${stderr}` }),
      );
    });

  before(async function () {
    if (!existsSync(PILOT_DISCOVERY)) {
      console.log(`    istiod is not built (${PILOT_DISCOVERY} is missing): bash tools/install.sh istiod, then run this again`);
      this.skip();
    }
    registerXds();
    dir = tempDir('istio-stack');
    stack = await LocalStack.start({ stateDir: dir.path, host: '127.0.0.1', ports: FREE_PORTS, flats: 4, intervalMs: 1000, replicas: 2, nodes: 2, logLevel: 'info', mesh: 'istio' });
    const bootstrap = readFileSync(stack.xdsBootstrapFile, 'utf8');
    client = new QueryServiceClient(planeTarget('query'), grpc.credentials.createInsecure(), { 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': bootstrap });
  });

  after(async () => {
    client?.close();
    await stack?.stop();
    dir?.cleanup();
  });

  it('stack.json names istiod; its folder lists every replica of storage and query; a client dialling xds:///query… gets answers', async () => {
    const file = JSON.parse(readFileSync(join(dir!.path, 'stack.json'), 'utf8')) as { istiod?: { xds: string; bootstrap: string } };
    expect(file.istiod?.xds).to.equal(stack!.istiod!.xdsAddress);
    expect(statSync(file.istiod!.bootstrap).isFile()).to.equal(true);
    expect(endpointsOf('storage')).to.deep.equal(['storage-0', 'storage-1']);
    expect(endpointsOf('query')).to.deep.equal(['query-0', 'query-1']);
    await eventually('a call through xDS answers OK', async () => (await call()).code === grpc.status.OK, 30000, 200);
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => call()));
    expect(outcomes.map((o) => o.code)).to.deep.equal(Array(20).fill(grpc.status.OK));
  });

  it('ingestion dials storage through istiod: both replicas are xDS clients in sync, and every flat is fresh', async () => {
    await eventually('ingestion-0 and ingestion-1 ACKed their routes', async () => {
      const clients = await stack!.istiod!.syncz();
      return ['ingestion-0.flatline', 'ingestion-1.flatline'].every((name) => xdsInSync(clients.find((c) => c.proxy === name), ROUTE_CONFIGURATION));
    }, 30000, 200);
    await eventually('every flat fresher than 20 s', async () => (await callSupervisor(stack!.supervisorUrl!, '/freshness', { max_age: '20' }, 10000)).status === 200, 60000, 500);
  });

  it('flatline fault on storage-unavailable applies the VirtualService through istiod (ACKed by both ingestion replicas): Appends fail, touched proves it from what the clients saw, off restores; zero gaps', async () => {
    const errors = async (): Promise<number> => {
      let n = 0;
      for (const r of stack!.ingestion) if (r !== undefined) n += await metricValue(r.metrics, 'flatline_ingestion_forward_errors_total', 'code="UNAVAILABLE"').catch(() => 0);
      return n;
    };
    // Negative control first: at 0 % the route is pushed and ACKed, but no Append is aborted, and touched says so (exit 1).
    const zero = await flatline('fault', 'on', 'storage-unavailable', '--percent', '0');
    expect(zero.code, zero.out).to.equal(0);
    await holdFor(3000, 'Appends go on at 0 %');
    const none = await flatline('fault', 'touched', 'storage-unavailable');
    expect(none.code, none.out).to.equal(1);
    expect(none.out).to.match(/storage-unavailable \(istiod\): 0 Append\(s\) aborted/);
    const before = await errors();
    const since = new Date().toISOString();
    const on = await flatline('fault', 'on', 'storage-unavailable', '--percent', '100');
    expect(on.code, on.out).to.equal(0);
    expect(ackedBy(on.out, 'storage'), on.out).to.include.members(['ingestion-0.flatline', 'ingestion-1.flatline']);
    // The plane holds it: the VirtualService in istiod's folder, and no storage fault in the local fault file.
    const vs = JSON.parse(readFileSync(join(stack!.istioConfigDir, 'virtualservice-storage.yaml'), 'utf8')) as Record<string, unknown>;
    expect(planOf(vs).map((f) => f.name)).to.deep.equal(['storage-unavailable']);
    expect(readFaultFile(stack!.faultsFile)).to.deep.equal([]);
    try {
      await eventually('Appends fail with UNAVAILABLE', async () => (await errors()) > before + 5, 30000, 200);
      const touched = await flatline('fault', 'touched', 'storage-unavailable');
      expect(touched.code, touched.out).to.equal(0);
      expect(touched.out).to.match(/storage-unavailable \(istiod\): [1-9]\d* Append\(s\) aborted by the xDS fault filter in the last minute/);
      const status = await flatline('fault', 'status');
      expect(status.out).to.match(/storage-unavailable\s+storage\s+-\s+[1-9]\d*\s+.*\(Istio plane: applied by istiod\)/);
      // The outbox gauge /drained reads is refreshed at most once a second, at the top of the forwarder's loop: it may still say 0 for that long.
      let held: { status: number; body: unknown } | undefined;
      await eventually('the outboxes say they hold the readings', async () => {
        held = await callSupervisor(stack!.supervisorUrl!, '/drained', { timeout: '0s' }, 10000);
        return held.status === 409;
      }, 5000, 200).catch((err: Error) => expect.fail(`${err.message}: ${JSON.stringify(held?.body)}`));
    } finally {
      const off = await flatline('fault', 'off', 'storage-unavailable');
      expect(off.code, off.out).to.equal(0);
      expect(ackedBy(off.out, 'storage'), off.out).to.include.members(['ingestion-0.flatline', 'ingestion-1.flatline']);
      expect(off.out).to.match(/\nstorage-unavailable off/);
    }
    expect(planOf(JSON.parse(readFileSync(join(stack!.istioConfigDir, 'virtualservice-storage.yaml'), 'utf8')) as Record<string, unknown>)).to.deep.equal([]);
    const drained = await callSupervisor(stack!.supervisorUrl!, '/drained', { timeout: '60s' }, 70000);
    expect(drained.status, JSON.stringify(drained.body)).to.equal(200);
    const gaps = await callSupervisor(stack!.supervisorUrl!, '/gaps', { since }, 60000);
    expect(gaps.status, JSON.stringify(gaps.body)).to.equal(200);
  });

  it('a route the clients NACK (an abort without percentage, validation bypassed) is not applied: applyPlaneRoute fails naming the NACK and puts the previous routes back', async () => {
    const file = join(stack!.istioConfigDir, 'virtualservice-storage.yaml');
    const previous = readFileSync(file, 'utf8');
    const trap = faultVirtualService('storage', [scenario('storage-unavailable')!.build({ percent: 100 })], DEFAULT_MESH).toJSON() as unknown as { spec: { http: Array<{ fault?: { abort?: Record<string, unknown> } }> } };
    for (const route of trap.spec.http) if (route.fault?.abort !== undefined) delete route.fault.abort['percentage'];
    const stackFile = JSON.parse(readFileSync(join(dir!.path, 'stack.json'), 'utf8')) as { istiod: { config: string; debug: string } };
    const err = await applyPlaneRoute(stackFile.istiod, 'storage', trap as unknown as IstioObject, ['ingestion-0.flatline', 'ingestion-1.flatline']).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(PlaneRouteError);
    expect((err as Error).message).to.match(/ingestion-\d\.flatline rejected \(NACKed\) the routes istiod pushed: .*envoy\.filters\.http\.fault.*; the previous routes of storage are back/s);
    expect(readFileSync(file, 'utf8')).to.equal(previous);
    // The clients take the previous routes again, and Appends go through.
    await eventually('both ingestion replicas in sync again', async () => {
      const clients = await stack!.istiod!.syncz();
      return ['ingestion-0.flatline', 'ingestion-1.flatline'].every((name) => xdsInSync(clients.find((c) => c.proxy === name), ROUTE_CONFIGURATION));
    }, 15000, 200);
    const drained = await callSupervisor(stack!.supervisorUrl!, '/drained', { timeout: '30s' }, 40000);
    expect(drained.status, JSON.stringify(drained.body)).to.equal(200);
  });

  it('a drained node\'s replicas leave the endpoints, calls keep working on the other, and they come back on restore', async () => {
    await stack!.nodeAction('node-a', 'drain');
    try {
      await eventually('node-a\'s replicas gone from the ServiceEntries', async () => endpointsOf('query').join() === 'query-1' && endpointsOf('storage').join() === 'storage-1', 20000, 200);
      const during = await Promise.all(Array.from({ length: 20 }, () => call()));
      expect(during.map((o) => `${grpc.status[o.code]} ${o.details}`.trim())).to.deep.equal(Array(20).fill('OK'));
    } finally {
      await stack!.nodeAction('node-a', 'restore');
    }
    await eventually('node-a\'s replicas back in the ServiceEntries', async () => endpointsOf('query').length === 2 && endpointsOf('storage').length === 2, 60000, 200);
    expect((await call()).code).to.equal(grpc.status.OK);
  });

  it('a replica that is not SERVING leaves the endpoints and HAProxy\'s rotation (readiness), though its process runs and its node is ready, and comes back once SERVING; nothing is lost meanwhile', async () => {
    const toxiproxy = stack!.toxiproxy!.client;
    // Storage's link to the database cut: both storage replicas run, and answer NOT_SERVING.
    const since = new Date().toISOString();
    await toxiproxy.setProxyEnabled('storage-db', false);
    try {
      await eventually('storage-0 and storage-1 gone from the ServiceEntry', async () => endpointsOf('storage').length === 0, 30000, 200);
      expect(endpointsOf('query'), 'query is SERVING: it stays').to.deep.equal(['query-0', 'query-1']);
      // HAProxy (the stable address grpcurl users dial) took them out of its rotation too: no replica answers there.
      await eventually('HAProxy to have no storage replica in rotation', async () => /UNAVAILABLE: Received HTTP status code 503/.test(await checkHealth(stack!.storageAddress)), 10000, 200);
      expect(await checkHealth(stack!.queryAddress)).to.equal('SERVING');
      expect(stack!.supervised().filter((p) => p.state !== 'running'), 'every process still runs').to.deep.equal([]);
    } finally {
      await toxiproxy.setProxyEnabled('storage-db', true);
    }
    await eventually('storage-0 and storage-1 back in the ServiceEntry', async () => endpointsOf('storage').join() === 'storage-0,storage-1', 60000, 200);
    await eventually('storage SERVING through HAProxy again', async () => (await checkHealth(stack!.storageAddress)) === 'SERVING', 10000, 200);
    const drained = await callSupervisor(stack!.supervisorUrl!, '/drained', { timeout: '60s' }, 70000);
    expect(drained.status, JSON.stringify(drained.body)).to.equal(200);
    const gaps = await callSupervisor(stack!.supervisorUrl!, '/gaps', { since }, 60000);
    expect(gaps.status, JSON.stringify(gaps.body)).to.equal(200);
  });

  it('query-slow goes through istiod too: the supervisor\'s query calls take the delay (nothing in the fault file), touched proves it from what its client saw, off restores', async () => {
    // Negative control first: at 0 % the route is pushed, no call is delayed, and touched says so (exit 1).
    const zero = await flatline('fault', 'on', 'query-slow', '--delay', '1500ms', '--percent', '0');
    expect(zero.code, zero.out).to.equal(0);
    expect((await flatline('freshness')).code).to.equal(0);
    const none = await flatline('fault', 'touched', 'query-slow');
    expect(none.code, none.out).to.equal(1);
    const on = await flatline('fault', 'on', 'query-slow', '--delay', '1500ms');
    expect(on.code, on.out).to.equal(0);
    expect(ackedBy(on.out, 'query'), on.out).to.include('flatline-supervisor.flatline');
    expect(readFaultFile(stack!.faultsFile)).to.deep.equal([]);
    try {
      const started = Date.now();
      const fresh = await flatline('freshness');
      expect(fresh.code, fresh.out).to.equal(0);
      expect(Date.now() - started, 'flatline freshness took the delay').to.be.at.least(1500);
      const touched = await flatline('fault', 'touched', 'query-slow');
      expect(touched.code, touched.out).to.equal(0);
      expect(touched.out).to.match(/query-slow \(istiod\): the slowest of the query call\(s\) of the supervisor's client of the last minute took 1\.[5-9]\d\d s \(the fault's delay: 1\.500 s\)/);
    } finally {
      const off = await flatline('fault', 'off', 'query-slow');
      expect(off.code, off.out).to.equal(0);
    }
    expect((await flatline('fault', 'touched', 'query-slow')).out).to.match(/query-slow is not on/);
  });

  it("device faults come from istiod's translation: fault on devices-failing is a VirtualService ACKed by both replicas' sidecar clients, ingestion's HTTP interceptor applies istiod's routes (nothing in the fault file), touched counts it, off restores", async () => {
    const devicesFaults = (): string[] => planOf(JSON.parse(readFileSync(join(stack!.istioConfigDir, 'virtualservice-devices.yaml'), 'utf8')) as Record<string, unknown>).map((f) => f.name);
    expect(devicesFaults(), 'the baseline first').to.deep.equal([]);
    // Negative control first: at 0 % the route is pushed and ACKed, and no request is touched.
    const zero = await flatline('fault', 'on', 'devices-failing', '--flats', '1', '--percent', '0');
    expect(zero.code, zero.out).to.equal(0);
    expect(ackedBy(zero.out, 'devices'), zero.out).to.include.members(['ingestion-0-sidecar.flatline', 'ingestion-1-sidecar.flatline']);
    await new Promise((r) => setTimeout(r, 3000));
    const none = await flatline('fault', 'touched', 'devices-failing');
    expect(none.code, none.out).to.equal(1);
    const on = await flatline('fault', 'on', 'devices-failing', '--flats', '1', '--status', '502');
    expect(on.code, on.out).to.equal(0);
    expect(devicesFaults()).to.deep.equal(['devices-failing']);
    expect(readFaultFile(stack!.faultsFile), 'nothing in the fault file').to.deep.equal([]);
    let touched = '';
    await eventually('fault touched devices-failing to count requests', async () => {
      const t = await flatline('fault', 'touched', 'devices-failing');
      touched = t.out;
      return t.code === 0;
    }, 20000, 1000);
    expect(touched).to.match(/devices-failing: [1-9]\d* request\(s\) touched/);
    const status = await flatline('fault', 'status', '--json');
    const row = (JSON.parse(status.out) as Array<{ name: string; plane?: string; abortedLastMinute?: number }>).find((r) => r.name === 'devices-failing');
    expect(row?.plane).to.equal('istiod');
    expect(row?.abortedLastMinute).to.be.above(0);
    const off = await flatline('fault', 'off', 'devices-failing');
    expect(off.code, off.out).to.equal(0);
    expect(devicesFaults()).to.deep.equal([]);
    await eventually('flat 1 fresh again', async () => (await callSupervisor(stack!.supervisorUrl!, '/freshness', { max_age: '20' }, 10000)).status === 200, 40000, 1000);
  });

  it('istiod hung (SIGSTOP): fault on storage-unavailable fails loudly (exit 2, nothing written) and Appends keep going on the routes the clients have', async () => {
    const file = join(stack!.istioConfigDir, 'virtualservice-storage.yaml');
    const previous = readFileSync(file, 'utf8');
    // A client that starts while istiod hangs has no routes and waits in name resolution (its Appends stay in the outbox):
    // both ingestion replicas must hold theirs first (the previous test restarted ingestion-0).
    let clients: SyncStatus[] = [];
    await eventually('ingestion-0 and ingestion-1 hold routes they ACKed', async () => {
      clients = await stack!.istiod!.syncz();
      return ['ingestion-0.flatline', 'ingestion-1.flatline'].every((name) => clients.find((c) => c.proxy === name)?.resources?.[ROUTE_CONFIGURATION]?.acked !== undefined);
    }, 60000, 200).catch((err: Error) => expect.fail(`${err.message}; syncz: ${JSON.stringify(clients.map((c) => ({ proxy: c.proxy, routes: c.resources?.[ROUTE_CONFIGURATION] })))}`));
    const pid = stack!.istiod!.process.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      const on = await flatline('fault', 'on', 'storage-unavailable');
      expect(on.code, on.out).to.equal(2);
      expect(on.out).to.match(/istiod does not answer at http:\/\/\S+\/debug .*nothing was applied/);
      expect(readFileSync(file, 'utf8')).to.equal(previous);
      const since = new Date().toISOString();
      await eventually('every flat fetched and stored while istiod hangs', async () => (await callSupervisor(stack!.supervisorUrl!, '/freshness', { max_age: '3' }, 10000)).status === 200, 20000, 500);
      const drained = await callSupervisor(stack!.supervisorUrl!, '/drained', { timeout: '30s' }, 40000);
      expect(drained.status, JSON.stringify(drained.body)).to.equal(200);
      expect((await callSupervisor(stack!.supervisorUrl!, '/gaps', { since }, 60000)).status).to.equal(200);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });
});
