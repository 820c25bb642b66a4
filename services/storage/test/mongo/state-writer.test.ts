/**
 * The flat-state writer and pruner against a real FerretDB: a bucket whose
 * update fails fails only its own Appends, and the state stays bounded.
 */
import { expect } from 'chai';
import type { MongoClient } from 'mongodb';
import { createMongoClient, COLLECTIONS, decodeLatest, deviceKey, stateBucket, type StateDoc } from '@flatline/platform';
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

  it('a bucket whose update always fails fails only the Appends that touch it, in this round and every later one', async () => {
    const [poisoned, healthy] = twoBuckets('iso');
    // A bucket document whose `latest` is no object: every $max under it is
    // refused by the database, as a document past the size limit would be.
    await state().insertOne({ _id: stateBucket(poisoned), latest: 'not an object' as unknown as StateDoc['latest'] });
    const writer = new StateWriter(client.db(), 3000);
    // Same round: both are pending when the first write starts.
    const [bad, good] = await Promise.all([settle(writer.write(update(poisoned, 'heat', 1))), settle(writer.write(update(healthy, 'heat', 1)))]);
    expect(bad).to.be.instanceOf(Error);
    expect(good, String(good)).to.equal('ok');
    // Later rounds: the failed fields were not kept, so healthy buckets keep working.
    for (let seq = 2; seq <= 4; seq++) {
      const later = await settle(writer.write(update(healthy, 'heat', seq)));
      expect(later, `round ${seq}: ${String(later)}`).to.equal('ok');
    }
    const doc = await state().findOne({ _id: stateBucket(healthy) });
    expect(decodeLatest(doc!.latest![healthy]![deviceKey('heat')]!)?.seq).to.equal(4);
    await state().deleteOne({ _id: stateBucket(poisoned) });
  });

  it('prunes devices not seen for the TTL, keeps the others and the last fetch, and reports the largest bucket', async () => {
    const writer = new StateWriter(client.db(), 3000);
    await writer.write(update('prune-1', 'old-meter', 7, NOW - 48 * HOUR));
    await writer.write(update('prune-1', 'new-meter', 1, NOW - HOUR));
    await writer.write(update('prune-1', 'heat.a', 3, NOW - 30 * HOUR));
    const pruner = new StatePruner(client.db(), { deviceTtlMs: 24 * HOUR, timeoutMs: 3000 });
    const outcome = await pruner.prune(NOW);
    expect(outcome.removed).to.be.at.least(2);
    expect(outcome.largestBytes).to.be.greaterThan(0);
    const doc = await state().findOne({ _id: stateBucket('prune-1') });
    expect(Object.keys(doc!.latest!['prune-1']!)).to.deep.equal(['new-meter']);
    expect(doc!.at!['prune-1']).to.be.instanceOf(Date);
    // Nothing left to prune: a second pass removes nothing.
    expect((await pruner.prune(NOW)).removed).to.equal(0);
  });

  it('keeps a device whose reading arrived between the pruner\'s read and its removal', async () => {
    const writer = new StateWriter(client.db(), 3000);
    await writer.write(update('race-1', 'meter', 1, NOW - 48 * HOUR));
    const pruner = new StatePruner(client.db(), { deviceTtlMs: 24 * HOUR, timeoutMs: 3000 });
    const plan = await pruner.plan(NOW);
    await writer.write(update('race-1', 'meter', 2, NOW)); // the meter comes back after the read
    const outcome = await pruner.apply(plan);
    expect(outcome.raced).to.be.at.least(1);
    const doc = await state().findOne({ _id: stateBucket('race-1') });
    expect(decodeLatest(doc!.latest!['race-1']![deviceKey('meter')]!)?.seq).to.equal(2);
  });
});
