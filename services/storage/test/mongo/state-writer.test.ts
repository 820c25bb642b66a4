/**
 * The flat-state writer, compactor and pruner against a real FerretDB: a
 * round is a log document, compaction moves it into the buckets without
 * losing what it cannot write and one process at a time, a failed round
 * leaves no hole, and the state stays bounded.
 */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { Binary, BSON, type MongoClient } from 'mongodb';
import { createLogger, createMongoClient, COLLECTIONS, decodeLatest, deviceKey, encodeBucketChange, encodeLatest, logChanges, stateBucket, unpackBucket, stateLogId, STATE_LOG_COLLECTIONS, type StateDoc, type StateLogDoc, type StoredBucket, type StateWriterDoc } from '@flatline/platform';
import { StateCompactor, withBucketLock } from '../../src/mongo/state-compactor.ts';
import { StatePruner } from '../../src/mongo/state-pruner.ts';
import { StateWriter, type StateUpdate } from '../../src/mongo/state-writer.ts';
import { tempDir, TestDatabase } from '@flatline/stack';

const NOW = Date.parse('2026-11-29T08:00:00Z');
const HOUR = 3600_000;

function update(flatId: string, deviceId: string, seq: number, takenAtMs = NOW): StateUpdate {
  return {
    fetches: new Map([[flatId, new Date(takenAtMs)]]),
    latest: [{ flatId, deviceId, value: { epoch: 0, seq, takenAtMs, value: seq, quantity: 'temperature', unit: 'Cel' } }],
  };
}

/** Two flat ids in different buckets. */
function twoBuckets(prefix: string): [string, string] {
  const a = `${prefix}-0`;
  for (let i = 1; i < 1000; i++) if (stateBucket(`${prefix}-${i}`) !== stateBucket(a)) return [a, `${prefix}-${i}`];
  throw new Error('no second bucket');
}

async function settle(p: Promise<unknown>): Promise<'ok' | Error> {
  return p.then(
    () => 'ok' as const,
    (e: unknown) => e as Error,
  );
}

