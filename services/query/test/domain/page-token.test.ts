import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { InvalidArgumentError } from '@flatline/platform';
import { DEV_PAGE_TOKEN_KEY } from '../../src/config.ts';
import { pageTokens } from '../../src/domain/page-token.ts';

describe('page tokens', () => {
  const tokens = pageTokens('deployment-key-0123456789');
  const query = { flatId: '17', deviceId: '', fromMs: 0, toMs: undefined };
  const cursor = { takenAtMs: 1_700_000_000_000, deviceId: 'heat-1', seq: 42 };

  it('round-trips a cursor for the same query', () => {
    expect(tokens.decode(tokens.encode(cursor, query), query)).to.deep.equal(cursor);
  });

  it('refuses the token for another query, garbage, and a re-encoded body with an old signature', () => {
    const token = tokens.encode(cursor, query);
    expect(() => tokens.decode(token, { ...query, flatId: '18' })).to.throw(InvalidArgumentError, /another query/);
    expect(() => tokens.decode('garbage', query)).to.throw(InvalidArgumentError, /malformed/);
    const [, mac] = token.split('.');
    const forged = Buffer.from(JSON.stringify([0, 'heat-1', 0, 'x'])).toString('base64url');
    expect(() => tokens.decode(`${forged}.${mac}`, query)).to.throw(InvalidArgumentError, /signature mismatch/);
    expect(() => tokens.decode(`${token.split('.')[0]}.`, query)).to.throw(InvalidArgumentError, /signature mismatch/);
  });

  it('refuses a token signed with another key: the public dev key, or another deployment', () => {
    for (const key of [DEV_PAGE_TOKEN_KEY, 'another-deployment-key-01']) {
      const other = pageTokens(key).encode(cursor, query);
      expect(() => tokens.decode(other, query), key).to.throw(InvalidArgumentError, /signature mismatch/);
    }
  });

  it('refuses a token made by anyone with the source: the checksum of the unkeyed format', () => {
    // What encodePageToken made before tokens were keyed: SHA-256 of a constant prefix and the body.
    const q = createHash('sha256').update(JSON.stringify(['17', '', 0, null])).digest('base64url').slice(0, 22);
    for (const prefix of ['flatline.page.v1', 'flatline.page.v2']) {
      const body = Buffer.from(JSON.stringify([0, 'heat-1', 0, q])).toString('base64url');
      const sha = createHash('sha256').update(`${prefix}\n${body}`).digest('base64url').slice(0, 22);
      expect(() => tokens.decode(`${body}.${sha}`, query), prefix).to.throw(InvalidArgumentError, /signature mismatch/);
    }
  });

  it('needs a key of at least 16 characters', () => {
    expect(() => pageTokens('short')).to.throw(/at least 16 characters, got 5/);
  });
});
