import { expect } from 'chai';
import { ConfigError, misspelledVariables, mongoUri, readEnv } from '../src/config.ts';
import { redactUrl } from '../src/logger.ts';

describe('platform config: secrets in refusals', () => {
  const spec = { FLATLINE_MONGODB_URI: mongoUri('mongodb://127.0.0.1:27017/flatline') };

  const refusal = (uri: string): string => {
    try {
      readEnv(spec, { FLATLINE_MONGODB_URI: uri });
    } catch (err) {
      expect(err).to.be.instanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error(`${uri} was accepted`);
  };

  for (const password of ['s3cret-Pa55', 'p@ss/w rd', 'with space']) {
    it(`never shows the password of a MongoDB URI it refuses (${JSON.stringify(password).length} characters)`, () => {
      const message = refusal(`mongodb://flatline:${password}@db.example:27017/flat line`);
      expect(message).to.include('FLATLINE_MONGODB_URI');
      expect(message).to.include('[redacted]');
      for (const part of password.split(/[@/ ]/).filter((p) => p.length > 2)) expect(message).to.not.include(part);
    });
  }

  it('still shows what is wrong with a URI that has no credentials', () => {
    expect(refusal('mongodb://db.example:27017')).to.include('mongodb://db.example:27017');
  });

  it('redacts user and password of a URL for logs, and leaves one without them alone', () => {
    expect(redactUrl('mongodb://u:p@h:1/db?w=majority')).to.equal('mongodb://[redacted]@h:1/db?w=majority');
    expect(redactUrl('mongodb://h:1/db')).to.equal('mongodb://h:1/db');
  });
});

describe('platform config: misspelled variables', () => {
  const spec = { FLATLINE_POLL_INTERVAL_MS: mongoUri('mongodb://127.0.0.1:27017/flatline'), FLATLINE_STORAGE_LISTEN: mongoUri('mongodb://127.0.0.1:27017/flatline') };

  it('names a FLATLINE_ variable within two edits of a known one, with the one meant', () => {
    const warnings: string[] = [];
    readEnv(spec, { FLATLINE_POLL_INTERVL_MS: '100', FLATLINE_QUERY_LISTEN: 'x', PATH: '/bin' }, (l) => warnings.push(l));
    expect(warnings).to.deep.equal(['warning: FLATLINE_POLL_INTERVL_MS is not a variable this program reads (ignored); did you mean FLATLINE_POLL_INTERVAL_MS?']);
  });

  it('says nothing about the variables it reads, nor about far ones (another service\'s)', () => {
    expect(misspelledVariables(spec, { FLATLINE_POLL_INTERVAL_MS: '1', FLATLINE_DEVICES_WINDOW_MS: '5', HOME: '/' })).to.deep.equal([]);
  });
});
