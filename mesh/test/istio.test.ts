import { expect } from 'chai';
import { HOSTS, type Fault } from '../src/fault.ts';
import { Injector, seededRandom } from '../src/injector.ts';
import { baselineVirtualService, DEFAULT_MESH, devicesDestinationRule, faultVirtualService, planOf } from '../src/istio.ts';
import { SCENARIOS } from '../src/scenarios.ts';

/** Every scenario with a few option sets: the catalogue the two planes must agree on. */
const CASES: Array<[string, Fault]> = SCENARIOS.flatMap((s) => [
  [`${s.name} (defaults)`, s.build({})],
  [`${s.name} (flats 7 and 12, 35 %, 300 ms, status)`, s.build({ flats: ['7', '12'], percent: 35, delayMs: 300, status: s.name.startsWith('devices') ? 500 : 'RESOURCE_EXHAUSTED' })],
]);

const SAMPLE_PATHS = [
  '/flat/7/measurements/',
  '/flat/12/measurements/',
  '/flat/17/measurements/',
  '/flat/70/measurements/',
  '/flatline.storage.v1.StorageService/Append',
  '/flatline.query.v1.QueryService/GetFreshness',
  '/other',
];

describe('one declaration, two planes', () => {
  for (const [what, fault] of CASES) {
    it(`${what}: the rendered VirtualService means what the local plane does`, () => {
      const vs = faultVirtualService(fault.host, [fault], DEFAULT_MESH);
      vs.validate();
      // Same name as the baseline it replaces.
      expect(vs.metadata?.name).to.equal(baselineVirtualService(fault.host, DEFAULT_MESH).metadata?.name);
      const json = JSON.parse(JSON.stringify(vs.toJSON())) as { spec: { http: Array<Record<string, unknown>> } };
      const faulted = json.spec.http.filter((r) => r['fault'] !== undefined);
      expect(faulted).to.have.length(1);
      for (const r of faulted) {
        expect(r, 'no timeout on a faulted route').to.not.have.property('timeout');
        expect(r, 'no retries on a faulted route').to.not.have.property('retries');
        const f = r['fault'] as { delay?: { percentage?: { value?: number } }; abort?: { percentage?: { value?: number } } };
        for (const part of [f.delay, f.abort]) if (part !== undefined) expect(part.percentage?.value, 'explicit percentage').to.be.a('number');
      }
      // Read back, the rendered object is the declaration itself …
      const [back] = planOf(json);
      expect(back).to.deep.equal(fault);
      // … and decides every sample request as the local plane does.
      const local = new Injector(fault.host, () => [fault], undefined, seededRandom(7));
      const rendered = new Injector(fault.host, () => planOf(json), undefined, seededRandom(7));
      for (let i = 0; i < 50; i++) {
        for (const path of SAMPLE_PATHS) expect(rendered.decide({ path, headers: {} }), `${path} #${i}`).to.deep.equal(local.decide({ path, headers: {} }));
      }
    });
  }

  it('a fault with no match is the last, catch-all route: no unreachable baseline behind it (IST0130)', () => {
    const everyFlat = SCENARIOS.find((s) => s.name === 'devices-slow')!.build({});
    const someFlats = SCENARIOS.find((s) => s.name === 'devices-failing')!.build({ flats: ['7'] });
    const routes = (faults: Fault[]) => (JSON.parse(JSON.stringify(faultVirtualService('devices', faults, DEFAULT_MESH).toJSON())) as { spec: { http: Array<{ name: string; match?: unknown }> } }).spec.http;
    expect(routes([everyFlat]).map((r) => r.name)).to.deep.equal(['fault-devices-slow']);
    expect(routes([someFlats]).map((r) => r.name)).to.deep.equal(['fault-devices-failing', 'baseline']);
    // Stacked faults keep their order (the first that matches applies, in both planes); each stays declared.
    const both = routes([someFlats, everyFlat]);
    expect(both.map((r) => r.name)).to.deep.equal(['fault-devices-failing', 'fault-devices-slow']);
    expect(both.at(-1)).to.not.have.property('match');
    expect(planOf(faultVirtualService('devices', [someFlats, everyFlat], DEFAULT_MESH)).map((f) => f.name)).to.deep.equal(['devices-failing', 'devices-slow']);
  });

  it('baseline routes turn Istio\'s retries off (the services retry themselves) and route devices to the device API port', () => {
    for (const host of HOSTS) {
      const vs = baselineVirtualService(host, DEFAULT_MESH);
      vs.validate();
      const [route, ...rest] = vs.spec?.http ?? [];
      expect(rest).to.deep.equal([]);
      expect(route?.retries, host).to.deep.equal({ attempts: 0 });
      expect(route?.timeout, host).to.equal(undefined);
      expect(route?.fault, host).to.equal(undefined);
    }
    expect(baselineVirtualService('devices', DEFAULT_MESH).spec?.http?.[0]?.route?.[0]?.destination).to.deep.equal({ host: DEFAULT_MESH.devicesHost, port: { number: DEFAULT_MESH.devicesPort } });
  });

  it('device traffic: one DestinationRule originating TLS (SIMPLE) on the device API port, verified with the device CA', () => {
    const dr = devicesDestinationRule(DEFAULT_MESH);
    dr.validate();
    expect(dr.metadata?.name).to.equal('devices');
    expect(dr.spec?.host).to.equal(DEFAULT_MESH.devicesHost);
    expect(dr.spec?.trafficPolicy?.tls, 'other ports keep automatic mTLS').to.equal(undefined);
    const [port, ...rest] = dr.spec?.trafficPolicy?.portLevelSettings ?? [];
    expect(rest).to.deep.equal([]);
    expect(port?.port?.number).to.equal(DEFAULT_MESH.devicesPort);
    expect(port?.tls).to.deep.equal({ mode: 'SIMPLE', caCertificates: DEFAULT_MESH.devicesCaFile, sni: DEFAULT_MESH.devicesHost, subjectAltNames: [DEFAULT_MESH.devicesHost] });
  });
});
