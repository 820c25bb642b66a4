/**
 * istiod from a config folder, and the faults it pushes to a real proxyless
 * gRPC client: the real pilot-discovery (tools/install-istiod.sh) with no
 * Kubernetes, a plain grpc-js server of the query service on a free port, a
 * ServiceEntry that names it, and a @grpc/grpc-js-xds client dialling
 * xds:///<host>:<port>. VirtualServices written into the folder delay and
 * abort its calls; removing them restores; one that the client cannot take is
 * NACKed and the client keeps its last good routes; one file istiod cannot
 * parse freezes the whole folder (why objects are written atomically). Skipped when istiod is not
 * built (it is not a default tool): bash tools/install.sh istiod.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { register as registerXds } from '@grpc/grpc-js-xds';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetFreshnessRequest, GetFreshnessResponse, QueryServiceClient, QueryServiceService, type QueryServiceServer } from '@flatline/proto';
import { eventually, tempDir } from '../src/harness.ts';
import {
  PILOT_DISCOVERY,
  ROUTE_CONFIGURATION,
  removeIstioObject,
  startIstiod,
  writeIstioObject,
  xdsBootstrap,
  xdsInSync,
  type IstioObject,
  type RunningIstiod,
  type SyncStatus,
} from '../src/istiod.ts';

const NAMESPACE = 'flatline';
const HOST = 'query.flatline.test';
/** The ServiceEntry's port: what clients dial (xds:///HOST:PORT); the server's own port is its targetPort. */
const PORT = 7000;
const TARGET = `xds:///${HOST}:${PORT}`;
/** How syncz names the client: "<workload>.<namespace>" of its node id. */
const CLIENT = `client.${NAMESPACE}`;
/** A call slower than this was delayed by the fault (2 s); an undelayed one takes a few ms. */
const DELAYED_MS = 1500;
/** How long a pushed change may take to reach the client (measured: ~250 ms). */
const PUSH_MS = 15000;

/** How one call ended: its status code (OK too), details and duration. */
interface Outcome {
  readonly code: grpc.status;
  readonly details: string;
  readonly ms: number;
}

function call(client: QueryServiceClient, deadlineMs = 10000): Promise<Outcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    client.getFreshness(GetFreshnessRequest.fromPartial({}), new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err) => {
      const ms = performance.now() - started;
      resolve(err === null ? { code: grpc.status.OK, details: '', ms } : { code: err.code, details: err.details, ms });
    });
  });
}

async function calls(client: QueryServiceClient, n: number): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (let i = 0; i < n; i++) out.push(await call(client));
  return out;
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number): string => `${x.toFixed(1)} ms`;
const codes = (os: readonly Outcome[]): string[] => os.map((o) => `${grpc.status[o.code]}${o.details === '' ? '' : ` "${o.details}"`}`);

/** The route to the query service, with whatever fault and policies a test adds: what the catalogue will render. */
function virtualService(name: string, route: Record<string, unknown>): IstioObject {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace: NAMESPACE },
    spec: { hosts: [HOST], http: [{ ...route, route: [{ destination: { host: HOST, port: { number: PORT } } }] }] },
  };
}

