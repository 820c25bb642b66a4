import { expect } from 'chai';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { MongoClient } from 'mongodb';
import type { StorageServiceClient, AppendRequest, QueryServiceClient } from '@flatline/proto';
import { checkHealth, unaryCall } from '@flatline/platform';
import { type StartedServer, eventually, ServicesFixture } from '@flatline/stack';

const T0 = new Date('2026-11-29T08:00:00Z');
const at = (s: number): Date => new Date(T0.getTime() + s * 1000);

function reading(flatId: string, deviceId: string, seq: number, value = seq) {
  return { flatId, deviceId, seq: String(seq), takenAt: at(seq), quantity: 'temperature', unit: 'Cel', value, epoch: 0 };
}

describe('storage service (real FerretDB, storage in-process)', function () {
  this.timeout(60000);
  const services = new ServicesFixture('storage', { query: { FLATLINE_QUERY_SNAPSHOT_MS: '0' } });
  const db = services.db;
  let storage: StartedServer;
  let client: StorageServiceClient;
  let queryClient: QueryServiceClient;
  let mongo: MongoClient;

  const append = (req: AppendRequest, deadlineMs = 10000) => unaryCall(client, client.append, req, deadlineMs);

  before(async () => {
    await services.start();
    ({ storage, storageClient: client, queryClient, mongo } = services);
  });

  after(() => services.stop());

  it('stores one copy when the same batch is appended twice, and counts the duplicates', async () => {
    const batch: AppendRequest = { fetches: [{ flatId: 'dup-1', fetchedAt: at(10), readings: [reading('dup-1', 'heat', 1), reading('dup-1', 'heat', 2), reading('dup-1', 'power', 1)] }] };
    expect(await append(batch)).to.deep.equal({ inserted: 3, duplicates: 0, fetches: 1 });
    expect(await append(batch)).to.deep.equal({ inserted: 0, duplicates: 3, fetches: 1 });
    // A batch that overlaps: one new reading, one known.
    const overlap: AppendRequest = { fetches: [{ flatId: 'dup-1', fetchedAt: at(11), readings: [reading('dup-1', 'heat', 2), reading('dup-1', 'heat', 3)] }] };
    expect(await append(overlap)).to.deep.equal({ inserted: 1, duplicates: 1, fetches: 1 });
    // Count in the database itself, not through the service.
    const stored = await mongo.db().collection('readings').find({ flat_id: 'dup-1' }).sort({ device_id: 1, seq: 1 }).toArray();
    expect(stored.map((d) => `${d['device_id']}#${d['seq']}`)).to.deep.equal(['heat#1', 'heat#2', 'heat#3', 'power#1']);
  });

  it('stores a reset meter\'s new epoch beside its old readings, and shows the new epoch as latest', async () => {
    const r = (seq: number, epoch: number) => ({ ...reading('epoch-1', 'heat', seq), epoch });
    expect(await append({ fetches: [{ flatId: 'epoch-1', fetchedAt: at(10), readings: [r(1, 0), r(2, 0), r(3, 0)] }] })).to.deep.equal({ inserted: 3, duplicates: 0, fetches: 1 });
    // The meter was replaced: its seq starts again, in epoch 1.
    expect(await append({ fetches: [{ flatId: 'epoch-1', fetchedAt: at(11), readings: [r(1, 1), r(2, 1)] }] })).to.deep.equal({ inserted: 2, duplicates: 0, fetches: 1 });
    expect(await append({ fetches: [{ flatId: 'epoch-1', fetchedAt: at(12), readings: [r(2, 1)] }] })).to.deep.equal({ inserted: 0, duplicates: 1, fetches: 1 });
    const stored = await mongo.db().collection('readings').find({ flat_id: 'epoch-1' }).sort({ epoch: 1, seq: 1 }).toArray();
    expect(stored.map((d) => `${(d['epoch'] as number | undefined) ?? 0}#${d['seq']}`)).to.deep.equal(['0#1', '0#2', '0#3', '1#1', '1#2']);
    const latest = await unaryCall(queryClient, queryClient.getLatest, { flatId: 'epoch-1' }, 5000);
    expect(latest.readings.map((x) => [x.epoch, x.seq])).to.deep.equal([[1, '2']]);
  });

  it('answers INVALID_ARGUMENT to an epoch beyond 999999', async () => {
    const err = (await append({ fetches: [{ flatId: 'epoch-2', fetchedAt: at(1), readings: [{ ...reading('epoch-2', 'd', 1), epoch: 1_000_000 }] }] }).then(
      () => undefined,
      (e: unknown) => e,
    )) as ServiceError | undefined;
    expect(err?.code).to.equal(status.INVALID_ARGUMENT);
    expect(err?.details).to.match(/readings\[0\]\.epoch must be from 0 to 999999/);
  });

  // query reads the database per call here (FLATLINE_QUERY_SNAPSHOT_MS=0): these check what storage wrote.
  it('keeps the highest seq as latest even when an older reading arrives last', async () => {
    await append({ fetches: [{ flatId: 'late-1', fetchedAt: at(20), readings: [reading('late-1', 'heat', 5, 50)] }] });
    await append({ fetches: [{ flatId: 'late-1', fetchedAt: at(21), readings: [reading('late-1', 'heat', 4, 40)] }] });
    const latest = await unaryCall(queryClient, queryClient.getLatest, { flatId: 'late-1' }, 5000);
    expect(latest.readings.map((r) => [r.seq, r.value])).to.deep.equal([['5', 50]]);
  });

  it('orders latest by seq as a number (9 < 10) and keeps device ids with dots apart', async () => {
    await append({ fetches: [{ flatId: 'order-1', fetchedAt: at(20), readings: [reading('order-1', 'heat.a', 10, 10), reading('order-1', 'heat', 9, 9)] }] });
    await append({ fetches: [{ flatId: 'order-1', fetchedAt: at(21), readings: [reading('order-1', 'heat.a', 9, 9), reading('order-1', 'heat', 10, 10)] }] });
    const latest = await unaryCall(queryClient, queryClient.getLatest, { flatId: 'order-1' }, 5000);
    expect(latest.readings.map((r) => [r.deviceId, r.seq])).to.deep.equal([['heat', '10'], ['heat.a', '10']]);
  });

  it('records a fetch with no readings, and never moves the last fetch backwards', async () => {
    await append({ fetches: [{ flatId: 'empty-1', fetchedAt: at(30), readings: [] }] });
    await append({ fetches: [{ flatId: 'empty-1', fetchedAt: at(25), readings: [] }] });
    const latest = await unaryCall(queryClient, queryClient.getLatest, { flatId: 'empty-1' }, 5000);
    expect(latest.lastFetchAt?.toISOString()).to.equal(at(30).toISOString());
  });

  const bad: Array<[string, AppendRequest, RegExp]> = [
    ['no fetch results', { fetches: [] }, /fetches must hold 1 to 1000/],
    ['a malformed flat id', { fetches: [{ flatId: 'a b', fetchedAt: at(1), readings: [] }] }, /fetches\[0\]\.flat_id must be/],
    ['a missing fetch time', { fetches: [{ flatId: 'f', fetchedAt: undefined, readings: [] }] }, /fetches\[0\]\.fetched_at is required/],
    ['a reading of another flat', { fetches: [{ flatId: 'f', fetchedAt: at(1), readings: [reading('g', 'd', 1)] }] }, /readings\[0\]\.flat_id must equal/],
    ['seq 0', { fetches: [{ flatId: 'f', fetchedAt: at(1), readings: [{ ...reading('f', 'd', 1), seq: '0' }] }] }, /readings\[0\]\.seq must be from 1/],
    ['an empty device id', { fetches: [{ flatId: 'f', fetchedAt: at(1), readings: [{ ...reading('f', 'd', 1), deviceId: '' }] }] }, /device_id is required/],
    ['a missing reading time', { fetches: [{ flatId: 'f', fetchedAt: at(1), readings: [{ ...reading('f', 'd', 1), takenAt: undefined }] }] }, /taken_at is required/],
  ];
  for (const [what, request, message] of bad) {
    it(`answers INVALID_ARGUMENT to ${what}`, async () => {
      const err = (await append(request).then(() => undefined, (e: unknown) => e)) as ServiceError | undefined;
      expect(err?.code, err?.message).to.equal(status.INVALID_ARGUMENT);
      expect(err?.details).to.match(message);
    });
  }

  it('answers UNAVAILABLE within its bound while FerretDB is down, turns NOT_SERVING, and recovers by itself', async () => {
    await db.stop();
    const batch: AppendRequest = { fetches: [{ flatId: 'outage-1', fetchedAt: at(40), readings: [reading('outage-1', 'heat', 1)] }] };
    // The client's deadline (10 s) is far beyond the service's bound (1.5 s):
    // a service that hung would end in DEADLINE_EXCEEDED, not UNAVAILABLE.
    const err = (await append(batch, 10000).then(() => undefined, (e: unknown) => e)) as ServiceError | undefined;
    expect(err?.code, err?.message).to.equal(status.UNAVAILABLE);
    await eventually('storage to answer NOT_SERVING', async () => (await checkHealth(storage.grpc)) === 'NOT_SERVING', 10000);
    expect(await checkHealth(storage.grpc, 'flatline.storage.v1.StorageService')).to.equal('NOT_SERVING');

    await db.start();
    await eventually('storage to answer SERVING again', async () => (await checkHealth(storage.grpc)) === 'SERVING', 15000);
    expect(await append(batch)).to.deep.equal({ inserted: 1, duplicates: 0, fetches: 1 });
  });

  it('answers UNAVAILABLE rather than hang while FerretDB is frozen (SIGSTOP), and recovers when it thaws', async () => {
    // Warm the connection pool so that the frozen server holds open sockets.
    await append({ fetches: [{ flatId: 'frozen-1', fetchedAt: at(50), readings: [] }] });
    await db.freeze(true);
    try {
      const batch: AppendRequest = { fetches: [{ flatId: 'frozen-1', fetchedAt: at(51), readings: [reading('frozen-1', 'heat', 1)] }] };
      // A frozen database refuses nothing: only the service's own bound (1.5 s)
      // can end the call before the client's deadline (10 s).
      const err = (await append(batch, 10000).then(() => undefined, (e: unknown) => e)) as ServiceError | undefined;
      expect(err?.code, err?.message).to.equal(status.UNAVAILABLE);
      await eventually('storage to answer NOT_SERVING', async () => (await checkHealth(storage.grpc)) === 'NOT_SERVING', 10000);
    } finally {
      db.freeze(false);
    }
    await eventually('storage to answer SERVING again', async () => (await checkHealth(storage.grpc)) === 'SERVING', 15000);
    const res = await append({ fetches: [{ flatId: 'frozen-1', fetchedAt: at(52), readings: [reading('frozen-1', 'heat', 1)] }] });
    expect(res.inserted + res.duplicates).to.equal(1);
  });
});
