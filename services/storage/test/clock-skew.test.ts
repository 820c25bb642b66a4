import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MongoClient } from 'mongodb';
import { Registry } from 'prom-client';
import type { StorageServiceClient, AppendRequest, AppendResponse, QueryServiceClient } from '@flatline/proto';
import { unaryCall, type GrpcHost, type UnaryHandler, type Logger } from '@flatline/platform';
import { type StartedServer, ServicesFixture } from '@flatline/stack';
import { loadConfig } from '../src/config.ts';
import type { ReadingStore } from '../src/mongo/reading-store.ts';
import { storageService } from '../src/storage-service.ts';

const HOUR_MS = 3600000;

function reading(flatId: string, seq: number, takenAt: Date) {
  return { flatId, deviceId: 'heat', seq: String(seq), takenAt, quantity: 'temperature', unit: 'Cel', value: 20 + seq, epoch: 0 };
}

describe('storage: a fetch time ahead of its clock (a replica with a fast clock; real FerretDB, storage and query in-process)', function () {
  this.timeout(60000);
  const services = new ServicesFixture('clock-skew', { storage: { FLATLINE_MAX_CLOCK_SKEW_MS: '5000' }, query: { FLATLINE_QUERY_SNAPSHOT_MS: '0' } });
  let storage: StartedServer;
  let client: StorageServiceClient;
  let queryClient: QueryServiceClient;
  let mongo: MongoClient;
  let dir: { path: string };

  before(async () => {
    await services.start();
    ({ storage, storageClient: client, queryClient, mongo, dir } = services);
  });

  after(() => services.stop());

  it('stores the readings of a fetch 1 h ahead, but does not take its time as the last fetch, and counts it', async () => {
    const now = Date.now();
    const before = new Date(now - 10000);
    const future = new Date(now + HOUR_MS);
    const append = (fetchedAt: Date, readings: ReturnType<typeof reading>[]) =>
      unaryCall(client, client.append, { fetches: [{ flatId: 'skew-1', fetchedAt, readings }] }, 10000);

    expect(await append(before, [reading('skew-1', 1, new Date(now - 11000))])).to.deep.equal({ inserted: 1, duplicates: 0, fetches: 1 });
    // Refusing the time must not refuse the call: the readings are valid and ingestion deletes them on OK.
    expect(await append(future, [reading('skew-1', 2, new Date(now - 1000)), reading('skew-1', 3, new Date(now))])).to.deep.equal({ inserted: 2, duplicates: 0, fetches: 1 });

    // Counted in the database itself, not through the service.
    const stored = await mongo.db().collection('readings').find({ flat_id: 'skew-1' }).sort({ seq: 1 }).toArray();
    expect(stored.map((d) => d['seq'])).to.deep.equal([1, 2, 3]);

    const latest = await unaryCall(queryClient, queryClient.getLatest, { flatId: 'skew-1' }, 5000);
    expect(latest.lastFetchAt?.toISOString(), 'last fetch').to.equal(before.toISOString());
    expect(latest.readings.map((r) => r.seq), 'latest reading').to.deep.equal(['3']);

    const metrics = await (await fetch(`http://${storage.metrics}/metrics`)).text();
    expect(metrics.split('\n').filter((l) => l.startsWith('flatline_storage_future_fetches_total'))).to.deep.equal([
      'flatline_storage_future_fetches_total{service="storage"} 1',
    ]);

    // Said once in the log, with the flat and by how much.
    const warned = readFileSync(join(dir.path, 'storage.log'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"flatId":"skew-1"') && l.includes('aheadMs'));
    expect(warned, 'log lines naming the flat and the skew').to.have.length(1);
    expect((JSON.parse(warned[0]!) as { aheadMs: number }).aheadMs).to.be.within(HOUR_MS - 60000, HOUR_MS);
  });
});

describe('storage: FLATLINE_MAX_CLOCK_SKEW_MS', () => {
  it('is 5000 ms unless set, and names itself when out of bounds or not a number', () => {
    expect(loadConfig({}).maxClockSkewMs).to.equal(5000);
    expect(loadConfig({ FLATLINE_MAX_CLOCK_SKEW_MS: '60000' }).maxClockSkewMs).to.equal(60000);
    for (const bad of ['99', '60001', '-1', 'soon']) {
      expect(() => loadConfig({ FLATLINE_MAX_CLOCK_SKEW_MS: bad }), bad).to.throw(/^FLATLINE_MAX_CLOCK_SKEW_MS: expected .*100 to 60000/);
    }
  });
});

describe('storage service: counting and logging refused fetch times (in-process, fake store)', () => {
  const T = new Date('2026-11-30T10:00:00Z').getTime();
  let clockMs = T;
  let failNext = false;
  const warnings: Array<Record<string, unknown>> = [];
  const registry = new Registry();
  const host = { unary: (_method: string, handler: unknown) => handler } as unknown as GrpcHost;
  const store = {
    append: async () => {
      if (failNext) throw new Error('database said no');
      return { inserted: 1, duplicates: 0 };
    },
  } as unknown as ReadingStore;
  const logger = { warn: (fields: Record<string, unknown>) => void warnings.push(fields) } as unknown as Logger;
  const service = storageService({
    host,
    store,
    dbTimeoutMs: 1000,
    isDatabaseUp: () => true,
    onUnavailable: () => undefined,
    maxClockSkewMs: 5000,
    registry,
    logger,
    now: () => new Date(clockMs),
  });
  const append = service.append as unknown as UnaryHandler<AppendRequest, AppendResponse>;
  const call = (flatId: string, aheadMs: number) =>
    append({ fetches: [{ flatId, fetchedAt: new Date(clockMs + aheadMs), readings: [] }] }, { deadline: undefined, signal: new AbortController().signal });
  const counted = async () => (await registry.getSingleMetric('flatline_storage_future_fetches_total')!.get()).values[0]?.value;

  it('counts every refused fetch time once stored, not a failed Append, and logs at most once a minute', async () => {
    await call('a', HOUR_MS);
    await call('b', 2 * HOUR_MS);
    await call('c', 1000); // within the skew: not refused
    failNext = true;
    await call('d', HOUR_MS).catch(() => undefined);
    failNext = false;
    expect(await counted()).to.equal(2);
    expect(warnings.map((w) => [w['flatId'], w['aheadMs']])).to.deep.equal([['a', HOUR_MS]]);
    clockMs += 60000;
    await call('e', 10000);
    expect(await counted()).to.equal(3);
    expect(warnings.map((w) => [w['flatId'], w['aheadMs'], w['refusedSinceLastLog']])).to.deep.equal([
      ['a', HOUR_MS, 0],
      ['e', 10000, 1],
    ]);
  });
});
