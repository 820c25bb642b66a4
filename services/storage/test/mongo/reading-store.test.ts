/**
 * ReadingStore against a real FerretDB: what the driver really throws when the
 * database fails mid-call must never be answered as stored.
 */
import { expect } from 'chai';
import { MongoBulkWriteError, MongoClient } from 'mongodb';
import {
  createMongoClient,
  deadline,
  isFerretDb,
  readingIndexesFor,
  readingsOfDocs,
  RANGE_INDEX,
  slotMinute,
  slotOf,
  stateBucket,
  unpackBucket,
  UnavailableError,
  COLLECTIONS,
  EPOCH_BACKFILL,
  FETCH_DOCUMENTS,
  READING_SLOTS,
  type SlotsRecord,
  type StateDoc,
} from '@flatline/platform';
import type { AppendBatch, ValidReading } from '../../src/domain/append-batch.ts';
import { INSERT_CHUNK, ReadingStore } from '../../src/mongo/reading-store.ts';
import { StateCompactor } from '../../src/mongo/state-compactor.ts';
import { startToxiproxy, tempDir, TestDatabase, type RunningToxiproxy } from '@flatline/stack';

const T0 = Date.parse('2026-11-29T08:00:00Z');

function batchOf(flatId: string, seqs: readonly number[], fetchedAtS = 100): AppendBatch {
  const readings: ValidReading[] = seqs.map((seq) => ({
    flatId,
    deviceId: 'heat',
    seq,
    takenAt: new Date(T0 + seq * 1000),
    quantity: 'temperature',
    unit: 'Cel',
    value: seq,
    epoch: 0,
  }));
  return { readings, results: [{ flatId, readings }], fetches: new Map([[flatId, new Date(T0 + fetchedAtS * 1000)]]), fetchCount: 1 };
}

async function outcomeOf<T>(p: Promise<T>): Promise<T | Error> {
  return p.then(
    (v) => v,
    (e: unknown) => e as Error,
  );
}