describe('flat state: writer and pruner (real FerretDB)', function () {
  this.timeout(60000);
  const dir = tempDir('state-writer');
  const db = new TestDatabase(`${dir.path}/ferretdb`);
  let client: MongoClient;

  before(async () => {
    await db.start();
    client = createMongoClient(db.uri, 3000);
  });

  after(async () => {
    await client?.close();
    await db.stop();
    dir.cleanup();
  });

  const state = () => client.db().collection<StateDoc>(COLLECTIONS.state);
  /** A bucket as flatline reads it (unpackBucket: the packed fields and any plain ones); null when there is none. */
  const bucketOf = async (id: string): Promise<(StateDoc & Record<string, unknown>) | null> => {
    const stored = await state().findOne({ _id: id });
    return stored === null ? null : (unpackBucket(stored) as StateDoc & Record<string, unknown>);
  };

  const log = () => client.db().collection<StateLogDoc>(STATE_LOG_COLLECTIONS.log);
  const writers = () => client.db().collection<StateWriterDoc>(STATE_LOG_COLLECTIONS.writers);
  /** Writes through a writer, then compacts, as storage does over time. */
  const writeAndCompact = async (writer: StateWriter, u: StateUpdate): Promise<void> => {
    await writer.write(u);
    await new StateCompactor(client.db(), 3000).compact(NOW);
  };

  it('a round is one log document; compaction moves it into the bucket, marks the writer and deletes what it applied', async () => {
    const writer = new StateWriter(client.db(), 3000);
    await writer.write(update('log-1', 'heat', 1));
    await writer.write(update('log-1', 'heat', 2));
    const docs = await log().find({ w: writer.writerId }).toArray();
    expect(docs.map((d) => d.n).sort()).to.deep.equal([1, 2]);
    // The bucket has no latest yet: the log is where it is until compaction.
    expect((await bucketOf(stateBucket('log-1')))?.latest?.['log-1']).to.equal(undefined);
    const outcome = await new StateCompactor(client.db(), 3000).compact(NOW);
    expect(outcome.applied).to.be.at.least(2);
    const doc = await bucketOf(stateBucket('log-1'));
    expect(decodeLatest(doc!.latest!['log-1']![deviceKey('heat')]!)?.seq).to.equal(2);
    expect(doc!.at!['log-1']).to.be.instanceOf(Date);
    expect((await writers().findOne({ _id: writer.writerId }))?.through).to.equal(2);
    expect(await log().countDocuments({ w: writer.writerId })).to.equal(0);
    // The next round goes on at n 3: a reader that had n 2 waits for 3.
    await writer.write(update('log-1', 'heat', 3));
    expect((await log().find({ w: writer.writerId }).toArray()).map((d) => d.n)).to.deep.equal([3]);
  });

  it('a round\'s changes are one deflated binary field (z), not a string per bucket, and read back whole', async () => {
    // FerretDB v1 decodes every field it reads through its type schema and stores documents as JSON text: a log
    // document of many JSON strings cost it ~8x the CPU of the same changes deflated in one binary field.
    const writer = new StateWriter(client.db(), 3000);
    const flats = Array.from({ length: 300 }, (_, i) => `z-${i}`);
    await writer.write({
      fetches: new Map(flats.map((f) => [f, new Date(NOW)])),
      latest: flats.flatMap((flatId) => ['heat', 'power.1'].map((deviceId) => ({ flatId, deviceId, value: { epoch: 0, seq: 7, takenAtMs: NOW - 1000, value: 21.5, quantity: 'temperature', unit: 'Cel' } }))),
      first: new Map([['z-1', new Date(NOW - HOUR)]]),
    });
    const [doc] = await log().find({ w: writer.writerId }).toArray();
    expect(doc!.b, 'no string per bucket').to.equal(undefined);
    expect(doc!.z).to.be.instanceOf(Binary);
    const changes = new Map(logChanges(doc!));
    expect(changes.size).to.equal(new Set(flats.map(stateBucket)).size);
    for (const f of flats) {
      const change = changes.get(stateBucket(f))!;
      expect(change.at![f]!.getTime()).to.equal(NOW);
      expect(decodeLatest(change.latest![f]![deviceKey('power.1')]!)?.seq).to.equal(7);
    }
    expect(changes.get(stateBucket('z-1'))!.first!['z-1']!.getTime()).to.equal(NOW - HOUR);
    // Deflated: far smaller than the same changes as JSON (~600 latest readings that differ only in their flat).
    const json = JSON.stringify(Object.fromEntries([...changes].map(([b, c]) => [b, encodeBucketChange(c)])));
    expect(doc!.z!.length(), `${doc!.z!.length()} bytes deflated, ${json.length} as JSON`).to.be.below(json.length / 4);
    await log().deleteMany({ w: writer.writerId }); // never compacted: later tests pick buckets that do not exist yet
  });

  it('compaction reads a log document of the release before (a string per bucket, b) and refuses one with neither form, deleting nothing', async () => {
    const writer = new StateWriter(client.db(), 3000);
    await writer.write(update('old-form-0', 'heat', 1)); // registers the writer: n 1
    const old: StateLogDoc = { _id: stateLogId(writer.writerId, 2), w: writer.writerId, n: 2, t: new Date(NOW), b: { [stateBucket('old-form-1')]: encodeBucketChange({ at: { 'old-form-1': new Date(NOW + 5) } }) } };
    await log().insertOne(old);
    await new StateCompactor(client.db(), 3000).compact(NOW);
    expect((await bucketOf(stateBucket('old-form-1')))?.at?.['old-form-1']?.getTime()).to.equal(NOW + 5);
    expect((await writers().findOne({ _id: writer.writerId }))?.through).to.equal(2);
    // Neither form: the pass fails before it deletes or marks anything.
    await log().insertOne({ _id: stateLogId(writer.writerId, 3), w: writer.writerId, n: 3, t: new Date(NOW) });
    const err = await new StateCompactor(client.db(), 3000).compact(NOW).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).to.match(/holds no changes/);
    expect(await log().countDocuments({ _id: stateLogId(writer.writerId, 3) })).to.equal(1);
    expect((await writers().findOne({ _id: writer.writerId }))?.through).to.equal(2);
    await log().deleteOne({ _id: stateLogId(writer.writerId, 3) });
  });

  it('compaction merges the log into what a bucket holds: newer values already there stay, flats and fields the log does not name stay, new flats are added', async () => {
    // Three flats of one bucket: "old" already has newer values than the log brings, "kept" is not in the log, "new" only in the log.
    const bucket = stateBucket('mrg-old');
    const same = (prefix: string) => Array.from({ length: 5000 }, (_, i) => `${prefix}-${i}`).find((f) => stateBucket(f) === bucket)!;
    const [kept, added] = [same('mrg-kept'), same('mrg-new')];
    const heat = deviceKey('heat');
    const latestOf = (seq: number, takenAtMs: number) => ({ epoch: 0, seq, takenAtMs, value: seq, quantity: 'temperature', unit: 'Cel' });
    await state().updateOne(
      { _id: bucket },
      {
        $set: {
          'at.mrg-old': new Date(NOW + 10_000),
          'latest.mrg-old': { [heat]: encodeLatest(latestOf(9, NOW + 9000)) },
          'first.mrg-old': new Date(NOW - HOUR),
          [`at.${kept}`]: new Date(NOW - 1000),
          [`latest.${kept}`]: { [heat]: encodeLatest(latestOf(4, NOW - 1000)) },
          marker: 'a field of another release',
        },
      },
      { upsert: true },
    );
    const writer = new StateWriter(client.db(), 3000);
    await writer.write({ ...update('mrg-old', 'heat', 5, NOW), first: new Map([['mrg-old', new Date(NOW - 60_000)]]) });
    await writer.write({ ...update(added, 'heat', 1, NOW), first: new Map([[added, new Date(NOW - 5000)]]) });
    await new StateCompactor(client.db(), 3000).compact(NOW);
    const doc = (await bucketOf(bucket)) as StateDoc & { marker?: string };
    expect(doc.at!['mrg-old']!.getTime(), 'a newer last fetch stays').to.equal(NOW + 10_000);
    expect(decodeLatest(doc.latest!['mrg-old']![heat]!)?.seq, 'a newer latest reading stays').to.equal(9);
    expect(doc.first!['mrg-old']!.getTime(), 'an earlier first reading stays').to.equal(NOW - HOUR);
    expect(doc.at![kept]!.getTime(), 'a flat the log does not name stays').to.equal(NOW - 1000);
    expect(decodeLatest(doc.latest![kept]![heat]!)?.seq).to.equal(4);
    expect(doc.at![added]!.getTime(), 'a new flat is added').to.equal(NOW);
    expect(decodeLatest(doc.latest![added]![heat]!)?.seq).to.equal(1);
    expect(doc.first![added]!.getTime()).to.equal(NOW - 5000);
    expect(doc.marker, 'a field the compactor does not know stays').to.equal('a field of another release');
    // Written back packed: the plain fields of the release before are in z now, not beside it.
    const stored = (await state().findOne({ _id: bucket })) as StoredBucket & { marker?: string };
    expect(stored.z).to.be.instanceOf(Binary);
    expect([stored.at, stored.latest, stored.first]).to.deep.equal([undefined, undefined, undefined]);
    expect(stored.marker).to.equal('a field of another release');
  });

  it('a bucket is stored packed (one deflated binary field), far smaller than its plain form, and a plain field added beside it still counts', async () => {
    const writer = new StateWriter(client.db(), 3000);
    const bucket = stateBucket('pk-0');
    const flats = Array.from({ length: 20000 }, (_, i) => `pk-${i}`).filter((f) => stateBucket(f) === bucket).slice(0, 150);
    await writeAndCompact(writer, {
      fetches: new Map(flats.map((f) => [f, new Date(NOW)])),
      latest: flats.flatMap((flatId) => ['heat', 'water'].map((deviceId) => ({ flatId, deviceId, value: { epoch: 0, seq: 9, takenAtMs: NOW - 1000, value: 3.25, quantity: 'energy', unit: 'kWh' } }))),
    });
    const stored = (await state().findOne({ _id: bucket }))!;
    const plain = unpackBucket(stored);
    for (const f of flats) expect(decodeLatest(plain.latest![f]![deviceKey('water')]!)?.seq).to.equal(9);
    const packedBytes = BSON.calculateObjectSize(stored);
    const plainBytes = BSON.calculateObjectSize(plain);
    expect(packedBytes, `${packedBytes} bytes packed, ${plainBytes} plain`).to.be.below(plainBytes / 4);
    // A compactor of the release before adds plain fields beside z ($max): readers merge both, the greater wins.
    const later = encodeLatest({ epoch: 0, seq: 10, takenAtMs: NOW, value: 4, quantity: 'energy', unit: 'kWh' });
    await state().updateOne({ _id: bucket }, { $max: { [`latest.${flats[0]}.${deviceKey('water')}`]: later, [`at.${flats[1]}`]: new Date(NOW - HOUR) } });
    const merged = (await bucketOf(bucket))!;
    expect(merged.latest![flats[0]!]![deviceKey('water')]).to.equal(later);
    expect(merged.at![flats[1]!]!.getTime(), 'an older plain value loses to the packed one').to.equal(NOW);
  });

  it('the earliest reading goes through the log only where it lowers what the log has, and compaction keeps the lowest', async () => {
    const writer = new StateWriter(client.db(), 3000);
    const withFirst = (seq: number, firstMs: number): StateUpdate => ({ ...update('fst-1', 'heat', seq), first: new Map([['fst-1', new Date(firstMs)]]) });
    await writer.write(withFirst(1, NOW - 100));
    await writer.write(withFirst(2, NOW - 50)); // later than what the log has: not carried
    await writer.write(withFirst(3, NOW - 200)); // a drain of older readings: lowers it
    const firsts = (await log().find({ w: writer.writerId }).toArray())
      .sort((a, b) => a.n - b.n)
      .map((d) => new Map(logChanges(d)).get(stateBucket('fst-1'))?.first?.['fst-1']?.getTime());
    expect(firsts).to.deep.equal([NOW - 100, undefined, NOW - 200]);
    await new StateCompactor(client.db(), 3000).compact(NOW);
    expect((await bucketOf(stateBucket('fst-1')))?.first?.['fst-1']?.getTime()).to.equal(NOW - 200);
  });

  it('one process at a time updates the buckets: a second compactor skips while the first holds the lock; a lock whose holder died is taken over after its lease', async () => {
    const locks = () => client.db().collection<{ _id: string; owner: string; until: Date }>(STATE_LOG_COLLECTIONS.locks);
    const writer = new StateWriter(client.db(), 3000);
    await writer.write(update('lck-1', 'heat', 1));
    let inside: () => void = () => {};
    const holding = new Promise<void>((r) => (inside = r));
    let letGo: () => void = () => {};
    const release = new Promise<void>((r) => (letGo = r));
    const first = withBucketLock(client.db(), 'first', 3000, async () => {
      inside();
      await release;
      return 'ran';
    });
    await holding;
    const second = await new StateCompactor(client.db(), 3000, 'second').compact(NOW);
    expect(second.skipped, 'the second compactor did nothing while the lock was held').to.equal(true);
    expect(await log().countDocuments({ w: writer.writerId }), 'the log is still there').to.equal(1);
    letGo();
    expect(await first).to.equal('ran');
    expect(await locks().countDocuments({}), 'let go').to.equal(0);
    // A holder that died: its lock stays until its lease is over, then the next compactor takes it.
    await locks().insertOne({ _id: 'buckets', owner: 'crashed', until: new Date(Date.now() + 60_000) });
    expect((await new StateCompactor(client.db(), 3000).compact(NOW)).skipped).to.equal(true);
    await locks().updateOne({ _id: 'buckets' }, { $set: { until: new Date(Date.now() - 1) } });
    const after = await new StateCompactor(client.db(), 3000).compact(NOW);
    expect(after.skipped ?? false, 'taken over').to.equal(false);
    expect(after.applied).to.be.at.least(1);
    expect(await log().countDocuments({ w: writer.writerId })).to.equal(0);
  });

  it('says when it cannot let go of the lock (the next holder waits for its lease), and what it did stands', async () => {
    const file = `${dir.path}/lock-release.log`;
    const logger = createLogger('storage', 'warn', file);
    let ran: string | undefined;
    try {
      // The database stops answering once the work is done, before the lock is let go.
      ran = await withBucketLock(client.db(), 'stuck', 500, async () => {
        await db.freeze(true);
        return 'done';
      }, 0, logger);
    } finally {
      await db.freeze(false);
    }
    expect(ran).to.equal('done');
    expect(existsSync(file) ? readFileSync(file, 'utf8') : '', 'a warning names the lock').to.match(/could not let go of the flat-state lock/);
    await client.db().collection(STATE_LOG_COLLECTIONS.locks).deleteMany({ owner: 'stuck' });
  });

  it('FerretDB v1 loses one of two updates of a document made at once (why only the lock holder updates the buckets)', async () => {
    // Each update reads the document and writes it back whole (FerretDB issues #3017, #3040): the later write drops the other's field.
    const other = createMongoClient(db.uri, 3000);
    try {
      const big = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`f${i}`, 'x'.repeat(10)]));
      let lost = 0;
      for (let r = 0; r < 10; r++) {
        await state().insertOne({ _id: `race${r}`, ...big } as StateDoc);
        await Promise.all([
          state().updateOne({ _id: `race${r}` }, { $max: { 'at.a': new Date(NOW) } }),
          other.db().collection<StateDoc>(COLLECTIONS.state).updateOne({ _id: `race${r}` }, { $max: { 'at.b': new Date(NOW) } }),
        ]);
        const doc = await state().findOne({ _id: `race${r}` });
        if (doc?.at?.['a'] === undefined || doc.at['b'] === undefined) lost += 1;
      }
      expect(lost, 'if FerretDB made updates atomic, the lock could go').to.be.greaterThan(0);
    } finally {
      await other.close();
      await state().deleteMany({ _id: { $regex: '^race' } });
    }
  });

  it('the pruner and a compaction at once lose nothing: they take turns with the lock', async () => {
    const writer = new StateWriter(client.db(), 3000);
    for (let r = 0; r < 6; r++) {
      const flat = `turn-${r}`;
      // A device gone for two days (the pruner removes it) and a new reading in the log (the compaction moves it in).
      await writeAndCompact(writer, update(flat, 'old', 1, NOW - 48 * HOUR));
      // A bucket as large as at 10,000 flats, so that each update takes long enough to meet the other.
      await state().updateOne({ _id: stateBucket(flat) }, { $set: Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`at.filler-${i}`, new Date(NOW)])) });
      await writer.write(update(flat, 'new', 2, NOW));
      await Promise.all([new StatePruner(client.db(), { deviceTtlMs: 24 * HOUR, timeoutMs: 3000 }).prune(NOW), new StateCompactor(client.db(), 3000).compact(NOW)]);
      await new StateCompactor(client.db(), 3000).compact(NOW); // whatever the first one skipped
      const doc = await bucketOf(stateBucket(flat));
      expect(Object.keys(doc?.latest?.[flat] ?? {}), `round ${r}`).to.deep.equal(['new']);
    }
  });

  it('a compaction that cannot update one bucket leaves the whole log in place, and the next one applies it', async () => {
    const [poisoned, healthy] = twoBuckets('cpt');
    await state().insertOne({ _id: stateBucket(poisoned), latest: 'not an object' as unknown as StateDoc['latest'] });
    const writer = new StateWriter(client.db(), 3000);
    await writer.write(update(poisoned, 'heat', 1));
    await writer.write(update(healthy, 'heat', 1));
    const before = await log().countDocuments({ w: writer.writerId });
    let failure: unknown;
    await new StateCompactor(client.db(), 3000).compact(NOW).catch((err: unknown) => (failure = err));
    expect(String(failure)).to.match(/bucket update\(s\) failed/);
    expect(await log().countDocuments({ w: writer.writerId }), 'nothing deleted').to.equal(before);
    expect((await writers().findOne({ _id: writer.writerId }))?.through, 'not marked').to.equal(0);
    await state().deleteOne({ _id: stateBucket(poisoned) });
    await new StateCompactor(client.db(), 3000).compact(NOW);
    expect(await log().countDocuments({ w: writer.writerId })).to.equal(0);
    const doc = await bucketOf(stateBucket(poisoned));
    expect(decodeLatest(doc!.latest![poisoned]![deviceKey('heat')]!)?.seq).to.equal(1);
  });

  it('a round whose insert failed is inserted again under the same n before later rounds: no hole (database stopped), no double (frozen)', async () => {
    const writer = new StateWriter(client.db(), 1000);
    const contents = async (): Promise<Array<[number, number | undefined]>> =>
      (await log().find({ w: writer.writerId }).toArray())
        .map((d): [number, number | undefined] => [d.n, decodeLatest(new Map(logChanges(d)).get(stateBucket('frz-1'))?.latest?.['frz-1']?.[deviceKey('heat')] ?? '')?.seq])
        .sort((a, b) => a[0] - b[0]);
    await writer.write(update('frz-1', 'heat', 1));
    // Stopped: the insert never reaches the database.
    await db.stop();
    let failed: unknown;
    try {
      failed = await settle(writer.write(update('frz-1', 'heat', 2)));
    } finally {
      await db.start();
    }
    expect(failed, 'the round fails while the database is away').to.be.instanceOf(Error);
    await writer.write(update('frz-1', 'heat', 3));
    expect(await contents(), 'n 2 is the failed round, inserted again before n 3').to.deep.equal([
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
    // Frozen: the insert is sent, times out, and lands after the thaw; the retry of the same document takes it as done.
    await db.freeze(true);
    try {
      failed = await settle(writer.write(update('frz-1', 'heat', 4)));
    } finally {
      await db.freeze(false);
    }
    expect(failed, 'the round fails while the database does not answer').to.be.instanceOf(Error);
    await writer.write(update('frz-1', 'heat', 5));
    expect((await contents()).slice(3)).to.deep.equal([
      [4, 4],
      [5, 5],
    ]);
  });

  it('a writer whose record was forgotten goes on under a new id (a reader of the old one would wait for ever)', async () => {
    let now = NOW;
    const writer = new StateWriter(client.db(), 3000, () => now);
    await writer.write(update('fgt-1', 'heat', 1));
    const old = writer.writerId;
    await new StateCompactor(client.db(), 3000).compact(NOW);
    // An hour and more later, with nothing left in its log, the compactor forgets it.
    const outcome = await new StateCompactor(client.db(), 3000).compact(NOW + 2 * HOUR);
    expect(outcome.forgotten).to.be.at.least(1);
    expect(await writers().findOne({ _id: old })).to.equal(null);
    now = NOW + 2 * HOUR;
    await writer.write(update('fgt-1', 'heat', 2));
    expect(writer.writerId).to.not.equal(old);
    expect((await writers().findOne({ _id: writer.writerId }))?.through).to.equal(0);
    expect((await log().find({ w: writer.writerId }).toArray()).map((d) => d.n)).to.deep.equal([1]);
  });

  it('with a grace, leaves a log document written less than it ago for the readers following the log, and does not forget its writer meanwhile', async () => {
    let now = NOW + 5 * HOUR;
    const writer = new StateWriter(client.db(), 3000, () => now);
    await writer.write(update('grace-1', 'heat', 1, now));
    const id = writer.writerId;
    const compactor = new StateCompactor(client.db(), 3000, 'grace', undefined, 5000);
    const left = async (): Promise<number[]> => (await log().find({ w: id }).toArray()).map((d) => d.n);
    await compactor.compact(now + 4000);
    expect(await left(), '4 s after it was written').to.deep.equal([1]);
    await compactor.compact(now + 6000);
    expect(await left(), '6 s after').to.deep.equal([]);
    expect((await bucketOf(stateBucket('grace-1')))?.at?.['grace-1']?.getTime()).to.equal(now);
    // Two hours of silence, then a document written a moment ago: the writer is not idle, its record stays.
    now += 2 * HOUR;
    await writer.write(update('grace-1', 'heat', 2, now));
    expect(writer.writerId, 'the same writer').to.equal(id);
    await compactor.compact(now + 1000);
    expect(await left()).to.deep.equal([2]);
    expect(await writers().findOne({ _id: id }), 'its record').to.not.equal(null);
    await compactor.compact(now + 6000);
    expect(await left()).to.deep.equal([]);
  });

  it('prunes devices not seen for the TTL, keeps the others and the last fetch, and reports the largest bucket', async () => {
    const writer = new StateWriter(client.db(), 3000);
    await writer.write(update('prune-1', 'old-meter', 7, NOW - 48 * HOUR));
    await writer.write(update('prune-1', 'new-meter', 1, NOW - HOUR));
    await writer.write(update('prune-2', 'gone', 1, NOW - 48 * HOUR)); // its only device
    await writeAndCompact(writer, update('prune-1', 'heat.a', 3, NOW - 30 * HOUR));
    const pruner = new StatePruner(client.db(), { deviceTtlMs: 24 * HOUR, timeoutMs: 3000 });
    const outcome = await pruner.prune(NOW);
    expect(outcome.removed).to.be.at.least(2);
    expect(outcome.largestBytes).to.be.greaterThan(0);
    const doc = await bucketOf(stateBucket('prune-1'));
    expect(Object.keys(doc!.latest!['prune-1']!)).to.deep.equal(['new-meter']);
    const other = await bucketOf(stateBucket('prune-2'));
    expect(other!.latest?.['prune-2'], 'a flat left with no device loses its entry').to.equal(undefined);
    expect(other!.at!['prune-2'], 'but not its last fetch').to.be.instanceOf(Date);
    expect(doc!.at!['prune-1']).to.be.instanceOf(Date);
    // Nothing left to prune: a second pass removes nothing.
    expect((await pruner.prune(NOW)).removed).to.equal(0);
  });

  it('keeps a device whose reading arrived between the pruner\'s read and its removal', async () => {
    const writer = new StateWriter(client.db(), 3000);
    await writeAndCompact(writer, update('race-1', 'meter', 1, NOW - 48 * HOUR));
    const pruner = new StatePruner(client.db(), { deviceTtlMs: 24 * HOUR, timeoutMs: 3000 });
    const plan = await pruner.plan(NOW);
    await writeAndCompact(writer, update('race-1', 'meter', 2, NOW)); // the meter comes back after the read
    const outcome = await pruner.apply(plan);
    expect(outcome.raced).to.be.at.least(1);
    const doc = await bucketOf(stateBucket('race-1'));
    expect(decodeLatest(doc!.latest!['race-1']![deviceKey('meter')]!)?.seq).to.equal(2);
  });
});
