import { expect } from 'chai';
import { Registry } from 'prom-client';
import { declareFault } from '../src/fault.ts';
import { createFaultCounter, Injector, seededRandom } from '../src/injector.ts';
import { scenario } from '../src/scenarios.ts';

describe('injector decisions', () => {
  it('applies a flat-7 fault to flat 7 only', () => {
    const fault = scenario('devices-slow')!.build({ flats: ['7'], delayMs: 300 });
    const inj = new Injector('devices', () => [fault], undefined);
    expect(inj.decide({ path: '/flat/7/measurements/', headers: {} })?.delayMs).to.equal(300);
    expect(inj.decide({ path: '/flat/77/measurements/', headers: {} })).to.equal(undefined);
    expect(inj.decide({ path: '/flat/17/measurements/', headers: {} })).to.equal(undefined);
    expect(new Injector('storage', () => [fault], undefined).decide({ path: '/flat/7/measurements/', headers: {} })).to.equal(undefined);
  });

  it('aborts 50 % of 1,000 requests within ±5 % (seeded), and counts them', async () => {
    const registry = new Registry();
    const counter = createFaultCounter(registry);
    const fault = declareFault({ name: 'half', host: 'storage', match: [], fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 50 } } } });
    const inj = new Injector('storage', () => [fault], counter, seededRandom(42));
    let aborted = 0;
    for (let i = 0; i < 1000; i++) if (inj.decide({ path: '/x', headers: {} })?.abort !== undefined) aborted += 1;
    expect(aborted).to.be.within(450, 550);
    const metric = await registry.getSingleMetricAsString('flatline_fault_requests_total');
    expect(metric).to.contain(`flatline_fault_requests_total{fault="half",action="aborted"} ${aborted}`);
  });

  it('matches headers and full-string regexes as Istio does', () => {
    const fault = declareFault({ name: 'h', host: 'query', match: [{ uri: { regex: '/flat/[0-9]+/' }, headers: { 'x-canary': { exact: 'yes' } } }], fault: { delay: { fixedDelay: '1ms', percentage: { value: 100 } } } });
    const inj = new Injector('query', () => [fault], undefined);
    expect(inj.decide({ path: '/flat/12/', headers: { 'x-canary': 'yes' } })).to.not.equal(undefined);
    expect(inj.decide({ path: '/flat/12/', headers: {} })).to.equal(undefined);
    expect(inj.decide({ path: '/flat/12/measurements/', headers: { 'x-canary': 'yes' } })).to.equal(undefined);
  });
});
