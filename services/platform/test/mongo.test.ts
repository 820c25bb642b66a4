/** The services' MongoDB client against a real FerretDB that is down when the client starts. */
import { expect } from 'chai';
import { join } from 'node:path';
import { MongoClient, type Db } from 'mongodb';
import { createMongoClient, deadline, guard, isUnreachable, PING_FLOOR_MS, STUCK_AFTER_PINGS, watchDatabase } from '../src/mongo.ts';
import { createLogger } from '../src/logger.ts';
import { UnavailableError } from '../src/status.ts';
import { eventually, startToxiproxy, tempDir, TestDatabase, type RunningToxiproxy } from '@flatline/stack';

async function tryUpsert(client: MongoClient): Promise<string> {
  try {
    await client.db().collection<{ _id: number; a: number }>('probe').updateOne({ _id: 1 }, { $set: { a: 1 } }, deadline(500, { upsert: true }));
    return 'ok';
  } catch (err) {
    return isUnreachable(err) ? 'unreachable' : (err as Error).name;
  }
}

describe('createMongoClient (real FerretDB)', function () {
  this.timeout(60000);
  const dir = tempDir('platform-mongo');
  const db = new TestDatabase(join(dir.path, 'db'));

  after(async () => {
    await db.stop();
    dir.cleanup();
  });

  it('connects once the database comes up, although its first operations ran while it was down', async () => {
    await db.start(); // fixes the port
    await db.stop();
    const client = createMongoClient(db.uri, 500);
    try {
      expect(await tryUpsert(client)).to.equal('unreachable');
      expect(await tryUpsert(client)).to.not.equal('ok');
      await db.start();
      // mongodb 7.9 on its own answers MongoTopologyClosedError here for ever
      // (the closed topology of the failed first connect is kept).
      let last = '';
      for (let i = 0; i < 20 && last !== 'ok'; i++) {
        last = await tryUpsert(client);
        if (last !== 'ok') await new Promise((r) => setTimeout(r, 250));
      }
      expect(last).to.equal('ok');
    } finally {
      await client.close();
    }
  });
});

describe('deadline(): the bound of one database operation (real FerretDB behind a Toxiproxy black hole)', function () {
  this.timeout(90000);
  const dir = tempDir('platform-deadline');
  const db = new TestDatabase(join(dir.path, 'db'));
  let toxiproxy: RunningToxiproxy;
  let client: MongoClient;

  /** Settles p within waitMs: its outcome (an error's class, or 'ok') and when, or 'pending'. */
  async function outcomeWithin(p: Promise<unknown>, waitMs: number): Promise<{ outcome: string; ms: number }> {
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      p.then(
        () => 'ok',
        (err: unknown) => (err instanceof UnavailableError ? 'UnavailableError' : `${(err as Error).name}: ${(err as Error).message}`),
      ),
      new Promise<string>((resolve) => (timer = setTimeout(() => resolve('pending'), waitMs))),
    ]);
    clearTimeout(timer);
    return { outcome, ms: Date.now() - started };
  }

  before(async () => {
    await db.start();
    toxiproxy = await startToxiproxy({ logFile: join(dir.path, 'toxiproxy.log') });
    const proxy = await toxiproxy.client.createProxy({ name: 'db', upstream: new URL(db.uri).host });
    // A client whose own detection is slow (20 s to connect, to select a
    // server): whatever ends an operation within a few seconds is its deadline.
    client = createMongoClient(`mongodb://${proxy.listen}/flatline`, 20000);
    await client.db().collection('deadline').insertOne({ _id: 'seed' as never, n: 0 });
  });

  after(async () => {
    await client?.close();
    await toxiproxy?.process.stop();
    await db.stop();
    dir.cleanup();
  });

  afterEach(async () => {
    await toxiproxy.client.reset();
  });

  const items = () => client.db().collection<{ _id: string; n: number }>('deadline');
  const ops: Record<string, (timeoutMs: number | undefined) => Promise<unknown>> = {
    'ping (command)': (ms) => client.db().command({ ping: 1 }, ms === undefined ? {} : deadline(ms)),
    findOne: (ms) => items().findOne({ _id: 'seed' }, ms === undefined ? {} : deadline(ms)),
    'find().toArray()': (ms) => items().find({}, ms === undefined ? {} : deadline(ms)).toArray(),
    insertMany: (ms) => items().insertMany([{ _id: `m-${Date.now()}`, n: 1 }], deadline(ms ?? 0, { ordered: false })),
    'updateOne (upsert)': (ms) => items().updateOne({ _id: 'seed' }, { $inc: { n: 1 } }, deadline(ms ?? 0, { upsert: true })),
  };

  for (const [name, op] of Object.entries(ops)) {
    it(`${name}: ends UNAVAILABLE at its deadline while the database answers nothing, instead of hanging`, async () => {
      expect((await outcomeWithin(guard(name, () => op(1000)), 10000)).outcome, 'without the fault').to.equal('ok');
      await toxiproxy.client.addToxic('db', { type: 'timeout', name: 'black-hole', attributes: { timeout: 0 } });
      const bounded = await outcomeWithin(guard(name, () => op(500)), 6000);
      expect(bounded.outcome, `after ${bounded.ms} ms`).to.equal('UnavailableError');
    });
  }

  it('the negative control: without a deadline (timeoutMS alone, a no-op) the same read is still waiting at 5 s', async () => {
    await toxiproxy.client.addToxic('db', { type: 'timeout', name: 'black-hole', attributes: { timeout: 0 } });
    const unbounded = await outcomeWithin(items().findOne({ _id: 'seed' }, { timeoutMS: 500 }), 5000);
    expect(unbounded.outcome).to.equal('pending');
  });
});

