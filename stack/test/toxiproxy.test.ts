/**
 * Toxiproxy from the stack workspace: the real toxiproxy-server, a real
 * FerretDB behind it and the real mongodb driver in front; plain TCP and HTTP
 * servers for the toxics that cut or slice data. Each fault is checked
 * against the same operation without it.
 */
import { expect } from 'chai';
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { MongoClient, MongoNetworkError, MongoNetworkTimeoutError, MongoServerSelectionError } from 'mongodb';
import { freePort } from '../src/haproxy.ts';
import { tempDir, TestDatabase } from '../src/harness.ts';
import { startToxiproxy, ToxiproxyClient, ToxiproxyError, type RunningToxiproxy, type ToxicSpec } from '../src/toxiproxy.ts';

/** What a promise came to within ms: its value, its error, or that it was still pending (hung). */
async function settle<T>(promise: Promise<T>, ms: number): Promise<{ value?: T; error?: unknown; hung: boolean; elapsedMs: number }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)));
  try {
    const outcome = await Promise.race([promise.then((value) => ({ value }), (error: unknown) => ({ error: error ?? new Error('rejected without a reason') })), hung]);
    const elapsedMs = performance.now() - started;
    return outcome === 'hung' ? { hung: true, elapsedMs } : { ...outcome, hung: false, elapsedMs };
  } finally {
    clearTimeout(timer);
  }
}

/** An HTTP/1.1 GET over a raw socket: every byte that came back, in how many reads, and how the connection ended. */
function rawGet(address: string): Promise<{ bytes: Buffer; reads: number; ended: string }> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let ended = 'close';
    const socket = connect({ host, port: Number(port) }, () => socket.write('GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n'));
    socket.setTimeout(10000, () => socket.destroy(new Error('no end within 10 s')));
    socket.on('data', (chunk: Buffer) => parts.push(chunk));
    socket.on('end', () => (ended = 'end'));
    socket.on('error', (err: NodeJS.ErrnoException) => (ended = err.code ?? err.message));
    socket.on('close', () => resolve({ bytes: Buffer.concat(parts), reads: parts.length, ended }));
  });
}

/** A node:http server on a free loopback port (or the given one) that answers body to every request. */
async function httpServer(body: string, port = 0): Promise<{ server: Server; address: string }> {
  const server = createHttpServer((_req, res) => res.end(body));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return { server, address: `127.0.0.1:${(server.address() as { port: number }).port}` };
}

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  const outcome = await settle(promise, 30000);
  expect(outcome.hung, 'the call answered').to.equal(false);
  expect(outcome.error, `expected a rejection, got ${JSON.stringify(outcome.value)}`).to.be.instanceOf(Error);
  return outcome.error as Error;
}

