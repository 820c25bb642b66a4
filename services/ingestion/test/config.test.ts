import { expect } from 'chai';
import { resolve } from 'node:path';
import { ConfigError } from '@flatline/platform';
import { loadConfig } from '../src/config.ts';

describe('ingestion configuration: the device gateway URL', () => {
  it('defaults to the local simulator over HTTPS, with its CA', () => {
    const c = loadConfig({});
    expect(c.devicesUrl).to.equal('https://127.0.0.1:8443');
    expect(c.devicesCa).to.equal(resolve('.state/devices/ca.pem'));
  });

  it('accepts http://host:port for a sidecar that originates TLS, and then has no CA file', () => {
    const c = loadConfig({ FLATLINE_DEVICES_URL: 'http://devices.flatline.svc.cluster.local:8443/', FLATLINE_DEVICES_CA: '/nowhere/ca.pem' });
    expect(c.devicesUrl).to.equal('http://devices.flatline.svc.cluster.local:8443');
    expect(c.devicesCa).to.equal(undefined);
  });

  it('accepts https with a host name, an IPv6 address or no port', () => {
    for (const url of ['https://devices.example', 'https://[::1]:8443', 'http://devices:80']) expect(loadConfig({ FLATLINE_DEVICES_URL: url }).devicesUrl, url).to.equal(url);
  });

  for (const url of ['ftp://127.0.0.1:8443', 'http://127.0.0.1:8443/flat/', 'https://user:pw@devices:8443', 'https://devices:8443?x=1', 'https://devices:0', 'https://devices:70000', 'HTTPS://devices', 'devices:8443', 'https://']) {
    it(`refuses ${JSON.stringify(url)}, naming FLATLINE_DEVICES_URL`, () => {
      expect(() => loadConfig({ FLATLINE_DEVICES_URL: url }))
        .to.throw(ConfigError)
        .with.property('message')
        .that.matches(/^FLATLINE_DEVICES_URL: expected the device gateway's base URL: https:\/\/host\[:port\], or http:\/\/host\[:port\]/)
        .and.contains(JSON.stringify(url));
    });
  }
});

describe('ingestion configuration: the storage target', () => {
  it('takes host:port, or xds:///host:port with an xDS bootstrap (Istio\'s control plane)', () => {
    expect(loadConfig({}).storageAddr).to.equal('127.0.0.1:7101');
    const target = 'xds:///storage.flatline.svc.cluster.local:7101';
    expect(loadConfig({ FLATLINE_STORAGE_ADDR: target, GRPC_XDS_BOOTSTRAP: '/state/istio/ingestion-0-bootstrap.json' }).storageAddr).to.equal(target);
    expect(loadConfig({ FLATLINE_STORAGE_ADDR: target, GRPC_XDS_BOOTSTRAP_CONFIG: '{}' }).storageAddr).to.equal(target);
  });

  it('refuses an xds:/// target without a bootstrap (it would hang in name resolution), and a malformed one, naming FLATLINE_STORAGE_ADDR', () => {
    expect(() => loadConfig({ FLATLINE_STORAGE_ADDR: 'xds:///storage.flatline.svc.cluster.local:7101' }))
      .to.throw(ConfigError)
      .with.property('message')
      .that.matches(/^FLATLINE_STORAGE_ADDR: .*needs GRPC_XDS_BOOTSTRAP/);
    for (const bad of ['xds://storage:7101', 'dns:///storage:7101', 'xds:///storage', 'storage:70000']) {
      expect(() => loadConfig({ FLATLINE_STORAGE_ADDR: bad, GRPC_XDS_BOOTSTRAP: '/b.json' }), bad).to.throw(ConfigError, /FLATLINE_STORAGE_ADDR/);
    }
  });
});
