import { expect } from 'chai';
import { declareFault, InvalidFaultError } from '../src/fault.ts';
import { SCENARIOS, scenario } from '../src/scenarios.ts';

const base = { name: 'f', host: 'devices', match: [], fault: { delay: { fixedDelay: '1s', percentage: { value: 100 } } } };

describe('fault declarations', () => {
  it('every scenario builds a valid declaration with an explicit percentage', () => {
    for (const s of SCENARIOS) {
      const f = s.build({ flats: ['7'] });
      const p = f.fault.delay?.percentage.value ?? f.fault.abort?.percentage.value;
      expect(p, s.name).to.equal(100);
    }
    expect(scenario('devices-slow')!.build({ flats: ['7', '8'], delayMs: 30000 }).match).to.deep.equal([{ uri: { prefix: '/flat/7/' } }, { uri: { prefix: '/flat/8/' } }]);
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['a missing percentage', { ...base, fault: { delay: { fixedDelay: '1s' } } }, /^fault\.delay\.percentage: is required/],
    ['a percentage over 100', { ...base, fault: { delay: { fixedDelay: '1s', percentage: { value: 101 } } } }, /^fault\.delay\.percentage\.value: must be from 0 to 100/],
    ['a negative delay', { ...base, fault: { delay: { fixedDelay: '-1s', percentage: { value: 5 } } } }, /^fault\.delay\.fixedDelay: must be a duration/],
    ['both statuses', { ...base, fault: { abort: { httpStatus: 503, grpcStatus: 'UNAVAILABLE', percentage: { value: 5 } } } }, /^fault\.abort: must set exactly one of httpStatus and grpcStatus/],
    ['no status', { ...base, fault: { abort: { percentage: { value: 5 } } } }, /^fault\.abort: must set exactly one/],
    ['an unknown gRPC code', { ...base, fault: { abort: { grpcStatus: 'NOPE', percentage: { value: 5 } } } }, /^fault\.abort\.grpcStatus: must be a gRPC status name/],
    ['no action', { ...base, fault: {} }, /^fault: must set delay, abort or both/],
    ['an unknown host', { ...base, host: 'mongodb' }, /^host:/],
    ['a bad name', { ...base, name: 'Not A Label' }, /^name: must be a DNS label/],
    ['a match with two URI kinds', { ...base, match: [{ uri: { exact: '/a', prefix: '/b' } }] }, /^match\.0\.uri: must set exactly one of exact, prefix, regex/],
  ];
  for (const [what, input, message] of bad) {
    it(`refuses ${what}, naming the field`, () => {
      expect(() => declareFault(input)).to.throw(InvalidFaultError, message);
    });
  }
});
