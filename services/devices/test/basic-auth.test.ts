import { expect } from 'chai';
import { BasicAuth } from '../src/basic-auth.ts';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('basic auth', () => {
  const auth = new BasicAuth(
    new Map([
      ['1', { username: 'flat-1', password: 'pässwörd:with-colon' }],
      ['2', { username: 'flat-2', password: 'another-secret' }],
    ]),
  );

  it('accepts a flat\'s own credentials (UTF-8, a colon in the password)', () => {
    expect(auth.verify('1', basic('flat-1', 'pässwörd:with-colon'))).to.equal(true);
    expect(auth.verify('1', basic('flat-1', 'pässwörd:with-colon').replace('Basic', 'basic'))).to.equal(true);
  });

  it('refuses wrong, missing or malformed credentials, and those of another flat', () => {
    expect(auth.verify('1', basic('flat-1', 'wrong'))).to.equal(false);
    expect(auth.verify('1', basic('flat-2', 'pässwörd:with-colon'))).to.equal(false);
    expect(auth.verify('1', basic('flat-2', 'another-secret'))).to.equal(false);
    expect(auth.verify('1', undefined)).to.equal(false);
    expect(auth.verify('1', 'Bearer abc')).to.equal(false);
    expect(auth.verify('1', `Basic ${Buffer.from('no-colon').toString('base64')}`)).to.equal(false);
    expect(auth.verify('1', 'Basic !!!')).to.equal(false);
    expect(auth.verify('9', basic('flat-1', 'pässwörd:with-colon'))).to.equal(false);
  });
});
