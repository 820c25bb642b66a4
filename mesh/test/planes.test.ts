import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { credentials, Server as GrpcServer, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { StorageServiceClient, StorageServiceService, type AppendResponse } from '@flatline/proto';
import { unaryCall } from '@flatline/platform';
import type { Fault } from '../src/fault.ts';
import { FaultSource, writeFaultFile } from '../src/fault-file.ts';
import { grpcFaultInterceptor } from '../src/grpc-injector.ts';
import { httpFaultInterceptor } from '../src/http-injector.ts';
import { Injector } from '../src/injector.ts';
import { scenario } from '../src/scenarios.ts';

async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const t = Date.now();
  const v = await p;
  return [v, Date.now() - t];
}

describe('local plane: HTTP (undici interceptor) against a real server', () => {
  let server: Server;
  let hits: string[] = [];
  let origin = '';
  let faults: Fault[] = [];
  let agent: Agent;
  let dispatcher: ReturnType<Agent['compose']>;

  before(async () => {
    server = createServer((req, res) => {
      hits.push(req.url ?? '');
      res.end('{"ok":true}');
    }).listen(0, '127.0.0.1');
    await once(server, 'listening');
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    agent = new Agent();
    dispatcher = agent.compose(httpFaultInterceptor(new Injector('devices', () => faults, undefined)));
  });
  after(async () => {
    await agent.close();
    server.close();
  });
  beforeEach(() => {
    hits = [];
    faults = [];
  });

  it('a 300 ms delay on flat 7 slows flat 7 and no other flat', async () => {
    faults = [scenario('devices-slow')!.build({ flats: ['7'], delayMs: 300 })];
    const [, slow] = await timed(request(`${origin}/flat/7/measurements/`, { dispatcher }).then((r) => r.body.text()));
    const [, fast] = await timed(request(`${origin}/flat/8/measurements/`, { dispatcher }).then((r) => r.body.text()));
    expect(slow).to.be.at.least(290);
    expect(fast).to.be.below(250);
    expect(hits).to.deep.equal(['/flat/7/measurements/', '/flat/8/measurements/']);
  });

  it('an abort answers the declared status without reaching the server, and off removes all effect', async () => {
    faults = [scenario('devices-failing')!.build({ flats: ['7'], status: 503 })];
    const res = await request(`${origin}/flat/7/measurements/`, { dispatcher });
    expect(res.statusCode).to.equal(503);
    expect(await res.body.text()).to.equal('fault filter abort');
    expect(hits).to.deep.equal([]);
    faults = [];
    const again = await request(`${origin}/flat/7/measurements/`, { dispatcher });
    expect(again.statusCode).to.equal(200);
    await again.body.text();
    expect(hits).to.deep.equal(['/flat/7/measurements/']);
  });
});

describe('local plane: gRPC (grpc-js interceptor) against a real server', () => {
  let server: GrpcServer;
  let calls = 0;
  let faults: Fault[] = [];
  let client: StorageServiceClient;
  const request = { fetches: [] };

  before(async () => {
    server = new GrpcServer();
    server.addService(StorageServiceService, {
      append: (_call: unknown, cb: (err: null, res: AppendResponse) => void) => {
        calls += 1;
        cb(null, { inserted: 0, duplicates: 0, fetches: 0 });
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    client = new StorageServiceClient(`127.0.0.1:${port}`, credentials.createInsecure(), { interceptors: [grpcFaultInterceptor(new Injector('storage', () => faults, undefined))] });
  });
  after(() => {
    client.close();
    server.forceShutdown();
  });
  beforeEach(() => {
    calls = 0;
    faults = [];
  });

  it('an abort reaches the client as the declared status code, and the server never sees the call', async () => {
    faults = [scenario('storage-unavailable')!.build({})];
    const err = (await unaryCall(client, client.append, request, 2000).catch((e: unknown) => e)) as ServiceError;
    expect(err.code).to.equal(status.UNAVAILABLE);
    expect(err.details).to.equal('fault filter abort');
    expect(calls).to.equal(0);
  });

  it('a delay holds the call back, then lets it through', async () => {
    faults = [scenario('storage-slow')!.build({ delayMs: 300 })];
    const [, ms] = await timed(unaryCall(client, client.append, request, 5000));
    expect(ms).to.be.at.least(290);
    expect(calls).to.equal(1);
  });

  it('the caller\'s deadline still ends a delayed call', async () => {
    faults = [scenario('storage-slow')!.build({ delayMs: 3000 })];
    const err = (await unaryCall(client, client.append, request, 300).catch((e: unknown) => e)) as ServiceError;
    expect(err.code).to.equal(status.DEADLINE_EXCEEDED);
  });
});

describe('fault file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flatline-faults-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Waits until check() holds (at most 3 s); the watcher polls the file every 20 ms. */
  async function until(check: () => boolean): Promise<void> {
    const end = Date.now() + 3000;
    while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100));
  }

  it('follows the file, and a corrupt file keeps the previous faults and reports the error', async () => {
    const file = join(dir, 'faults.json');
    const errors: string[] = [];
    const source = new FaultSource(file, (e) => errors.push(e.message), () => {}, 20);
    try {
      expect(source.active()).to.deep.equal([]);
      const f = scenario('devices-slow')!.build({ flats: ['7'] });
      writeFaultFile(file, [f]);
      await until(() => source.active().length === 1);
      expect(source.active().map((x) => x.name)).to.deep.equal(['devices-slow']);
      writeFileSync(file, '{"version":1,"faults":[{"name":"x"');
      await until(() => errors.length === 1);
      expect(source.active().map((x) => x.name)).to.deep.equal(['devices-slow']);
      expect(errors.at(-1)).to.match(/is not JSON/);
      writeFileSync(file, JSON.stringify({ version: 1, faults: [{ ...f, fault: { delay: { fixedDelay: '1s' } } }] }));
      await until(() => errors.length === 2);
      expect(source.active().map((x) => x.name)).to.deep.equal(['devices-slow']);
      expect(errors.at(-1)).to.match(/faults\[0\]\.fault\.delay\.percentage/);
      writeFaultFile(file, []);
      await until(() => source.active().length === 0);
      expect(source.active()).to.deep.equal([]);
    } finally {
      source.close();
    }
  });
});
