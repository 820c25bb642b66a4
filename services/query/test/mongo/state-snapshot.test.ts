/**
 * Query's copy of the flat state against storage's real writer and
 * compactor on a real FerretDB: it follows each writer's log, notices a log
 * compacted before it read it, drops what the pruner removed, and under
 * writers, compactions and refreshes at random it never misses an update
 * acknowledged before a refresh began.
 */
import { expect } from 'chai';
import type { MongoClient } from 'mongodb';
import { createMongoClient, decodeLatest, deviceKey, silentLogger, COLLECTIONS, STATE_LOG_COLLECTIONS } from '@flatline/platform';
import { StateCompactor, StatePruner, StateWriter, type StateUpdate } from '@flatline/storage';
import { tempDir, TestDatabase } from '@flatline/stack';
import { StateSnapshot } from '../../src/mongo/state-snapshot.ts';

const NOW = Date.parse('2026-12-01T08:00:00Z');

function update(flatId: string, deviceId: string, seq: number, atMs = NOW + seq): StateUpdate {
  return {
    fetches: new Map([[flatId, new Date(atMs)]]),
    latest: [{ flatId, deviceId, value: { epoch: 0, seq, takenAtMs: atMs, value: seq, quantity: 'temperature', unit: 'Cel' } }],
  };
}

/** The latest seq of a device and the last fetch of its flat, as the copy has them. */
function seen(snapshot: StateSnapshot, flatId: string, deviceId: string): { seq: number | undefined; atMs: number | undefined } {
  const doc = snapshot.bucketOf(flatId);
  const text = doc?.latest?.[flatId]?.[deviceKey(deviceId)];
  return { seq: text === undefined ? undefined : decodeLatest(text)?.seq, atMs: doc?.at?.[flatId]?.getTime() };
}

