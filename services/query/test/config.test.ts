import { expect } from 'chai';
import { ConfigError } from '@flatline/platform';
import { DEV_PAGE_TOKEN_KEY, loadConfig } from '../src/config.ts';

describe('query configuration', () => {
  it('runs locally with no variable set: the public dev page-token key (flagged) and 64 streams', () => {
    const c = loadConfig({});
    expect(c.pageTokenKey).to.equal(DEV_PAGE_TOKEN_KEY);
    expect(c.pageTokenKeyIsDev).to.equal(true);
    expect(c.maxStreams).to.equal(64);
  });

  it('takes the page-token key and the stream cap it is given', () => {
    const c = loadConfig({ FLATLINE_QUERY_PAGE_TOKEN_KEY: 'a-secret-of-this-deployment', FLATLINE_QUERY_MAX_STREAMS: '8' });
    expect(c.pageTokenKey).to.equal('a-secret-of-this-deployment');
    expect(c.pageTokenKeyIsDev).to.equal(false);
    expect(c.maxStreams).to.equal(8);
  });

  it('refuses a short page-token key without printing it, and a stream cap of 0', () => {
    expect(() => loadConfig({ FLATLINE_QUERY_PAGE_TOKEN_KEY: 'hunter2' }))
      .to.throw(ConfigError, /FLATLINE_QUERY_PAGE_TOKEN_KEY: expected at least 16 characters, got 7/)
      .with.property('message')
      .that.does.not.include('hunter2');
    expect(() => loadConfig({ FLATLINE_QUERY_MAX_STREAMS: '0' })).to.throw(ConfigError, /FLATLINE_QUERY_MAX_STREAMS/);
  });
});
