import { expect } from 'chai';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import tls from 'node:tls';
import { join } from 'node:path';
import { ensureTlsMaterial } from '@flatline/devices';
import type { Dispatcher } from 'undici';
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

  it('https://: one TLS context for every connection, not one per connection (each poll of an unreachable gateway is a new connection)', async () => {
    const material = await ensureTlsMaterial(join(dir, 'gateway'), []);
    // A port with nothing listening: every poll is a new connection, refused.
    const server = createHttpServer();
    const closed = await listen(server);
    server.close();
    await once(server, 'close');
    const client = new DeviceClient({ baseUrl: `https://127.0.0.1:${closed}`, caFile: material.caPath, credentials, connections: 2 });
    // tls.connect builds a context through the module's own export when it is given none (counted here).
    const built = tls.createSecureContext;
    let contexts = 0;
    tls.createSecureContext = (...args: Parameters<typeof built>) => {
      contexts += 1;
      return built(...args);
    };
    try {
      for (let i = 0; i < 20; i++) {
        const err = await client.fetch('7', AbortSignal.timeout(2000)).catch((e: unknown) => e);
        expect(err).to.be.instanceOf(PollError).with.property('kind', 'network_error');
      }
      expect(contexts, 'TLS contexts built by 20 refused connections').to.equal(0);
    } finally {
      tls.createSecureContext = built;
      await client.close();
    }
  });

  it('the poll timeout bounds the TLS handshake: a gateway that accepts and never answers fails at timeoutMs, not at undici\'s own 10 s', async () => {
    const tls = await ensureTlsMaterial(join(dir, 'gateway'), []);
    // Accepts TCP and never sends a ServerHello (a handshake dribbled or stalled by the network).
    const sockets = new Set<Socket>();
    const mute = createNetServer((s) => sockets.add(s));
    mute.listen(0, '127.0.0.1');
    await once(mute, 'listening');
    const port = (mute.address() as AddressInfo).port;
    const bounded = new DeviceClient({ baseUrl: `https://127.0.0.1:${port}`, caFile: tls.caPath, credentials, connections: 1, timeoutMs: 300 });
    try {
      // Without timeoutMs reaching the connection, the 5 s signal would end it first, as a timeout.
      const err = await bounded.fetch('7', AbortSignal.timeout(5000)).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(PollError).with.property('kind', 'network_error');
      expect((err as PollError).message).to.match(/UND_ERR_CONNECT_TIMEOUT.*timeout: 300ms/);
    } finally {
      await bounded.close();
      for (const s of sockets) s.destroy();
      mute.close();
    }
    expect(() => new DeviceClient({ baseUrl: 'http://127.0.0.1:1', caFile: undefined, credentials, connections: 1, timeoutMs: 0 })).to.throw(/timeoutMs/);
  });

  it('https:// without a CA file is refused at construction: never an unverified connection', () => {
    expect(() => new DeviceClient({ baseUrl: 'https://127.0.0.1:8443', caFile: undefined, credentials, connections: 1 })).to.throw(/needs the CA file/);
    expect(() => new DeviceClient({ baseUrl: 'ftp://127.0.0.1:8443', caFile: undefined, credentials, connections: 1 })).to.throw(/http:\/\/ or https:\/\//);
  });

  describe('answer size limit (maxBodyBytes)', () => {
    const authorization = `Basic ${Buffer.from('flat-7:secret-seven').toString('base64')}`;
    /** What the next answer is: a body written in chunks (chunked encoding, no Content-Length), or one with a Content-Length. */
    let plan: { chunks: Iterable<Buffer> } | { whole: Buffer } | { promised: number; sent: Buffer; then: 'close' | 'stall' } = { whole: Buffer.from(answer) };
    /** Per answer: bytes the server handed to its socket, whether it wrote the whole body, and when its connection closed. */
    const served: Array<{ written: number; finished: boolean; closed: Promise<void> }> = [];
    let server: Server;
    let caPath: string;
    let baseUrl: string;

    before(async () => {
      const tls = await ensureTlsMaterial(join(dir, 'limit'), []);
      caPath = tls.caPath;
      server = createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
        if (req.headers.authorization !== authorization) return void res.writeHead(401).end();
        const record = { written: 0, finished: false, closed: once(req.socket, 'close').then(() => undefined) };
        served.push(record);
        res.setHeader('content-type', 'application/json');
        if ('whole' in plan) return void res.end(plan.whole);
        if ('promised' in plan) {
          res.setHeader('content-length', plan.promised);
          res.write(plan.sent);
          if (plan.then === 'close') setTimeout(() => req.socket.destroy(), 20);
          return;
        }
        void writeChunks(res, plan.chunks, record);
      });
      baseUrl = `https://127.0.0.1:${await listen(server)}`;
    });
    after(() => server.closeAllConnections());
    after(() => server.close());
    beforeEach(() => (served.length = 0));

    /** Writes chunks with back-pressure and stops as soon as the client goes away. */
    async function writeChunks(res: ServerResponse, chunks: Iterable<Buffer>, record: { written: number; finished: boolean }): Promise<void> {
      const gone = new Promise<void>((resolve) => res.once('close', resolve));
      for (const chunk of chunks) {
        if (res.destroyed) return;
        const more = res.write(chunk);
        record.written += chunk.length;
        if (!more) await Promise.race([once(res, 'drain'), gone]);
      }
      if (!res.destroyed) res.end(() => (record.finished = true));
    }

    function* repeat(chunk: Buffer, times: number): Iterable<Buffer> {
      for (let i = 0; i < times; i++) yield chunk;
    }

    /** A client with the given cap, counting the answer bytes undici delivered to it (whichever handler API it speaks). */
    function client(maxBodyBytes: number): { client: DeviceClient; delivered: () => number } {
      let delivered = 0;
      const count = (dispatcher: Dispatcher): Dispatcher =>
        dispatcher.compose((dispatch) => (opts, handler) => {
          const h = handler as Record<string | symbol, unknown>;
          const counting = new Proxy(h, {
            get(target, key) {
              const value = target[key];
              if (typeof value !== 'function') return value;
              if (key === 'onData') return (chunk: Buffer) => ((delivered += chunk.length), value.call(target, chunk));
              if (key === 'onResponseData') return (c: unknown, chunk: Buffer) => ((delivered += chunk.length), value.call(target, c, chunk));
              return value.bind(target);
            },
          });
          return dispatch(opts, counting as typeof handler);
        });
      return { client: new DeviceClient({ baseUrl, caFile: caPath, credentials, connections: 1, maxBodyBytes, compose: count }), delivered: () => delivered };
    }

    /** The poll outcome, in a form a failed assertion prints readably. */
    const outcome = (c: DeviceClient) =>
      c.fetch('7', AbortSignal.timeout(5000)).then(
        (body) => ({ returnedBytes: Buffer.byteLength(body) }),
        (err: unknown) => (err instanceof PollError ? { kind: err.kind, message: err.message } : { thrown: String(err) }),
      );

    it('stops reading a chunked answer (no Content-Length) once it passes the cap: malformed, promptly, memory bounded, connection closed', async () => {
      const cap = 256 * 1024;
      const chunk = Buffer.alloc(16 * 1024, 'a');
      plan = { chunks: repeat(chunk, (8 * cap) / chunk.length) };
      const { client: c, delivered } = client(cap);
      try {
        const started = Date.now();
        const result = await outcome(c);
        const elapsedMs = Date.now() - started;
        expect(result).to.deep.include({ kind: 'malformed' });
        expect((result as { message: string }).message).to.match(/more than 262144 bytes/);
        expect(elapsedMs, 'returned promptly').to.be.below(2000);
        // The cap, plus what undici reads ahead (one socket read, one readable buffer): far from the 2 MiB sent.
        expect(delivered(), 'answer bytes the client took in').to.be.within(cap, cap + 192 * 1024);
        // The client dropped the connection (a kept-alive one would stay open after a full read).
        expect(served).to.have.length(1);
        await Promise.race([served[0]!.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the server never saw the connection close')), 2000))]);
        expect(served[0]!.finished, 'the server wrote its whole answer').to.equal(false);
      } finally {
        await c.close();
      }
    });

    it('holds the default 4 MiB cap on a chunked answer too (8 MiB sent)', async () => {
      plan = { chunks: repeat(Buffer.alloc(64 * 1024, 'a'), 128) };
      const c = new DeviceClient({ baseUrl, caFile: caPath, credentials, connections: 1 });
      try {
        expect(await outcome(c)).to.deep.include({ kind: 'malformed' });
      } finally {
        await c.close();
      }
    });

    it('accepts a chunked answer of exactly the cap, with characters split across chunks, and refuses one byte more', async () => {
      const body = Buffer.from('€'.repeat(10000)); // 30000 bytes, 3 per character
      const pieces = (): Buffer[] => Array.from({ length: Math.ceil(body.length / 4099) }, (_, i) => body.subarray(i * 4099, (i + 1) * 4099));
      const exact = client(body.length);
      const under = client(body.length - 1);
      try {
        plan = { chunks: pieces() };
        expect(await exact.client.fetch('7', AbortSignal.timeout(5000))).to.equal(body.toString());
        plan = { chunks: pieces() };
        expect(await outcome(under.client)).to.deep.include({ kind: 'malformed' });
      } finally {
        await exact.client.close();
        await under.client.close();
      }
    });

    it('refuses an answer whose Content-Length passes the configured cap without reading it', async () => {
      plan = { whole: Buffer.alloc(64 * 1024, 'a') };
      const { client: c, delivered } = client(1024);
      try {
        expect(await outcome(c)).to.deep.include({ kind: 'malformed' });
        expect(delivered()).to.be.below(64 * 1024);
      } finally {
        await c.close();
      }
    });

    it('still sorts a body cut short as malformed and a body that stalls as a timeout', async () => {
      const { client: c } = client(1024);
      try {
        plan = { promised: 500, sent: Buffer.alloc(100, 'a'), then: 'close' };
        expect(await outcome(c)).to.deep.include({ kind: 'malformed' });
        plan = { promised: 500, sent: Buffer.alloc(100, 'a'), then: 'stall' };
        const stalled = await c.fetch('7', AbortSignal.timeout(300)).catch((e: unknown) => e);
        expect(stalled).to.be.instanceOf(PollError).with.property('kind', 'timeout');
      } finally {
        await c.close();
      }
    });

    it('keeps the 4 MiB default and refuses a cap that is not a positive whole number', () => {
      expect(() => new DeviceClient({ baseUrl: 'http://127.0.0.1:1', caFile: undefined, credentials, connections: 1, maxBodyBytes: 0 })).to.throw(/maxBodyBytes/);
      expect(() => new DeviceClient({ baseUrl: 'http://127.0.0.1:1', caFile: undefined, credentials, connections: 1, maxBodyBytes: 1.5 })).to.throw(/maxBodyBytes/);
      const c = new DeviceClient({ baseUrl: 'http://127.0.0.1:1', caFile: undefined, credentials, connections: 1 });
      expect(c.maxBodyBytes).to.equal(4 * 1024 * 1024);
      void c.close();
    });
  });
});