/** A small seeded generator (mulberry32): the same run every time. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('query: the copy of the flat state follows the log (real FerretDB, real writer and compactor)', function () {
  this.timeout(120000);
  const dir = tempDir('state-snapshot');
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

  beforeEach(async () => {
    for (const name of [COLLECTIONS.state, STATE_LOG_COLLECTIONS.log, STATE_LOG_COLLECTIONS.writers, STATE_LOG_COLLECTIONS.locks]) await client.db().collection(name).deleteMany({});
  });

  const snapshotOf = (fullEveryMs = 3600_000): StateSnapshot => new StateSnapshot(client.db(), { refreshMs: 500, maxAgeMs: 60000, timeoutMs: 3000, fullEveryMs }, silentLogger());

  it('reads the buckets once, then only the log documents that follow, by _id', async () => {
    const writer = new StateWriter(client.db(), 3000);
    await writer.write(update('f-1', 'heat', 1));
    await new StateCompactor(client.db(), 3000).compact(NOW);
    const snapshot = snapshotOf();
    expect(await snapshot.refresh()).to.deep.equal({ full: true, applied: 0, behind: false });
    expect(seen(snapshot, 'f-1', 'heat').seq, 'from the bucket').to.equal(1);
    await writer.write(update('f-1', 'heat', 2));
    await writer.write(update('f-2', 'heat', 7));
    expect(await snapshot.refresh()).to.deep.equal({ full: false, applied: 2, behind: false });
    expect(seen(snapshot, 'f-1', 'heat')).to.deep.equal({ seq: 2, atMs: NOW + 2 });
    expect(seen(snapshot, 'f-2', 'heat').seq).to.equal(7);
    expect(await snapshot.refresh(), 'nothing new').to.deep.equal({ full: false, applied: 0, behind: false });
  });

  it('loads in full when a writer\'s log was compacted before the copy read it', async () => {
    const writer = new StateWriter(client.db(), 3000);
    await writer.write(update('c-1', 'heat', 1));
    const snapshot = snapshotOf();
    await snapshot.refresh();
    await writer.write(update('c-1', 'heat', 2));
    // Compacted (moved into the bucket and deleted) before the copy looked.
    await new StateCompactor(client.db(), 3000).compact(NOW);
    // The follow finds the log compacted past its copy and starts a full load in the background; the next refresh swaps it in.
    expect(await snapshot.refresh()).to.deep.equal({ full: false, applied: 0, behind: true });
    expect(seen(snapshot, 'c-1', 'heat').seq, 'until then the copy answers as it was').to.equal(1);
    const outcome = await snapshot.settle();
    expect(outcome.full, 'the log it had not read is gone: only the buckets have it').to.equal(true);
    expect(seen(snapshot, 'c-1', 'heat').seq).to.equal(2);
    // And it follows the log again from there.
    await writer.write(update('c-1', 'heat', 3));
    expect(await snapshot.refresh()).to.deep.equal({ full: false, applied: 1, behind: false });
    expect(seen(snapshot, 'c-1', 'heat').seq).to.equal(3);
  });

  it('drops at its next full load a device the pruner removed', async () => {
    const writer = new StateWriter(client.db(), 3000);
    await writer.write(update('p-1', 'old', 1, NOW - 3 * 86400_000));
    await new StateCompactor(client.db(), 3000).compact(NOW);
    const snapshot = snapshotOf(0);
    await snapshot.refresh();
    expect(seen(snapshot, 'p-1', 'old').seq).to.equal(1);
    expect((await new StatePruner(client.db(), { deviceTtlMs: 86400_000, timeoutMs: 3000 }).prune(NOW)).removed).to.be.at.least(1);
    expect((await snapshot.settle()).full).to.equal(true);
    expect(seen(snapshot, 'p-1', 'old').seq).to.equal(undefined);
  });

  it('with two writers, two compactors and refreshes at random, every refresh that is not behind a compaction has each update acknowledged before it began', async () => {
    const random = seeded(20261201);
    const writers = [new StateWriter(client.db(), 3000), new StateWriter(client.db(), 3000)];
    const compactors = [new StateCompactor(client.db(), 3000), new StateCompactor(client.db(), 3000)];
    const snapshot = snapshotOf(4000);
    const flats = Array.from({ length: 12 }, (_, i) => `r-${i}`);
    /** The greatest seq acknowledged per flat (one device each). */
    const acked = new Map<string, number>();
    let seq = 0;
    let refreshes = 0;
    let fulls = 0;
    let behinds = 0;
    const pending: Array<Promise<unknown>> = [];
    // One refresh after another: one that joined a refresh already running would have begun before some acknowledgements.
    let lastRefresh: Promise<unknown> = Promise.resolve();
    for (let step = 0; step < 240; step++) {
      const r = random();
      if (r < 0.6) {
        const flatId = flats[Math.floor(random() * flats.length)]!;
        const s = ++seq;
        const writer = writers[Math.floor(random() * writers.length)]!;
        pending.push(writer.write(update(flatId, 'meter', s)).then(() => acked.set(flatId, Math.max(acked.get(flatId) ?? 0, s))));
      } else if (r < 0.75) {
        pending.push(compactors[Math.floor(random() * compactors.length)]!.compact(NOW));
      } else {
        // What was acknowledged before this refresh began must be in it.
        const before = new Map(acked);
        // A plain refresh (it follows the log) or, one time in four, one that waits for a full load.
        const settle = random() < 0.25;
        lastRefresh = lastRefresh.then(() =>
          (settle ? snapshot.settle() : snapshot.refresh()).then((o) => {
            refreshes += 1;
            if (o.full) fulls += 1;
            if (o.behind) behinds += 1;
            // A follow that found a log compacted past its copy says so; every other refresh has it all.
            if (!o.behind) for (const [flatId, s] of before) expect(seen(snapshot, flatId, 'meter').seq ?? 0, `flat ${flatId} after refresh ${refreshes}`).to.be.at.least(s);
          }),
        );
        pending.push(lastRefresh);
      }
      if (random() < 0.3) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending.splice(0));
    await snapshot.settle();
    for (const [flatId, s] of acked) expect(seen(snapshot, flatId, 'meter').seq, flatId).to.equal(s);
    // And the buckets alone, once everything is compacted.
    await compactors[0]!.compact(NOW);
    expect(await client.db().collection(STATE_LOG_COLLECTIONS.log).countDocuments({})).to.equal(0);
    const fresh = snapshotOf();
    await fresh.refresh();
    for (const [flatId, s] of acked) expect(seen(fresh, flatId, 'meter').seq, `${flatId} from the buckets`).to.equal(s);
    expect(refreshes).to.be.greaterThan(20);
    expect(fulls, 'full loads swapped in').to.be.greaterThan(1);
    expect(behinds, 'some follows met a log compacted past their copy').to.be.greaterThan(0);
    expect(behinds, 'most follows did not').to.be.lessThan(refreshes / 2);
  });
});