describe('ReadingStore (real FerretDB, in-process)', function () {
  this.timeout(60000);
  const dir = tempDir('reading-store');
  const db = new TestDatabase(`${dir.path}/ferretdb`);
  let client: MongoClient;
  let store: ReadingStore;

  before(async () => {
    await db.start();
    client = createMongoClient(db.uri, 1500);
    // The state writer's bound is far longer than the insert's: a frozen
    // database that thaws in time lets the state write succeed after the
    // insert already failed, which is exactly the window of the defect.
    store = new ReadingStore(client.db(), 10000);
    await store.ensureIndexes(5000);
  });

  after(async () => {
    db.freeze(false);
    await client?.close();
    await db.stop();
    dir.cleanup();
  });

  it('fails (UNAVAILABLE) an append whose insert timed out while the database was frozen, even when the state write succeeds after the thaw', async () => {
    await store.append(batchOf('frozen-1', [1]), 5000); // a warm pool: the frozen server holds open sockets
    const seqs = Array.from({ length: 200 }, (_, i) => i + 2);
    await db.freeze(true);
    const thaw = setTimeout(() => db.freeze(false), 3000);
    const started = Date.now();
    try {
      const res = await outcomeOf(store.append(batchOf('frozen-1', seqs, 101), 800));
      // Before the fix: {"inserted":0,"duplicates":0}, reported as stored.
      expect(res, `append answered ${JSON.stringify(res)} after ${Date.now() - started} ms`).to.be.instanceOf(UnavailableError);
      expect((res as Error).message).to.match(/insert readings/);
    } finally {
      clearTimeout(thaw);
      db.freeze(false);
    }
    // The retry the outbox makes stores every reading once.
    const retry = await store.append(batchOf('frozen-1', seqs, 101), 5000);
    expect(retry.inserted + retry.duplicates).to.equal(seqs.length);
    expect(await client.db().collection(COLLECTIONS.readings).countDocuments({ flat_id: 'frozen-1' })).to.equal(seqs.length + 1);
  });

  it('fails an append whose connection the database dropped mid-call (FerretDB killed), and stores it on retry', async () => {
    await store.append(batchOf('killed-1', [1]), 5000);
    const seqs = Array.from({ length: 2000 }, (_, i) => i + 2);
    const pending = outcomeOf(store.append(batchOf('killed-1', seqs, 101), 5000));
    await new Promise((r) => setTimeout(r, 5));
    await db.stop(); // SIGTERM closes the connection under the insert
    const res = await pending;
    await db.start();
    if (!(res instanceof Error)) {
      // The insert finished before the stop: then it really was stored whole.
      expect(res.inserted + res.duplicates).to.equal(seqs.length);
    } else {
      expect(res, res.message).to.be.instanceOf(UnavailableError);
    }
    const retry = await store.append(batchOf('killed-1', seqs, 101), 5000);
    expect(retry.inserted + retry.duplicates).to.equal(seqs.length);
    expect(await client.db().collection(COLLECTIONS.readings).countDocuments({ flat_id: 'killed-1' })).to.equal(seqs.length + 1);
  });

  it('counts duplicates only when every failed write is a duplicate key (a real MongoBulkWriteError)', async () => {
    expect(await store.append(batchOf('dup-1', [1, 2]), 5000)).to.deep.equal({ inserted: 2, duplicates: 0 });
    expect(await store.append(batchOf('dup-1', [1, 2, 3]), 5000)).to.deep.equal({ inserted: 1, duplicates: 2 });
  });

  it('stores every reading with its slot, "<flat>/<minute of taken_at>", found by an equality on slot', async () => {
    // seq 59 is taken at T0 + 59 s, seq 60 at T0 + 60 s: the last of one minute and the first of the next.
    await store.append(batchOf('slot-1', [59, 60]), 5000);
    const minute = Math.floor((T0 + 59_000) / 60_000);
    const readings = client.db().collection(COLLECTIONS.readings);
    const docs = await readings.find({ flat_id: 'slot-1' }, { projection: { _id: 0, seq: 1, slot: 1 } }).sort({ seq: 1 }).toArray();
    expect(docs).to.deep.equal([
      { seq: 59, slot: `slot-1/${minute}` },
      { seq: 60, slot: `slot-1/${minute + 1}` },
    ]);
    expect((await readings.find({ slot: `slot-1/${minute}` }).toArray()).map((d) => d['seq'])).to.deep.equal([59]);
  });

  it('drops the unique index of releases before epochs, which would refuse a new epoch\'s seq 1', async () => {
    const readings = client.db().collection(COLLECTIONS.readings);
    await readings.dropIndex('flat_device_epoch_seq');
    await readings.createIndex({ flat_id: 1, device_id: 1, seq: 1 }, { unique: true, name: 'flat_device_seq' });
    await store.ensureIndexes(5000);
    const names = (await readings.indexes()).map((i) => i.name);
    expect(names).to.include('flat_device_epoch_seq');
    expect(names).to.not.include('flat_device_seq');
    const first = batchOf('legacy-1', [1]);
    await store.append(first, 5000);
    const reset: AppendBatch = { ...first, readings: first.readings.map((r) => ({ ...r, epoch: 1 })) };
    expect(await store.append(reset, 5000)).to.deep.equal({ inserted: 1, duplicates: 0 });
  });

  it('gives readings stored before epochs epoch 0 once, then records it and skips the scan at later starts', async () => {
    const readings = client.db().collection(COLLECTIONS.readings);
    const migrations = client.db().collection(COLLECTIONS.migrations);
    const legacy = (seq: number) => ({ flat_id: 'pre-epoch-1', device_id: 'heat', seq, taken_at: new Date(), quantity: 'temperature', unit: 'Cel', value: 1, stored_at: new Date() });
    await migrations.deleteOne({ _id: EPOCH_BACKFILL as never });
    await readings.insertOne(legacy(1));
    await store.ensureIndexes(5000);
    expect((await readings.findOne({ flat_id: 'pre-epoch-1', seq: 1 }))?.['epoch'], 'backfilled at the first start').to.equal(0);
    expect(await migrations.findOne({ _id: EPOCH_BACKFILL as never }), 'recorded done').to.not.equal(null);
    // A later start does not scan again: a reading without epoch written now stays as it is.
    await readings.insertOne(legacy(2));
    await store.ensureIndexes(5000);
    expect((await readings.findOne({ flat_id: 'pre-epoch-1', seq: 2 }))?.['epoch'], 'no scan at a later start').to.equal(undefined);
    await readings.deleteMany({ flat_id: 'pre-epoch-1' });
  });

  it('records since when every reading has a slot: no time on a database with no reading, its start on one with readings, and the first record stands', async () => {
    const migrations = client.db().collection<SlotsRecord>(COLLECTIONS.migrations);
    // The first start (before()) found no reading.
    expect(await migrations.findOne({ _id: READING_SLOTS })).to.include.keys('done_at').and.not.include.keys('since');
    await store.ensureIndexes(5000);
    expect(await migrations.findOne({ _id: READING_SLOTS }), 'a later start keeps it').to.not.include.keys('since');
    // Upgrading a database that holds readings (some stored before slots): since is the start.
    await migrations.deleteOne({ _id: READING_SLOTS });
    await store.append(batchOf('slots-since', [1]), 5000);
    const before = Date.now();
    await store.ensureIndexes(5000);
    const since = (await migrations.findOne({ _id: READING_SLOTS }))?.since;
    expect(since?.getTime()).to.be.within(before - 1000, Date.now() + 1000);
    await new ReadingStore(client.db(), 10000).ensureIndexes(5000);
    expect((await migrations.findOne({ _id: READING_SLOTS }))?.since?.getTime(), 'another replica keeps it').to.equal(since?.getTime());
    await migrations.updateOne({ _id: READING_SLOTS }, { $unset: { since: '' } });
  });

  it('keeps the earliest taken_at of each flat in its state ($min), retries and late readings included', async () => {
    const state = client.db().collection<StateDoc>(COLLECTIONS.state);
    // Through the flat-state log, compacted into the buckets.
    const firstOf = async (flatId: string) => {
      await new StateCompactor(client.db(), 5000).compact(Date.now());
      const stored = await state.findOne({ _id: stateBucket(flatId) });
      return stored === null ? undefined : unpackBucket(stored).first?.[flatId]?.getTime();
    };
    await store.append(batchOf('first-1', [50, 60]), 5000);
    expect(await firstOf('first-1')).to.equal(T0 + 50_000);
    await store.append(batchOf('first-1', [70]), 5000);
    expect(await firstOf('first-1'), 'a later reading leaves it').to.equal(T0 + 50_000);
    await store.append(batchOf('first-1', [10, 50]), 5000);
    expect(await firstOf('first-1'), 'a late one lowers it').to.equal(T0 + 10_000);
  });

  it('with fetch documents: one per fetch result and minute, a retry all duplicates, and readings taken before the slot record\'s since one document each (query reads them the old way)', async () => {
    const db = client.db('fetch-docs');
    const since = T0 + 30_000;
    // A database that held readings before slots: its record has a since.
    await db.collection<SlotsRecord>(COLLECTIONS.migrations).insertOne({ _id: READING_SLOTS, since: new Date(since), done_at: new Date() });
    const fetchStore = new ReadingStore(db, 10000, { fetchDocuments: true });
    // Before ensureIndexes it has no since to go by: it takes no Append.
    expect(await outcomeOf(fetchStore.append(batchOf('fd-1', [40]), 5000))).to.be.instanceOf(UnavailableError);
    await fetchStore.ensureIndexes(5000);
    expect(await db.collection(COLLECTIONS.migrations).findOne({ _id: FETCH_DOCUMENTS as never }), 'the record query goes by').to.have.property('since');
    // Seqs 20..29 are taken before since (T0 + seq s), 30..99 after, over two minutes.
    const batch = batchOf('fd-1', Array.from({ length: 80 }, (_, i) => 20 + i));
    expect(await fetchStore.append(batch, 5000)).to.deep.equal({ inserted: 80, duplicates: 0 });
    expect(await fetchStore.append(batch, 5000), 'a retry').to.deep.equal({ inserted: 0, duplicates: 80 });
    const docs = await db.collection(COLLECTIONS.readings).find({}).toArray();
    const old = docs.filter((d) => d['readings_json'] === undefined);
    expect(old.map((d) => d['seq'] as number).sort((a, b) => a - b), 'one document each, with their fields').to.deep.equal(Array.from({ length: 10 }, (_, i) => 20 + i));
    const packed = docs.filter((d) => typeof d['readings_json'] === 'string');
    expect(packed.map((d) => d['slot']).sort()).to.deep.equal([...new Set(Array.from({ length: 70 }, (_, i) => slotOf('fd-1', slotMinute(T0 + (30 + i) * 1000))))].sort());
    expect(readingsOfDocs(packed as never).map((r) => r.seq)).to.deep.equal(Array.from({ length: 70 }, (_, i) => 30 + i));
  });

  it('creates its indexes again when they exist (every replica but the first does; FerretDB panicked on a createIndexes of both)', async () => {
    await store.ensureIndexes(5000);
    await new ReadingStore(client.db(), 10000).ensureIndexes(5000);
    const names = (await client.db().collection(COLLECTIONS.readings).indexes()).map((i) => i.name);
    expect(names).to.include('flat_device_epoch_seq');
  });

  it('keeps no range index on FerretDB, which reads with none (one an earlier release made is dropped); MongoDB gets it', async () => {
    const readings = client.db().collection(COLLECTIONS.readings);
    expect(await isFerretDb(client.db(), 5000), 'the test server is FerretDB').to.equal(true);
    await readings.createIndex({ flat_id: 1, taken_at: 1, device_id: 1, seq: 1 }, { name: RANGE_INDEX });
    await store.ensureIndexes(5000);
    const names = (await readings.indexes()).map((i) => i.name);
    expect(names).to.include('flat_device_epoch_seq');
    expect(names).to.not.include(RANGE_INDEX);
    // Still unique without it: a retry stores nothing twice.
    const batch = batchOf('no-range-1', [1, 2]);
    expect(await store.append(batch, 5000)).to.deep.equal({ inserted: 2, duplicates: 0 });
    expect(await store.append(batch, 5000)).to.deep.equal({ inserted: 0, duplicates: 2 });
    expect(readingIndexesFor({ ferretdb: false }).map((i) => i.name)).to.deep.equal(['flat_device_epoch_seq', RANGE_INDEX]);
  });

  it('the driver really wraps a network failure in a MongoBulkWriteError with no write errors (why the check must be strict)', async () => {
    // Documents the driver's behaviour the fix relies on: if this ever stops
    // holding, the test above still guards the outcome.
    const probe = createMongoClient(db.uri, 800);
    try {
      await probe.db().collection('probe').insertOne({ warm: true });
      await db.freeze(true);
      const err = await outcomeOf(probe.db().collection('probe').insertMany([{ a: 1 }, { a: 2 }], { ordered: false, timeoutMS: 500 }));
      expect(err).to.be.instanceOf(MongoBulkWriteError);
      expect((err as MongoBulkWriteError).writeErrors).to.have.length(0);
      expect((err as MongoBulkWriteError).writeConcernError).to.equal(undefined);
    } finally {
      db.freeze(false);
      await probe.close();
    }
  });
});

