import { expect } from 'chai';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTlsMaterial } from '@flatline/devices/state/tls-files.js';
import { DeviceClient, PollError } from '../../src/devices/device-client.ts';

const credentials = new Map([['7', { username: 'flat-7', password: 'secret-seven' }]]);
const answer = '{"flat_id":"7","generated_at":"2026-11-29T09:00:00.000Z","devices":[]}';

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

describe('device client', () => {
  const seen: Array<{ url: string; authorization: string | undefined }> = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    seen.push({ url: req.url ?? '', authorization: req.headers.authorization });
    res.setHeader('content-type', 'application/json');
    res.end(answer);
  };
  const dir = mkdtempSync(join(tmpdir(), 'flatline-device-client-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(() => (seen.length = 0));

  it('http:// (a TLS-originating sidecar): plain HTTP with Basic auth, and no CA file read', async () => {
    const server = createHttpServer(handler);
    const port = await listen(server);
    // A CA file that does not exist: with http:// it is never read.
    const client = new DeviceClient({ baseUrl: `http://127.0.0.1:${port}`, caFile: join(dir, 'no-such-ca.pem'), credentials, connections: 2 });
    try {
      expect(await client.fetch('7', AbortSignal.timeout(2000))).to.equal(answer);
      expect(seen).to.deep.equal([{ url: '/flat/7/measurements/', authorization: `Basic ${Buffer.from('flat-7:secret-seven').toString('base64')}` }]);
    } finally {
      await client.close();
      server.close();
    }
  });

  it('https://: verifies the gateway with the CA file, and refuses a gateway it does not sign', async () => {
    const tls = await ensureTlsMaterial(join(dir, 'gateway'), []);
    const other = await ensureTlsMaterial(join(dir, 'other'), []);
    const server = createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, handler);
    const port = await listen(server);
    const trusting = new DeviceClient({ baseUrl: `https://127.0.0.1:${port}`, caFile: tls.caPath, credentials, connections: 2 });
    const wrongCa = new DeviceClient({ baseUrl: `https://127.0.0.1:${port}`, caFile: other.caPath, credentials, connections: 2 });
    try {
      expect(await trusting.fetch('7', AbortSignal.timeout(2000))).to.equal(answer);
      const err = await wrongCa.fetch('7', AbortSignal.timeout(2000)).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(PollError).with.property('kind', 'network_error');
      expect(seen).to.have.length(1);
    } finally {
      await trusting.close();
      await wrongCa.close();
      server.close();
    }
  });

  it('https:// without a CA file is refused at construction: never an unverified connection', () => {
    expect(() => new DeviceClient({ baseUrl: 'https://127.0.0.1:8443', caFile: undefined, credentials, connections: 1 })).to.throw(/needs the CA file/);
    expect(() => new DeviceClient({ baseUrl: 'ftp://127.0.0.1:8443', caFile: undefined, credentials, connections: 1 })).to.throw(/http:\/\/ or https:\/\//);
  });
});
