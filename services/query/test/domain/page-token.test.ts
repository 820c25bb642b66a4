import { expect } from 'chai';
import { InvalidArgumentError } from '@flatline/platform/status.js';
import { decodePageToken, encodePageToken } from '../../src/domain/page-token.ts';

describe('page tokens', () => {
  const query = { flatId: '17', deviceId: '', fromMs: 0, toMs: undefined };
  const cursor = { takenAtMs: 1_700_000_000_000, deviceId: 'heat-1', seq: 42 };

  it('round-trips a cursor for the same query', () => {
    expect(decodePageToken(encodePageToken(cursor, query), query)).to.deep.equal(cursor);
  });

  it('refuses the token for another query, garbage, and a re-encoded body with an old checksum', () => {
    const token = encodePageToken(cursor, query);
    expect(() => decodePageToken(token, { ...query, flatId: '18' })).to.throw(InvalidArgumentError, /another query/);
    expect(() => decodePageToken('garbage', query)).to.throw(InvalidArgumentError, /malformed/);
    const [, mac] = token.split('.');
    const forged = Buffer.from(JSON.stringify([0, 'heat-1', 0, 'x'])).toString('base64url');
    expect(() => decodePageToken(`${forged}.${mac}`, query)).to.throw(InvalidArgumentError, /checksum/);
  });
});