describe('Toxiproxy (real toxiproxy-server, FerretDB and mongodb driver)', function () {
  this.timeout(120000);
  const dir = tempDir('toxiproxy');
  const db = new TestDatabase(join(dir.path, 'ferretdb'));
  let toxiproxy: RunningToxiproxy;
  let api: ToxiproxyClient;
  let dbAddress: string;
  const clients: MongoClient[] = [];
  const servers: Server[] = [];

  /** A driver client through listen; directConnection: FerretDB's hello names its own address, not the proxy's. */
  const mongo = (listen: string, serverSelectionTimeoutMS = 5000): MongoClient => {
    const client = new MongoClient(`mongodb://${listen}/flatline?directConnection=true`, { serverSelectionTimeoutMS });
    clients.push(client);
    return client;
  };
  const pingMs = async (client: MongoClient): Promise<number> => {
    const started = performance.now();
    await client.db().command({ ping: 1 });
    return performance.now() - started;
  };

  before(async () => {
    [toxiproxy] = await Promise.all([startToxiproxy({ logFile: join(dir.path, 'toxiproxy.log') }), db.start()]);
    api = toxiproxy.client;
    dbAddress = new URL(db.uri).host;
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close(true)));
    for (const s of servers) s.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    await toxiproxy?.process.stop();
    await db.stop();
    dir.cleanup();
  });

  it('starts on a free port, answers its version, and a proxy on 127.0.0.1:0 reports the port it listens on', async () => {
    expect(toxiproxy.version).to.equal('2.5.0');
    expect(toxiproxy.address).to.match(/^127\.0\.0\.1:\d+$/);
    expect(toxiproxy.address).to.not.match(/:0$/);
    const proxy = await api.createProxy({ name: 'db-listen', upstream: dbAddress });
    expect(proxy).to.include({ name: 'db-listen', upstream: dbAddress, enabled: true });
    expect(proxy.listen).to.match(/^127\.0\.0\.1:\d+$/);
    expect(proxy.listen).to.not.match(/:0$/);
    expect((await api.getProxy('db-listen')).listen).to.equal(proxy.listen);
    expect(Object.keys(await api.listProxies())).to.include('db-listen');
    await api.deleteProxy('db-listen');
    expect(Object.keys(await api.listProxies())).to.not.include('db-listen');

    // A given port that is taken: no retry on another one, an error with its output.
    const taken = Number(toxiproxy.address.split(':')[1]);
    const second = await rejection(startToxiproxy({ logFile: join(dir.path, 'toxiproxy-2.log'), port: taken, readyTimeoutMs: 10000 }));
    // Refused before it starts: toxiproxy-server logs its start before it binds, so its API probe met the first one's (CI, load 15).
    expect(second.message).to.equal(`toxiproxy (API on ${toxiproxy.address}): the port is taken (address already in use)`);
  });

  it('latency 300 ms: a ping through the proxy takes at least 300 ms (600 after an update), and removing it restores it', async () => {
    const proxy = await api.createProxy({ name: 'db-latency', upstream: dbAddress });
    const client = mongo(proxy.listen);
    await pingMs(client); // connects
    // The least of three: one slow ping on a loaded machine is noise, three are not.
    const fastest = async (): Promise<number> => Math.min(await pingMs(client), await pingMs(client), await pingMs(client));
    expect(await fastest(), 'without the toxic').to.be.below(300);

    const toxic = await api.addToxic(proxy.name, { type: 'latency', name: 'slow', attributes: { latency: 300 } });
    expect(toxic).to.deep.equal({ name: 'slow', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 300, jitter: 0 } });
    expect(await api.listToxics(proxy.name)).to.deep.equal([toxic]);
    expect(await pingMs(client), 'with 300 ms of latency').to.be.at.least(300);

    const updated = await api.updateToxic(proxy.name, 'slow', { attributes: { latency: 600 } });
    expect(updated.attributes).to.deep.equal({ latency: 600, jitter: 0 });
    expect(updated.toxicity, 'left out of the update: kept').to.equal(1);
    expect(await pingMs(client), 'with 600 ms of latency').to.be.at.least(600);

    await api.removeToxic(proxy.name, 'slow');
    expect(await api.listToxics(proxy.name)).to.deep.equal([]);
    expect(await fastest(), 'after removing it').to.be.below(300);
  });

  it('reset_peer (toxicity 1): an insert fails with a connection error and is not applied; after removal the same client inserts again', async () => {
    const proxy = await api.createProxy({ name: 'db-reset', upstream: dbAddress });
    const client = mongo(proxy.listen, 3000);
    const items = client.db().collection<{ _id: string }>('toxiproxy_reset');
    await items.insertOne({ _id: 'before' });

    // Upstream: the request is cut before it reaches FerretDB, so the write is known not to have happened.
    await api.addToxic(proxy.name, { type: 'reset_peer', name: 'rst', stream: 'upstream', toxicity: 1, attributes: { timeout: 0 } });
    const err = await rejection(items.insertOne({ _id: 'during' }));
    // A network error on the pooled connection; should the driver select the server again, it finds none.
    expect(err, `${err.name}: ${err.message}`).to.satisfy((e: Error) => e instanceof MongoNetworkError || e instanceof MongoServerSelectionError);

    await api.removeToxic(proxy.name, 'rst');
    await items.insertOne({ _id: 'after' });
    const ids = (await items.find().toArray()).map((d) => d._id).sort();
    expect(ids).to.deep.equal(['after', 'before']);
  });

  it('timeout 0 (a black hole): a read bounded at 1000 ms fails at its bound instead of hanging, and works once it is removed; timeoutMS alone does not bound it', async () => {
    const proxy = await api.createProxy({ name: 'db-blackhole', upstream: dbAddress });
    // mongodb 7.8+ made timeoutMS a no-op (NODE-7974): the bound is the per-stage
    // timeouts, and no retry (a retried read would wait for a new connection's handshake).
    const bounded = new MongoClient(`mongodb://${proxy.listen}/flatline?directConnection=true`, { socketTimeoutMS: 1000, connectTimeoutMS: 1000, serverSelectionTimeoutMS: 1000, retryReads: false });
    clients.push(bounded);
    const items = bounded.db().collection('toxiproxy_timeout');
    const unbounded = mongo(proxy.listen);
    const control = await settle(Promise.all([items.findOne({}), unbounded.db().collection('toxiproxy_timeout').findOne({}, { timeoutMS: 1000 })]), 10000);
    expect(control.error, 'without the toxic').to.equal(undefined);
    expect(control.hung).to.equal(false);

    await api.addToxic(proxy.name, { type: 'timeout', name: 'blackhole', attributes: { timeout: 0 } });
    const outcome = await settle(items.findOne({}), 10000);
    expect(outcome.hung, 'still pending after 10 s').to.equal(false);
    expect(outcome.error, 'with the toxic').to.be.instanceOf(MongoNetworkTimeoutError);
    // It waited for its bound (not failed for another reason), and not much longer.
    expect(outcome.elapsedMs, (outcome.error as Error).message).to.be.within(900, 4000);

    // The trap: the same read with only timeoutMS 1000 (a no-op in mongodb 7.9) is still pending at 3 s.
    const trap = await settle(unbounded.db().collection('toxiproxy_timeout').findOne({}, { timeoutMS: 1000 }), 3000);
    expect(trap.hung, 'timeoutMS bounded the read: mongodb honours it again, revisit the deadlines that rely on it').to.equal(true);

    await api.removeToxic(proxy.name, 'blackhole');
    const after = await settle(items.findOne({}), 10000);
    expect(after.error, 'after removing it').to.equal(undefined);
    expect(after.hung).to.equal(false);
  });

  it('limit_data cuts an HTTP answer after its bytes; slicer delivers it whole but in many pieces', async () => {
    const body = 'x'.repeat(10000);
    const { server, address } = await httpServer(body);
    servers.push(server);
    const proxy = await api.createProxy({ name: 'http', upstream: address });

    const whole = await rawGet(proxy.listen);
    expect(whole.bytes.toString(), 'without a toxic').to.match(/^HTTP\/1\.1 200 OK\r\n/);
    expect(whole.bytes.toString().endsWith(`\r\n\r\n${body}`), 'the whole body').to.equal(true);
    expect(whole.reads, 'without a toxic').to.be.at.most(3);

    await api.addToxic(proxy.name, { type: 'limit_data', name: 'cut', attributes: { bytes: 500 } });
    const cut = await rawGet(proxy.listen);
    expect(cut.bytes.length).to.equal(500);
    expect(cut.bytes.toString()).to.match(/^HTTP\/1\.1 200 OK\r\n/);
    await api.removeToxic(proxy.name, 'cut');

    // 10 kB in slices of 500 ± 100 bytes, 10 ms (10000 µs) apart: about 20 reads.
    await api.addToxic(proxy.name, { type: 'slicer', name: 'slices', attributes: { average_size: 500, size_variation: 100, delay: 10000 } });
    const sliced = await rawGet(proxy.listen);
    expect(sliced.bytes.equals(whole.bytes) || sliced.bytes.toString().endsWith(`\r\n\r\n${body}`), 'the whole answer').to.equal(true);
    expect(sliced.reads, 'sliced').to.be.at.least(10);
    await api.removeToxic(proxy.name, 'slices');
    expect((await rawGet(proxy.listen)).reads, 'after removing it').to.be.at.most(3);
  });

  it('reports a bad request with Toxiproxy\'s message and status; checks toxicity is a fraction before sending', async () => {
    const proxy = await api.createProxy({ name: 'db-errors', upstream: dbAddress });
    const good: ToxicSpec = { type: 'bandwidth', name: 'narrow', attributes: { rate: 100 } };
    expect((await api.addToxic(proxy.name, good)).attributes, 'a valid toxic').to.deep.equal({ rate: 100 });

    const unknownType = await rejection(api.addToxic(proxy.name, { type: 'no_such_toxic', attributes: {} } as unknown as ToxicSpec));
    expect(unknownType).to.be.instanceOf(ToxiproxyError);
    expect(unknownType).to.include({ status: 400, toxiproxyMessage: 'invalid toxic type' });
    expect(unknownType.message).to.equal('Toxiproxy POST /proxies/db-errors/toxics: 400 invalid toxic type');

    expect(await rejection(api.addToxic(proxy.name, good))).to.include({ status: 409, toxiproxyMessage: 'toxic already exists' });
    expect(await rejection(api.addToxic('no-such-proxy', good))).to.include({ status: 404, toxiproxyMessage: 'proxy not found' });
    expect(await rejection(api.removeToxic(proxy.name, 'no-such-toxic'))).to.include({ status: 404, toxiproxyMessage: 'toxic not found' });
    expect(await rejection(api.createProxy({ name: 'db-errors', upstream: dbAddress }))).to.include({ status: 409, toxiproxyMessage: 'proxy already exists' });
    expect(await rejection(api.createProxy({ name: 'no-upstream', upstream: '' }))).to.include({ status: 400, toxiproxyMessage: 'missing required field: upstream' });
    expect(await rejection(api.addToxic(proxy.name, { ...good, name: 'stream', stream: 'sideways' } as unknown as ToxicSpec))).to.include({ status: 400 });

    const percent = await rejection(api.addToxic(proxy.name, { ...good, name: 'half', toxicity: 50 }));
    expect(percent).to.be.instanceOf(RangeError);
    expect(percent.message).to.match(/fraction from 0 to 1, got 50/);
    expect((await api.listToxics(proxy.name)).map((t) => t.name), 'nothing else was added').to.deep.equal(['narrow']);

    const nobody = new ToxiproxyClient(`http://127.0.0.1:${await freePort('127.0.0.1')}`, 2000);
    const unreachable = await rejection(nobody.version());
    expect(unreachable).to.be.instanceOf(ToxiproxyError);
    expect(unreachable).to.include({ status: undefined });
    expect(unreachable.message).to.match(/^Toxiproxy GET \/version: no answer from http:\/\/127\.0\.0\.1:\d+ \(deadline 2000 ms\): .*ECONNREFUSED/);

    // An API that accepts and never answers: the call ends at its deadline.
    const silent = createHttpServer(() => undefined);
    servers.push(silent);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const hanging = new ToxiproxyClient(`http://127.0.0.1:${(silent.address() as { port: number }).port}`, 500);
    const outcome = await settle(hanging.listProxies(), 10000);
    expect(outcome.hung, 'still pending after 10 s').to.equal(false);
    expect(outcome.error).to.be.instanceOf(ToxiproxyError);
    expect((outcome.error as Error).message).to.match(/^Toxiproxy GET \/proxies: no answer .*\(deadline 500 ms\)/);
    expect(outcome.elapsedMs).to.be.within(400, 5000);
  });

  it('a proxy whose upstream is down accepts and closes connections; the API still works, and the proxy forwards once the upstream is up', async () => {
    const port = await freePort('127.0.0.1');
    const proxy = await api.createProxy({ name: 'down', upstream: `127.0.0.1:${port}` });

    const refused = await rawGet(proxy.listen);
    expect(refused.bytes.length, `nothing came back (${refused.ended})`).to.equal(0);
    const ping = await settle(mongo(proxy.listen, 1000).db().command({ ping: 1 }), 10000);
    expect(ping.error, 'the driver finds no server').to.be.instanceOf(MongoServerSelectionError);

    expect(await api.getProxy('down')).to.include({ enabled: true, upstream: `127.0.0.1:${port}` });
    await api.addToxic('down', { type: 'slow_close', name: 'linger', attributes: { delay: 10 } });
    expect((await api.listToxics('down')).map((t) => t.type)).to.deep.equal(['slow_close']);
    await api.removeToxic('down', 'linger');

    const { server } = await httpServer('up', port);
    servers.push(server);
    const answer = await rawGet(proxy.listen);
    expect(answer.bytes.toString(), 'the control: same proxy, upstream up').to.match(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nup$/);
  });

  it('disable refuses connections, enable accepts them again; reset removes every toxic and enables every proxy', async () => {
    const { server, address } = await httpServer('hello');
    servers.push(server);
    const proxy = await api.createProxy({ name: 'http-switch', upstream: address });
    expect((await rawGet(proxy.listen)).bytes.toString()).to.match(/hello$/);

    expect(await api.setProxyEnabled(proxy.name, false)).to.include({ enabled: false });
    const off = await rawGet(proxy.listen);
    expect(off).to.include({ ended: 'ECONNREFUSED' });
    expect(off.bytes.length).to.equal(0);

    expect(await api.setProxyEnabled(proxy.name, true)).to.include({ enabled: true, listen: proxy.listen });
    expect((await rawGet(proxy.listen)).bytes.toString()).to.match(/hello$/);

    await api.addToxic(proxy.name, { type: 'limit_data', name: 'cut', attributes: { bytes: 10 } });
    await api.setProxyEnabled(proxy.name, false);
    await api.reset();
    const after = await api.getProxy(proxy.name);
    expect(after).to.include({ enabled: true, listen: proxy.listen });
    expect(after.toxics).to.deep.equal([]);
    expect((await rawGet(proxy.listen)).bytes.toString()).to.match(/hello$/);
  });

  it('populate creates proxies, keeps an unchanged one and reads back where they listen', async () => {
    const { server, address } = await httpServer('populated');
    servers.push(server);
    const [a, b] = await api.populate([
      { name: 'pop-a', upstream: address },
      { name: 'pop-b', upstream: address },
    ]);
    expect(a?.listen).to.match(/^127\.0\.0\.1:[1-9]\d*$/);
    expect(b?.listen).to.match(/^127\.0\.0\.1:[1-9]\d*$/);
    expect((await rawGet(a!.listen)).bytes.toString()).to.match(/populated$/);

    await api.addToxic('pop-a', { type: 'latency', name: 'kept', attributes: { latency: 1 } });
    const [again] = await api.populate([{ name: 'pop-a', upstream: address, listen: a!.listen }]);
    expect(again).to.include({ listen: a!.listen });
    expect(again!.toxics.map((t) => t.name), 'unchanged: kept with its toxics').to.deep.equal(['kept']);
  });

  it('counts the bytes each proxy received from its clients (the proof that data met a toxic)', async () => {
    const { server, address } = await httpServer('counted');
    servers.push(server);
    const proxy = await api.createProxy({ name: 'counted', upstream: address });
    const before = (await api.receivedBytes())['counted'] ?? 0;
    await rawGet(proxy.listen);
    const after = (await api.receivedBytes())['counted'] ?? 0;
    expect(after - before, 'the request line and headers').to.be.greaterThan(20);
  });
});
