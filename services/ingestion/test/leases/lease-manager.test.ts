import { expect } from 'chai';
import { join } from 'node:path';
import type { MongoClient } from 'mongodb';
import { createLogger } from '@flatline/platform/logger.js';
import { createMongoClient } from '@flatline/platform/mongo.js';
import { LeaseManager } from '../../src/leases/lease-manager.ts';
import { eventually, tempDir, TestDatabase } from '../../../../test/support/stack.ts';

const SETTINGS = { buckets: 8, ttlMs: 1000, renewMs: 200, dbTimeoutMs: 2000 };

describe('lease manager (real FerretDB)', function () {
  this.timeout(60000);
  const dir = tempDir('leases');
  const db = new TestDatabase(join(dir.path, 'db'));
  let client: MongoClient;
  const managers: LeaseManager[] = [];

  before(async () => {
    await db.start();
    client = createMongoClient(db.uri, 2000);
  });

  after(async () => {
    for (const m of managers) await m.stop();
    await client?.close();
    await db.stop();
    dir.cleanup();
  });

  it('rescues the buckets of a member that heartbeats but never takes its share, so every flat stays polled', async () => {
    // The ghost is alive (it heartbeats) but never completes a round: its fair
    // share would stay unowned forever if the share capped rescues too.
    const members = client.db().collection<{ _id: string; seen_at: Date; host: string }>('ingestion_members');
    const beat = async (): Promise<void> => void (await members.updateOne({ _id: 'ghost' }, { $set: { seen_at: new Date(), host: 'ghost' } }, { upsert: true }));
    await beat();
    const ghost = setInterval(() => void beat().catch(() => {}), 100);
    let held = new Set<number>();
    const replica = new LeaseManager(client.db(), 'replica-a', SETTINGS, createLogger('test', 'silent'), (buckets) => (held = new Set(buckets)));
    managers.push(replica);
    try {
      replica.start();
      expect(await eventually(async () => held.size === SETTINGS.buckets / 2, 5000), 'its fair share first').to.equal(true);
      expect(await eventually(async () => held.size === SETTINGS.buckets, 10000, 100), `all ${SETTINGS.buckets} buckets within a few TTLs, held ${held.size}`).to.equal(true);
    } finally {
      clearInterval(ghost);
    }
  });

  it('gives the surplus back when a real replica joins, and the two split the buckets without overlap', async () => {
    let heldA = new Set<number>(managers[0]!.buckets());
    let heldB = new Set<number>();
    const b = new LeaseManager(client.db(), 'replica-b', SETTINGS, createLogger('test', 'silent'), (buckets) => (heldB = new Set(buckets)));
    managers.push(b);
    b.start();
    const split = async (): Promise<boolean> => {
      heldA = new Set(managers[0]!.buckets());
      const overlap = [...heldA].filter((x) => heldB.has(x));
      return heldA.size + heldB.size === SETTINGS.buckets && overlap.length === 0 && heldB.size >= SETTINGS.buckets / 2 - 1;
    };
    expect(await eventually(split, 15000, 100), `a ${heldA.size}, b ${heldB.size}`).to.equal(true);
  });
});