describe('watchDatabase', function () {
  this.timeout(30000);

  it('keeps pinging when a ping never settles: it counts as failed once its deadline and a grace pass, and the next ping can say the database is back', async () => {
    let calls = 0;
    // The first ping hangs for ever whatever its abort signal says, as a wedged driver would; the next ones answer.
    const db = { command: () => (++calls === 1 ? new Promise(() => {}) : Promise.resolve({ ok: 1 })) } as unknown as Db;
    const seen: boolean[] = [];
    const logger = createLogger('test', 'silent');
    const sub = watchDatabase(db, { intervalMs: 100, timeoutMs: 100, logger, uri: 'mongodb://127.0.0.1:1/x' }, (up) => void seen.push(up));
    try {
      await eventually('the watch to report the database back after the hung ping', async () => seen.includes(true), 15000, 100);
      expect(seen[0], 'the hung ping counts as a failure').to.equal(false);
      expect(calls).to.be.at.least(2);
    } finally {
      sub.unsubscribe();
    }
  });
});

describe('watchDatabase with its client: a client stuck while the database answers others (real FerretDB)', function () {
  this.timeout(60000);
  const dir = tempDir('platform-stuck');
  const db = new TestDatabase(join(dir.path, 'db'));
  const logger = createLogger('test', process.env['DEBUG_STUCK'] ? 'debug' : 'silent');
  before(() => db.start());
  after(async () => {
    await db.stop();
    dir.cleanup();
  });

  /** A connected client whose topology fails every server selection, as a wedged driver would; close() makes it connect afresh. */
  async function wedgedClient(): Promise<{ client: MongoClient; closes: () => number }> {
    const client = createMongoClient(db.uri, 500);
    await client.db().command({ ping: 1 }, deadline(5000));
    const topology = (client as unknown as { topology: { selectServer: () => Promise<never> } }).topology;
    topology.selectServer = () => Promise.reject(new Error('server selection wedged (test)'));
    let closes = 0;
    client.on('topologyClosed', () => closes++);
    return { client, closes: () => closes };
  }

  it(`drops the connections of a client that failed ${STUCK_AFTER_PINGS} pings while a fresh client reaches the database; the next ping finds it back`, async () => {
    const { client, closes } = await wedgedClient();
    const seen: boolean[] = [];
    const sub = watchDatabase(client.db(), { intervalMs: 50, timeoutMs: 500, logger, uri: db.uri, client }, (up) => void seen.push(up));
    try {
      await eventually('the watch to find the database back through the same client', async () => seen.at(-1) === true && seen.includes(false), 30000, 100);
      expect(seen.filter((up) => !up).length, 'failed pings before the reset').to.be.at.least(STUCK_AFTER_PINGS);
      expect(closes()).to.equal(1);
      // The same Db object works again: the services hold it, not the client.
      expect((await client.db().command({ ping: 1 }, deadline(5000)))['ok']).to.equal(1);
    } finally {
      sub.unsubscribe();
      await client.close();
    }
  });

  it('the negative control: without its client the watch reports the wedged client down for good', async () => {
    const { client, closes } = await wedgedClient();
    const seen: boolean[] = [];
    const sub = watchDatabase(client.db(), { intervalMs: 50, timeoutMs: 500, logger, uri: db.uri }, (up) => void seen.push(up));
    try {
      await eventually('40 pings', async () => seen.length >= 40, 30000, 100);
      expect(seen.includes(true)).to.equal(false);
      expect(closes()).to.equal(0);
    } finally {
      sub.unsubscribe();
      await client.close();
    }
  });

  it('leaves the client alone while the database is really away (a fresh client fails too)', async () => {
    const client = createMongoClient(db.uri, 500);
    let closes = 0;
    client.on('topologyClosed', () => closes++);
    await client.db().command({ ping: 1 }, deadline(5000));
    await db.stop();
    const seen: boolean[] = [];
    const sub = watchDatabase(client.db(), { intervalMs: 50, timeoutMs: 500, logger, uri: db.uri, client }, (up) => void seen.push(up));
    try {
      // Long enough for two fresh clients (one per PING_FLOOR_MS) to fail.
      await new Promise((r) => setTimeout(r, 2 * PING_FLOOR_MS + 2000));
      expect(seen.length).to.be.at.least(2 * STUCK_AFTER_PINGS);
      expect(seen.includes(true)).to.equal(false);
      expect(closes).to.equal(0);
    } finally {
      sub.unsubscribe();
      await client.close();
      await db.start();
    }
  });
});