describe('ReadingStore: a batch larger than one bound can cover (real FerretDB behind a Toxiproxy bandwidth limit)', function () {
  this.timeout(90000);
  const dir = tempDir('reading-store-chunks');
  const db = new TestDatabase(`${dir.path}/ferretdb`);
  let toxiproxy: RunningToxiproxy;
  let client: MongoClient;
  let store: ReadingStore;

  before(async () => {
    await db.start();
    await new ReadingStore(createMongoClient(db.uri, 5000).db(), 5000).ensureIndexes(5000);
    toxiproxy = await startToxiproxy({ logFile: `${dir.path}/toxiproxy.log` });
    const proxy = await toxiproxy.client.createProxy({ name: 'db', upstream: new URL(db.uri).host });
    client = createMongoClient(`mongodb://${proxy.listen}/flatline`, 20000);
    store = new ReadingStore(client.db(), 20000);
    await store.append(batchOf('warm-1', [1]), 5000);
  });

  after(async () => {
    await client?.close();
    await toxiproxy?.process.stop();
    await db.stop();
    dir.cleanup();
  });

  it(`stores 5,000 readings, ${INSERT_CHUNK} per insert each within the bound, where one insertMany of them all is cut at its deadline`, async () => {
    const seqs = Array.from({ length: 5000 }, (_, i) => i + 1);
    const batch = batchOf('chunked-1', seqs);
    // About 150 bytes a reading: 200 KB/s takes ~0.75 s a chunk and ~3.8 s for all of them, against a 2 s bound.
    await toxiproxy.client.addToxic('db', { type: 'bandwidth', stream: 'upstream', attributes: { rate: 200 } });
    // The control: the same documents in one insertMany, with the same bound, do not go in.
    const docs = batch.readings.map((r) => ({ flat_id: 'whole-1', device_id: r.deviceId, epoch: 0, seq: r.seq, taken_at: r.takenAt, quantity: r.quantity, unit: r.unit, value: r.value, stored_at: new Date() }));
    const whole = await outcomeOf(client.db().collection(COLLECTIONS.readings).insertMany(docs, deadline(2000, { ordered: false })));
    expect(whole, 'one insertMany of 5,000 readings within 2 s at 200 KB/s').to.be.instanceOf(Error);

    const outcome = await outcomeOf(store.append(batch, 2000));
    expect(outcome, outcome instanceof Error ? outcome.message : '').to.deep.equal({ inserted: seqs.length, duplicates: 0 });
    await toxiproxy.client.reset();
    expect(await client.db().collection(COLLECTIONS.readings).countDocuments({ flat_id: 'chunked-1' })).to.equal(seqs.length);
  });
});
