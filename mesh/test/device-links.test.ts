import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceLinkSource, readDeviceLinks, writeDeviceLinks } from '../src/device-links.ts';

describe('device links: the flats polled through a proxy of their own', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'flatline-links-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads what it wrote; a missing file means none', () => {
    const file = join(dir, 'device-links.json');
    expect(readDeviceLinks(file)).to.deep.equal({});
    writeDeviceLinks(file, { '7': '127.0.0.1:40001', '13': '127.0.0.1:40002' });
    expect(readDeviceLinks(file)).to.deep.equal({ '7': '127.0.0.1:40001', '13': '127.0.0.1:40002' });
  });

  it('refuses a file that is not one, naming what is wrong', () => {
    const file = join(dir, 'device-links.json');
    writeFileSync(file, '{"version":1,"flats":{"7":"not an address"}}');
    expect(() => readDeviceLinks(file)).to.throw(/flats\.7: must be host:port/);
    writeFileSync(file, '{"version":2,"flats":{}}');
    expect(() => readDeviceLinks(file)).to.throw(/version/);
    writeFileSync(file, 'not json');
    expect(() => readDeviceLinks(file)).to.throw(/is not JSON/);
  });

  it('follows the file, keeps the previous links when it turns bad, and knows no inherited flat', async () => {
    const file = join(dir, 'device-links.json');
    writeDeviceLinks(file, { '7': '127.0.0.1:40001' });
    const errors: string[] = [];
    const source = new DeviceLinkSource(file, (err) => errors.push(err.message), () => {}, 20);
    try {
      expect(source.linkOf('7')).to.equal('127.0.0.1:40001');
      expect(source.linkOf('8')).to.equal(undefined);
      expect(source.linkOf('constructor')).to.equal(undefined);
      writeDeviceLinks(file, {});
      for (let i = 0; i < 100 && source.linkOf('7') !== undefined; i++) await new Promise((r) => setTimeout(r, 10));
      expect(source.linkOf('7'), 'followed the change').to.equal(undefined);
      writeDeviceLinks(file, { '9': '127.0.0.1:40003' });
      for (let i = 0; i < 100 && source.linkOf('9') === undefined; i++) await new Promise((r) => setTimeout(r, 10));
      writeFileSync(file, 'torn');
      for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(errors[0]).to.match(/is not JSON/);
      expect(source.linkOf('9'), 'the previous links are kept').to.equal('127.0.0.1:40003');
    } finally {
      source.close();
    }
  });
});
