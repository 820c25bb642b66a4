/**
 * The local Istio plane (`flatline up --mesh istio`): the objects the stack
 * keeps in istiod's folder, and a real stack of two nodes with the real
 * istiod whose proxyless xDS clients reach query's replicas through the
 * ServiceEntry, follow a drained node (its replicas leave the endpoints and
 * calls keep working), and see the endpoints come back on restore. Skipped
 * when istiod is not built (bash tools/install.sh istiod).
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { register as registerXds } from '@grpc/grpc-js-xds';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetFreshnessRequest, QueryServiceClient } from '@flatline/proto';
import { eventually, tempDir } from '../src/harness.ts';
import { planeObjects, planeTarget, serviceEntry, syncPlane, type PlaneEndpoint } from '../src/istio-plane.ts';
import { PILOT_DISCOVERY, ROUTE_CONFIGURATION, writeIstioObject, xdsInSync, type IstioObject } from '../src/istiod.ts';
import { callSupervisor } from '../src/supervisor-http.ts';
import { metricValue } from '../src/probes.ts';
import { baselineVirtualService, DEFAULT_MESH, faultVirtualService, scenario } from '@flatline/mesh';
import { FREE_PORTS, LocalStack } from '../src/stack.ts';

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

  it('a storage-unavailable VirtualService istiod pushes fails ingestion\'s Appends (the outboxes keep them); the baseline back, they drain with zero gaps', async () => {
    const errors = async (): Promise<number> => {
      let n = 0;
      for (const r of stack!.ingestion) if (r !== undefined) n += await metricValue(r.metrics, 'flatline_ingestion_forward_errors_total', 'code="UNAVAILABLE"').catch(() => 0);
      return n;
    };
    const before = await errors();
    const since = new Date().toISOString();
    const fault = faultVirtualService('storage', [scenario('storage-unavailable')!.build({ percent: 100 })], DEFAULT_MESH).toJSON() as unknown as IstioObject;
    writeIstioObject(stack!.istioConfigDir, 'virtualservice-storage.yaml', fault);
    try {
      await eventually('Appends fail with UNAVAILABLE', async () => (await errors()) > before + 5, 30000, 200);
      // The outbox gauge /drained reads is refreshed at most once a second, at the top of the forwarder's loop: it may still say 0 for that long.
      let held: { status: number; body: unknown } | undefined;
      await eventually('the outboxes say they hold the readings', async () => {
        held = await callSupervisor(stack!.supervisorUrl!, '/drained', { timeout: '0s' }, 10000);
        return held.status === 409;
      }, 5000, 200).catch((err: Error) => expect.fail(`${err.message}: ${JSON.stringify(held?.body)}`));
    } finally {
      writeIstioObject(stack!.istioConfigDir, 'virtualservice-storage.yaml', baselineVirtualService('storage', DEFAULT_MESH).toJSON() as unknown as IstioObject);
    }
    const drained = await callSupervisor(stack!.supervisorUrl!, '/drained', { timeout: '60s' }, 70000);
    expect(drained.status, JSON.stringify(drained.body)).to.equal(200);
    const gaps = await callSupervisor(stack!.supervisorUrl!, '/gaps', { since }, 60000);
    expect(gaps.status, JSON.stringify(gaps.body)).to.equal(200);
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
});