describe('istiod from a config folder: VirtualService faults on a proxyless grpc-js-xds client', function () {
  this.timeout(60000);
  let dir: ReturnType<typeof tempDir> | undefined;
  let configDir: string;
  let logFile: string;
  let istiod: RunningIstiod | undefined;
  let server: grpc.Server | undefined;
  let client: QueryServiceClient | undefined;
  let served = 0;
  let bootstrapBefore: string | undefined;

  const q = (): QueryServiceClient => client!;
  const route = async (): Promise<SyncStatus | undefined> => (await istiod!.syncz()).find((s) => s.proxy === CLIENT);
  const fault = (name: string, object: IstioObject): void => void writeIstioObject(configDir, `${name}.yaml`, object);
  const clear = (name: string): void => removeIstioObject(configDir, `${name}.yaml`);
  /** Until a call is fast and OK again, then five more of them. */
  const restored = async (what: string): Promise<void> => {
    await eventually(`${what}: calls are fast and OK again`, async () => {
      const o = await call(q());
      return o.code === grpc.status.OK && o.ms < DELAYED_MS;
    }, PUSH_MS);
    const after = await calls(q(), 5);
    expect(codes(after), what).to.deep.equal(Array(5).fill('OK'));
    expect(Math.max(...after.map((o) => o.ms)), what).to.be.below(DELAYED_MS);
  };

  before(async function () {
    if (!existsSync(PILOT_DISCOVERY)) {
      console.log(`    istiod is not built (${PILOT_DISCOVERY} is missing): bash tools/install.sh istiod (a few minutes), then run this again`);
      this.skip();
    }
    dir = tempDir('istiod');
    configDir = join(dir.path, 'config');
    mkdirSync(configDir);
    const t0 = performance.now();
    logFile = join(dir.path, 'istiod.log');
    istiod = await startIstiod({ configDir, logFile });
    console.log(`    istiod ready in ${ms(performance.now() - t0)}: xDS ${istiod.xdsAddress}, ${istiod.debugUrl}`);

    server = new grpc.Server();
    const impl: Pick<QueryServiceServer, 'getFreshness'> = {
      getFreshness: (_call, callback) => {
        served++;
        callback(null, GetFreshnessResponse.fromPartial({}));
      },
    };
    server.addService(QueryServiceService, impl);
    const serverPort = await new Promise<number>((resolve, reject) =>
      server!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err === null ? resolve(port) : reject(err))),
    );
    writeIstioObject(configDir, 'query-serviceentry.yaml', {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'query', namespace: NAMESPACE },
      spec: {
        hosts: [HOST],
        location: 'MESH_INTERNAL',
        resolution: 'STATIC',
        ports: [{ number: PORT, name: 'grpc', protocol: 'GRPC', targetPort: serverPort }],
        endpoints: [{ address: '127.0.0.1' }],
      },
    });

    // The client's xDS bootstrap goes in GRPC_XDS_BOOTSTRAP_CONFIG, as a
    // service of the stack will get it from its environment (and no file to
    // clean up). grpc-js-xds reads it once per process, at the first xds:
    // channel, and then keeps one xDS client for every channel: fine here, as
    // mocha runs each test file in a worker of its own (.mocharc.json:
    // parallel) and nothing else in this one dials xds:. Only the brand-new
    // client of the NACK test needs an xDS client of its own: grpc-js-xds's
    // test-only channel option gives it one, with no child process to manage.
    bootstrapBefore = process.env['GRPC_XDS_BOOTSTRAP_CONFIG'];
    if (process.env['GRPC_XDS_BOOTSTRAP'] !== undefined) throw new Error('GRPC_XDS_BOOTSTRAP is set: grpc-js-xds would read it instead of the bootstrap of this test; unset it');
    process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = JSON.stringify(xdsBootstrap({ xdsAddress: istiod.xdsAddress, namespace: NAMESPACE, workload: 'client' }));
    registerXds();
    client = new QueryServiceClient(TARGET, grpc.credentials.createInsecure());
    const t1 = performance.now();
    await eventually('the first call through xDS succeeds', async () => (await call(q(), 5000)).code === grpc.status.OK, 30000);
    console.log(`    first call of a new client (xDS resolution included): ${ms(performance.now() - t1)}`);
  });

  after(async () => {
    client?.close();
    server?.forceShutdown();
    await istiod?.stop();
    if (bootstrapBefore === undefined) delete process.env['GRPC_XDS_BOOTSTRAP_CONFIG'];
    else process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = bootstrapBefore;
    dir?.cleanup();
  });

  it('without a fault, calls reach the server through the routes istiod pushed, in a few ms', async () => {
    const before = served;
    const outcomes = await calls(q(), 10);
    expect(codes(outcomes)).to.deep.equal(Array(10).fill('OK'));
    expect(served - before, 'calls the server answered').to.equal(10);
    console.log(`    10 calls, p50 ${ms(median(outcomes.map((o) => o.ms)))}, max ${ms(Math.max(...outcomes.map((o) => o.ms)))}`);
    expect(Math.max(...outcomes.map((o) => o.ms))).to.be.below(DELAYED_MS);
    expect(xdsInSync(await route(), ROUTE_CONFIGURATION), 'the client ACKed its routes').to.equal(true);
  });

  it('a fixedDelay 2s fault at 100 % delays every call by about 2 s; removing it restores', async () => {
    const baseline = median((await calls(q(), 5)).map((o) => o.ms));
    const pushed = performance.now();
    fault('query-delay', virtualService('query', { fault: { delay: { fixedDelay: '2s', percentage: { value: 100 } } } }));
    await eventually('a call is delayed', async () => (await call(q())).ms >= DELAYED_MS, PUSH_MS);
    console.log(`    the delay acted ${ms(performance.now() - pushed)} after the file was renamed into place (including one delayed call)`);
    const delayed = await calls(q(), 3);
    expect(codes(delayed)).to.deep.equal(['OK', 'OK', 'OK']);
    const added = median(delayed.map((o) => o.ms)) - baseline;
    console.log(`    fixedDelay 2s added ${ms(added)} to a call (delayed: ${delayed.map((o) => ms(o.ms)).join(', ')}; undelayed p50 ${ms(baseline)})`);
    for (const o of delayed) expect(o.ms, 'a delayed call').to.be.at.least(DELAYED_MS);

    clear('query-delay');
    await restored('the delay removed');
  });

  for (const [what, abort] of [
    ['grpcStatus UNAVAILABLE', { grpcStatus: 'UNAVAILABLE' }],
    ['httpStatus 503', { httpStatus: 503 }],
  ] as const) {
    it(`an abort with ${what} at 100 % fails every call with UNAVAILABLE before it leaves the client; removing it restores`, async () => {
      fault('query-abort', virtualService('query', { fault: { abort: { ...abort, percentage: { value: 100 } } } }));
      await eventually('a call is aborted', async () => (await call(q())).code === grpc.status.UNAVAILABLE, PUSH_MS);
      const before = served;
      const aborted = await calls(q(), 10);
      expect(codes(aborted)).to.deep.equal(Array(10).fill('UNAVAILABLE "Fault injected"'));
      expect(served - before, 'calls that reached the server').to.equal(0);
      console.log(`    ${what}: 10 of 10 calls UNAVAILABLE "Fault injected", p50 ${ms(median(aborted.map((o) => o.ms)))}`);

      clear('query-abort');
      await restored(`the ${what} abort removed`);
    });
  }

  it('a route the client cannot take is NACKed (visible in /debug/syncz): the running client keeps its last good routes, a new one hangs in name resolution', async () => {
    // Istio's API reference: abort.percentage is optional. istiod takes the
    // file unvalidated and pushes the fault filter config; grpc-js-xds rejects it.
    const traps = [
      ['an abort without percentage', { fault: { abort: { grpcStatus: 'UNAVAILABLE' } } }, 'envoy.filters.http.fault'],
      ['a corsPolicy', { corsPolicy: { allowOrigins: [{ exact: 'https://example.com' }], allowMethods: ['POST'] } }, 'envoy.filters.http.cors'],
    ] as const;
    for (const [what, spec, filter] of traps) {
      const sentBefore = (await route())?.resources?.[ROUTE_CONFIGURATION]?.sent;
      fault('query-trap', virtualService('query', spec));
      let nacked: SyncStatus | undefined;
      await eventually(`${what}: the client NACKs the new routes`, async () => {
        nacked = await route();
        const routes = nacked?.resources?.[ROUTE_CONFIGURATION];
        return routes?.sent !== sentBefore && routes?.sent !== routes?.acked && (routes?.lastError ?? '').includes(filter);
      }, PUSH_MS);
      const routes = nacked!.resources![ROUTE_CONFIGURATION]!;
      console.log(`    ${what}: syncz ${CLIENT} routes sent ${routes.sent}, acked ${routes.acked}, lastError: ${routes.lastError}`);

      const before = served;
      const outcomes = await calls(q(), 10);
      expect(codes(outcomes), `${what}: the running client still routes as before`).to.deep.equal(Array(10).fill('OK'));
      expect(served - before).to.equal(10);

      if (what === 'an abort without percentage') {
        // A new client (its own xDS client, so nothing cached) gets only the NACKed routes: it waits for them until its deadline.
        const fresh = new QueryServiceClient(TARGET, grpc.credentials.createInsecure(), {
          'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': JSON.stringify(xdsBootstrap({ xdsAddress: istiod!.xdsAddress, namespace: NAMESPACE, workload: 'fresh-client' })),
        });
        try {
          const o = await call(fresh, 3000);
          console.log(`    a new client meanwhile: ${grpc.status[o.code]} "${o.details}" after ${ms(o.ms)}`);
          expect(o.code, o.details).to.equal(grpc.status.DEADLINE_EXCEEDED);
          expect(o.details).to.match(/name resolution/);
        } finally {
          fresh.close();
        }
      }

      clear('query-trap');
      await eventually(`${what} removed: the client ACKs its routes again`, async () => xdsInSync(await route(), ROUTE_CONFIGURATION), PUSH_MS);
      const after = (await route())?.resources?.[ROUTE_CONFIGURATION];
      console.log(`    ${what} removed: routes acked ${after?.acked}; lastError ${after?.lastError === undefined ? 'cleared' : 'still shown'}`);
      await restored(`${what} removed`);
    }
  });

  it('a delay without percentage is taken (ACKed) and never fires: it applies to 0 % of calls', async () => {
    const sentBefore = (await route())?.resources?.[ROUTE_CONFIGURATION]?.sent;
    fault('query-delay', virtualService('query', { fault: { delay: { fixedDelay: '2s' } } }));
    await eventually('the client ACKs the new routes', async () => {
      const s = await route();
      return s?.resources?.[ROUTE_CONFIGURATION]?.sent !== sentBefore && xdsInSync(s, ROUTE_CONFIGURATION);
    }, PUSH_MS);
    const outcomes = await calls(q(), 5);
    expect(codes(outcomes)).to.deep.equal(Array(5).fill('OK'));
    expect(Math.max(...outcomes.map((o) => o.ms)), 'no call delayed').to.be.below(DELAYED_MS);
    clear('query-delay');
  });
  it('one file istiod cannot parse freezes the whole folder: a fault written beside it waits until it goes (why writeIstioObject renames into place)', async () => {
    const failedReloads = (): number => readFileSync(logFile, 'utf8').split('unable to reload file configuration').length - 1;
    const before = failedReloads();
    // What a reader could see of a file being written in place: the first lines of it.
    writeFileSync(join(configDir, 'half-written.yaml'), `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: half, namespace: ${NAMESPACE}\n`);
    await eventually('istiod fails to reread the folder', async () => failedReloads() > before, PUSH_MS);
    fault('query-abort', virtualService('query', { fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 100 } } } }));
    const second = failedReloads();
    await eventually('istiod fails to reread the folder again', async () => failedReloads() > second, PUSH_MS);
    // Its push would have taken ~250 ms: give it a second.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const frozen = await calls(q(), 5);
    expect(codes(frozen), 'the abort is not applied while the folder has a file istiod cannot parse').to.deep.equal(Array(5).fill('OK'));

    rmSync(join(configDir, 'half-written.yaml'));
    await eventually('the abort acts once the bad file is gone', async () => (await call(q())).code === grpc.status.UNAVAILABLE, PUSH_MS);
    console.log(`    ${failedReloads() - before} rereads of the folder failed on the half-written file; the abort waited for it to go`);
    clear('query-abort');
    await restored('the abort removed');
  });
});
