import { expect } from 'chai';
import { BehaviourTable, DEFAULT_SLOW_DELAY_MS, parseBehaviour, parseBulkBehaviour } from '../../src/domain/behaviours.ts';

describe('behaviours', () => {
  it('reads a mode, with a delay kept only for slow-body (30 s unless given)', () => {
    expect(parseBehaviour({ mode: 'http-503' })).to.deep.equal({ mode: 'http-503' });
    expect(parseBehaviour({ mode: 'http-500', delay_ms: 300 })).to.deep.equal({ mode: 'http-500' });
    expect(parseBehaviour({ mode: 'slow-body' })).to.deep.equal({ mode: 'slow-body', delayMs: DEFAULT_SLOW_DELAY_MS });
    expect(parseBehaviour({ mode: 'slow-body', delay_ms: 300 })).to.deep.equal({ mode: 'slow-body', delayMs: 300 });
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['not an object', [1], /body must be a JSON object/],
    ['no mode', {}, /^mode must be one of ok, http-500/],
    ['an unknown mode', { mode: 'explode' }, /^mode must be one of .*got "explode"/],
    ['an unknown field', { mode: 'ok', delay: 5 }, /^delay: unknown field/],
    ['a negative delay', { mode: 'slow-body', delay_ms: -1 }, /^delay_ms must be an integer from 0/],
    ['a delay as text', { mode: 'slow-body', delay_ms: '300' }, /^delay_ms must be an integer/],
    ['a bad delay with any mode', { mode: 'http-500', delay_ms: 1.5 }, /^delay_ms must be an integer/],
  ];
  for (const [what, body, message] of bad) {
    it(`rejects ${what}, naming the field`, () => expect(() => parseBehaviour(body)).to.throw(message));
  }

  it('reads a bulk request and names the bad flat by its index', () => {
    const known = (id: string) => ['1', '2', '3'].includes(id);
    expect(parseBulkBehaviour({ flats: ['1', '3'], mode: 'wrong-types' }, known)).to.deep.equal({ flats: ['1', '3'], behaviour: { mode: 'wrong-types' } });
    expect(() => parseBulkBehaviour({ flats: ['1', '9'], mode: 'ok' }, known)).to.throw(/^flats\[1\]: unknown flat "9"/);
    expect(() => parseBulkBehaviour({ flats: ['1', 2], mode: 'ok' }, known)).to.throw(/^flats\[1\] must be a string/);
    expect(() => parseBulkBehaviour({ flats: [], mode: 'ok' }, known)).to.throw(/^flats must be an array/);
    expect(() => parseBulkBehaviour({ mode: 'ok' }, known)).to.throw(/^flats must be an array/);
  });

  it('keeps no entry for ok, and shows even a flat called __proto__', () => {
    const table = new BehaviourTable();
    table.set('__proto__', { mode: 'http-500' });
    table.set('2', { mode: 'slow-body', delayMs: 5 });
    table.set('3', { mode: 'ok' });
    expect(table.size).to.equal(2);
    expect(JSON.parse(JSON.stringify(table.toJSON()))).to.deep.equal({ ['__proto__']: { mode: 'http-500' }, 2: { mode: 'slow-body', delay_ms: 5 } });
    table.set('2', { mode: 'ok' });
    expect(table.get('2')).to.equal(undefined);
    expect(table.clear()).to.equal(1);
  });
});
