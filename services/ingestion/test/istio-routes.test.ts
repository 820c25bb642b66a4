/**
 * Device faults from Istio's own translation (IstioDeviceRoutes), against a
 * real istiod: for every device scenario of mesh/, the decisions of the HTTP
 * interceptor's Injector fed with the routes istiod generated are the same,
 * request by request and draw by draw, as those of the Injector fed with the
 * declaration itself; a route configuration it cannot apply is NACKed (istiod
 * shows it) and the previous routes stay; istiod gone keeps them too.
 */
import { expect } from 'chai';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_MESH, devicesRouteName, faultVirtualService, Injector, SCENARIOS, seededRandom, type Fault, type Decision } from '@flatline/mesh';
import { eventually, PILOT_DISCOVERY, startIstiod, tempDir, writeIstioObject, xdsBootstrap, type IstioObject, type RunningIstiod } from '@flatline/stack';
import { IstioDeviceRoutes } from '../src/devices/istio-routes.ts';

const RDS = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';

describe("device faults from istiod's translation (IstioDeviceRoutes, a real istiod)", function () {
  this.timeout(120000);
  const dir = tempDir('istio-routes');
  const config = join(dir.path, 'config');
  let istiod: RunningIstiod | undefined;
  let routes: IstioDeviceRoutes | undefined;
  const versions: string[] = [];
  const rejected: string[] = [];

  const devicesEntry: IstioObject = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'devices', namespace: DEFAULT_MESH.namespace },
    spec: { hosts: [DEFAULT_MESH.devicesHost], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: DEFAULT_MESH.devicesPort, name: 'http-devices', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1', ports: { 'http-devices': 9443 } }] },
  } as unknown as IstioObject;

  /** Writes the devices VirtualService and waits until the client took a new version of the routes. */
  async function apply(vs: IstioObject): Promise<void> {
    const before = versions.length + rejected.length;
    writeIstioObject(config, 'virtualservice-devices.yaml', vs);
    await eventually('a new route configuration from istiod', async () => versions.length + rejected.length > before, 15000, 20);
  }

  before(async function () {
    if (!existsSync(PILOT_DISCOVERY)) this.skip();
    mkdirSync(config, { recursive: true });
    writeIstioObject(config, 'serviceentry-devices.yaml', devicesEntry);
    istiod = await startIstiod({ configDir: config, host: '127.0.0.1', grpcPort: 0, httpPort: 0, logFile: join(dir.path, 'istiod.log'), env: { PILOT_DEBOUNCE_AFTER: '10ms' } });
    const bootstrap = xdsBootstrap({ xdsAddress: istiod.xdsAddress, namespace: DEFAULT_MESH.namespace, workload: 'ingestion-0-sidecar' });
    routes = new IstioDeviceRoutes(bootstrap as never, devicesRouteName(), DEFAULT_MESH.devicesHost, {
      onRoutes: (_r, version) => versions.push(version),
      onRejected: (err) => rejected.push(err.message),
    }).start();
    await eventually('the first routes', async () => routes!.hasRoutes, 15000, 50);
  });

  after(async () => {
    routes?.close();
    await istiod?.stop();
    dir.cleanup();
  });

  // Each device scenario, for every flat, for a few flats (a prefix that is also the start of another flat's id), and sampled.
  const variants: Array<[string, Record<string, unknown>]> = [
    ['every flat', {}],
    ['flats 3 and 12', { flats: ['3', '12'] }],
    ['flat 1 at 50 %', { flats: ['1'], percent: 50 }],
    ['flats 2 and 7 at 10 %, another delay or status', { flats: ['2', '7'], percent: 10, delayMs: 1250, status: 502 }],
  ];
  const paths = [...Array.from({ length: 14 }, (_, i) => `/flat/${i}/measurements/`), '/flat/31/measurements/', '/flat/120/measurements/', '/other'];
  for (const s of SCENARIOS.filter((x) => x.build({}).host === 'devices')) {
    for (const [title, options] of variants) {
      it(`${s.name}, ${title}: istiod's routes give the interceptor the decisions the declaration gives, request by request`, async () => {
        const declared = s.build(options);
        await apply(faultVirtualService('devices', [declared], DEFAULT_MESH).toJSON() as unknown as IstioObject);
        expect(rejected, 'nothing NACKed').to.deep.equal([]);
        const decide = (faults: () => readonly Fault[]): Array<Decision | undefined> => {
          const injector = new Injector('devices', faults, undefined, seededRandom(42));
          return Array.from({ length: 20 }, () => paths.map((path) => injector.decide({ path, headers: {} }))).flat();
        };
        const fromIstio = decide(() => routes!.active());
        expect(fromIstio).to.deep.equal(decide(() => [declared]));
        // It can fail: the decisions name the fault, and some requests get it (some do not, unless it is for every flat at 100 %).
        const hit = fromIstio.filter((d) => d !== undefined).length;
        expect(hit, 'requests the fault touched').to.be.above(0);
      });
    }
  }

  it('the check can fail: a VirtualService that istiod translates differently from the declaration (another status) gives other decisions', async () => {
    const declared = SCENARIOS.find((x) => x.name === 'devices-failing')!.build({ flats: ['3'] });
    await apply(faultVirtualService('devices', [{ ...declared, fault: { abort: { httpStatus: 500, percentage: { value: 100 } } } }], DEFAULT_MESH).toJSON() as unknown as IstioObject);
    const injector = (faults: () => readonly Fault[]) => new Injector('devices', faults, undefined, seededRandom(1));
    expect(injector(() => routes!.active()).decide({ path: '/flat/3/measurements/', headers: {} })).to.not.deep.equal(injector(() => [declared]).decide({ path: '/flat/3/measurements/', headers: {} }));
  });

  it('a route it cannot apply (a query-parameter match) is NACKed, istiod shows the NACK, and the previous routes stay in force', async () => {
    const good = SCENARIOS.find((x) => x.name === 'devices-slow')!.build({ flats: ['5'], delayMs: 700 });
    await apply(faultVirtualService('devices', [good], DEFAULT_MESH).toJSON() as unknown as IstioObject);
    const vs = faultVirtualService('devices', [good], DEFAULT_MESH).toJSON() as unknown as { spec: { http: Array<{ match?: Array<Record<string, unknown>> }> } };
    vs.spec.http[0]!.match = [{ uri: { prefix: '/flat/5/' }, queryParams: { debug: { exact: '1' } } }];
    await apply(vs as unknown as IstioObject);
    expect(rejected.at(-1)).to.match(/query_parameters matches are not implemented/);
    let sync = '';
    await eventually(
      'istiod to show the NACK',
      async () => {
        const c = (await istiod!.syncz()).find((x) => x.proxy === 'ingestion-0-sidecar.flatline');
        const r = c?.resources?.[RDS];
        sync = JSON.stringify(c);
        return r?.sent !== undefined && r.sent !== r.acked;
      },
      10000,
      100,
    );
    expect(sync).to.match(/query_parameters/);
    const d = new Injector('devices', () => routes!.active(), undefined).decide({ path: '/flat/5/measurements/', headers: {} });
    expect(d?.delayMs, 'the previous routes stay').to.equal(700);
  });

  it('istiod gone: the routes in force stay (and it redials)', async () => {
    const before = routes!.active();
    expect(before.length).to.be.above(0);
    await istiod!.stop();
    await new Promise((r) => setTimeout(r, 1500));
    expect(routes!.active()).to.deep.equal(before);
  });
});
