import { expect } from 'chai';
import type { Fault } from '../src/fault.ts';
import { Injector, seededRandom } from '../src/injector.ts';
import { baselineVirtualService, DEFAULT_MESH, deviceEgress, faultVirtualService, planOf } from '../src/istio.ts';
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

  it('device traffic gets a ServiceEntry (plain HTTP from the app) and a DestinationRule originating TLS', () => {
    const [se, dr] = deviceEgress(DEFAULT_MESH);
    se.validate();
    dr.validate();
    expect(se.spec?.ports?.[0]?.protocol).to.equal('HTTP');
    expect(dr.spec?.trafficPolicy?.portLevelSettings?.[0]?.tls?.mode).to.equal('SIMPLE');
  });
});
