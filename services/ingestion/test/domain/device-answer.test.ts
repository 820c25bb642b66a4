import { expect } from 'chai';
import { MalformedAnswerError, parseDeviceAnswer, readingsIfValid, schemaVerdict } from '../../src/domain/device-answer.ts';

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

describe('device answers: the check in place and the schema give the same verdict', () => {
  const VALUES: unknown[] = [
    undefined, null, true, 0, -0, 1, -1, 1.5, 2 ** 53, 2 ** 53 - 1, 1e308, '', 'x', 'a'.repeat(32), 'a'.repeat(33), 'a'.repeat(64), 'a'.repeat(65),
    'dev.1_-X', 'bad id!', 'héllo', [], {}, [1], [{}], { seq: 1 },
    '2026-11-29T08:59:59Z', '2026-11-29T08:59:59.250+01:00', '2026-11-29T08:59:59.123456789-23:59', '2021-02-30T00:00:00Z', '2024-02-29T00:00:00Z',
    '2023-02-29T00:00:00Z', '2026-11-29T08:59:59', '2026-11-29 08:59:59Z', '2026-11-29T08:59:59z', '2026-11-29T24:00:00Z', '2026-11-29T08:59Z',
    '2026-11-29T08:59:59+24:00', '2026-11-29T08:59:59+0100',
  ];
  /** Where a value is put in the good answer (each path, or the whole of it). */
  const PLACES: Array<(a: Record<string, unknown>, v: unknown) => void> = [
    (a, v) => (a['flat_id'] = v),
    (a, v) => (a['devices'] = v),
    (a, v) => ((a['devices'] as unknown[])[0] = v),
    (a, v) => ((a['devices'] as unknown[]).push(v)),
    ...['device_id', 'quantity', 'unit', 'readings', 'extra'].map((k) => (a: Record<string, unknown>, v: unknown) => ((a['devices'] as Array<Record<string, unknown>>)[0]![k] = v)),
    (a, v) => ((a['devices'] as Array<{ readings: unknown[] }>)[0]!.readings[0] = v),
    (a, v) => ((a['devices'] as Array<{ readings: unknown[] }>)[0]!.readings.push(v)),
    ...['seq', 'taken_at', 'value', 'extra'].map((k) => (a: Record<string, unknown>, v: unknown) => ((a['devices'] as Array<{ readings: Array<Record<string, unknown>> }>)[0]!.readings[0]![k] = v)),
  ];
  const cases: Array<[string, unknown]> = [['the good answer', good], ['null', null], ['an array', [good]], ['a number', 7]];
  PLACES.forEach((place, i) =>
    VALUES.forEach((v) => {
      const a = structuredClone(good) as unknown as Record<string, unknown>;
      place(a, v);
      // Through JSON, as an answer arrives (undefined drops the key).
      cases.push([`place ${i} = ${JSON.stringify(v)?.slice(0, 40)}`, JSON.parse(JSON.stringify(a)) as unknown]);
    }),
  );
  const many = (n: number) => ({ ...good, devices: Array.from({ length: n }, (_, i) => ({ ...good.devices[0]!, device_id: `d${i}` })) });
  const long = (n: number) => ({ ...good, devices: [{ ...good.devices[0]!, readings: Array.from({ length: n }, (_, i) => ({ seq: i + 1, taken_at: '2026-11-29T08:59:59Z', value: i })) }] });
  cases.push(['1,000 devices', many(1000)], ['1,001 devices', many(1001)], ['100,000 readings', long(100_000)], ['100,001 readings', long(100_001)]);

  it(`agrees on ${cases.length} answers, good and broken, and returns the same readings where both take one`, () => {
    let taken = 0;
    for (const [what, json] of cases) {
      const fast = readingsIfValid(json);
      const schema = schemaVerdict(json);
      expect(fast === undefined, `${what}: ${'problem' in schema ? schema.problem : 'valid'}`).to.equal('problem' in schema);
      if (fast !== undefined) {
        taken += 1;
        expect(fast, what).to.deep.equal(schema);
      }
    }
    // Both kinds are in the corpus: answers taken and answers refused.
    expect(taken).to.be.within(20, cases.length - 100);
  });
});
