import { expect } from 'chai';
import { join, resolve } from 'node:path';
import { loadConfig } from '../src/config.ts';

describe('devices configuration', () => {
  it('runs locally with no variable set', () => {
    const c = loadConfig({});
    expect(c).to.deep.include({
      listen: '127.0.0.1:8443',
      controlListen: '127.0.0.1:8444',
      metricsListen: '127.0.0.1:9104',
      stateDir: resolve('.state/devices'),
      credentialsPath: join(resolve('.state/devices'), 'credentials.json'),
      devicesPerFlat: 3,
      periodMs: 1000,
      windowMs: 60000,
      logLevel: 'info',
    });
    expect(c.tlsNames).to.deep.equal([]);
  });

  it('resolves the credentials path against the working directory, and its default against the state folder', () => {
    expect(loadConfig({ FLATLINE_DEVICES_STATE_DIR: '/srv/dev' }).credentialsPath).to.equal('/srv/dev/credentials.json');
    expect(loadConfig({ FLATLINE_DEVICES_STATE_DIR: '/srv/dev', FLATLINE_DEVICES_CREDENTIALS: 'creds.json' }).credentialsPath).to.equal(resolve('creds.json'));
  });

  it('reads extra certificate names, comma-separated', () => {
    expect(loadConfig({ FLATLINE_DEVICES_TLS_NAMES: ' devices.flatline.svc ,10.0.0.7,,*.devices.local' }).tlsNames).to.deep.equal(['devices.flatline.svc', '10.0.0.7', '*.devices.local']);
  });

  const bad: Array<[string, string]> = [
    ['FLATLINE_DEVICES_PER_FLAT', '0'],
    ['FLATLINE_DEVICES_PER_FLAT', '17'],
    ['FLATLINE_DEVICES_PERIOD_MS', '99'],
    ['FLATLINE_DEVICES_PERIOD_MS', 'soon'],
    ['FLATLINE_DEVICES_WINDOW_MS', '999'],
    ['FLATLINE_DEVICES_LISTEN', 'localhost'],
    ['FLATLINE_DEVICES_METRICS_LISTEN', '127.0.0.1:70000'],
    ['FLATLINE_DEVICES_TLS_NAMES', 'ok.example,not a name'],
    ['FLATLINE_LOG_LEVEL', 'loud'],
  ];
  for (const [variable, value] of bad) {
    it(`names ${variable} when it is ${JSON.stringify(value)}`, () => {
      expect(() => loadConfig({ [variable]: value })).to.throw(new RegExp(`^${variable}: `));
    });
  }

  it('refuses a window that would put too many readings in one answer', () => {
    expect(() => loadConfig({ FLATLINE_DEVICES_PERIOD_MS: '100', FLATLINE_DEVICES_WINDOW_MS: '86400000' })).to.throw(/^FLATLINE_DEVICES_WINDOW_MS: .*864000 readings per device/);
  });
});
