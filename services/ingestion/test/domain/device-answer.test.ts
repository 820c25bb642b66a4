import { expect } from 'chai';
import { MalformedAnswerError, parseDeviceAnswer } from '../../src/domain/device-answer.ts';

const good = {
  flat_id: '7',
  generated_at: '2026-11-29T09:00:00.000Z',
  devices: [{ device_id: 'heat-1', quantity: 'temperature', unit: 'Cel', readings: [{ seq: 3, taken_at: '2026-11-29T08:59:59.250Z', value: 21.5 }] }],
};

describe('device answers', () => {
  it('turns a valid answer into readings', () => {
    expect(parseDeviceAnswer(JSON.stringify(good), '7')).to.deep.equal([
      { deviceId: 'heat-1', seq: 3, takenAtMs: Date.parse('2026-11-29T08:59:59.250Z'), quantity: 'temperature', unit: 'Cel', value: 21.5 },
    ]);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['not JSON', '{"flat_id": "7", "devi', /not JSON/],
    ['a string seq', JSON.stringify({ ...good, devices: [{ ...good.devices[0], readings: [{ seq: '3', taken_at: '2026-11-29T08:59:59Z', value: 1 }] }] }), /devices\.0\.readings\.0\.seq/],
    ['a string value', JSON.stringify({ ...good, devices: [{ ...good.devices[0], readings: [{ seq: 3, taken_at: '2026-11-29T08:59:59Z', value: '1' }] }] }), /value/],
    ['seq 0', JSON.stringify({ ...good, devices: [{ ...good.devices[0], readings: [{ seq: 0, taken_at: '2026-11-29T08:59:59Z', value: 1 }] }] }), /seq/],
    ['a bad time', JSON.stringify({ ...good, devices: [{ ...good.devices[0], readings: [{ seq: 1, taken_at: 'yesterday', value: 1 }] }] }), /taken_at/],
    ['another flat', JSON.stringify({ ...good, flat_id: '8' }), /flat_id is "8", asked for 7/],
    ['no devices', JSON.stringify({ flat_id: '7' }), /devices/],
  ];
  for (const [what, body, message] of bad) {
    it(`refuses ${what}`, () => {
      expect(() => parseDeviceAnswer(body, '7')).to.throw(MalformedAnswerError, message);
    });
  }
});
