import { expect } from 'chai';
import { join } from 'node:path';
import type { MongoClient } from 'mongodb';
import { createLogger, createMongoClient } from '@flatline/platform';
import { ordinalOf } from '../../src/config.ts';
import { fallbackShare, LeaseManager } from '../../src/leases/lease-manager.ts';
import { eventually, holdFor, tempDir, TestDatabase } from '@flatline/stack';

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
      await eventually('its fair share of buckets first', async () => held.size === SETTINGS.buckets / 2, 5000);
      await eventually(`all ${SETTINGS.buckets} buckets within a few TTLs`, async () => held.size === SETTINGS.buckets, 10000, 100);
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
    await eventually('the buckets to split between the two replicas without overlap', split, 15000, 100);
  });
});

describe('lease manager: replicas starting together (FLATLINE_INGESTION_REPLICAS, real FerretDB)', function () {
  this.timeout(60000);
  const dir = tempDir('leases-start');
  const db = new TestDatabase(join(dir.path, 'db'));
  let client: MongoClient;
  // A TTL long enough that the second replica's first round falls in the first one's start window on a loaded machine.
  const START = { buckets: 8, ttlMs: 3000, renewMs: 500, dbTimeoutMs: 2000 };

  before(async () => {
    await db.start();
    client = createMongoClient(db.uri, 2000);
  });

  after(async () => {
    await client?.close();
    await db.stop();
    dir.cleanup();
  });

  /** A replica that records every set it was told to poll; each test has a database of its own (leases given back at stop are free to take at once). */
  const replica = (id: string, settings: object, database: string) => {
    const seen: Array<Set<number>> = [];
    const m = new LeaseManager(client.db(database), id, { ...START, ...settings }, createLogger('test', 'silent'), (buckets) => void seen.push(new Set(buckets)));
    return { m, seen, now: () => seen.at(-1) ?? new Set<number>() };
  };

  it('the first up leaves the second its share: neither ever polls more than half, and no bucket changes hands', async () => {
    const a = replica('starting-a', { replicas: 2 }, 'together');
    const b = replica('starting-b', { replicas: 2 }, 'together');
    a.m.start();
    try {
      await eventually('the first replica to poll its share', async () => a.now().size > 0, 10000);
      // Without the start window it took all 8 here and gave 4 back to b a round later.
      expect(a.now().size, 'the first replica, alone, in its first TTL').to.equal(START.buckets / 2);
      b.m.start();
      await eventually('the two to poll every bucket between them', async () => a.now().size + b.now().size === START.buckets, 10000, 100);
      await holdFor(START.ttlMs + 1000, 'past both start windows');
      expect(a.seen.map((s) => s.size), 'what the first polled, set by set').to.deep.equal([START.buckets / 2]);
      expect(b.seen.map((s) => s.size), 'what the second polled, set by set').to.deep.equal([START.buckets / 2]);
      expect([...a.now()].filter((x) => b.now().has(x)), 'overlap').to.deep.equal([]);
    } finally {
      await a.m.stop();
      await b.m.stop();
    }
  });

  it('a sibling that never comes costs one TTL: then the replica alone polls every bucket', async () => {
    const a = replica('starting-alone', { replicas: 2 }, 'alone');
    const started = Date.now();
    a.m.start();
    try {
      await eventually('its share first', async () => a.now().size === START.buckets / 2, 10000);
      await eventually('every bucket once its start window is over', async () => a.now().size === START.buckets, 15000, 100);
      expect(Date.now() - started, 'not before the start window ended').to.be.at.least(START.ttlMs);
    } finally {
      await a.m.stop();
    }
  });
});

describe('lease manager during a database outage (real FerretDB)', function () {
  this.timeout(60000);
  const dir = tempDir('leases-outage');
  const db = new TestDatabase(join(dir.path, 'db'));
  let client: MongoClient;

  before(async () => {
    await db.start(); // fixes the port
    await db.stop();
    client = createMongoClient(db.uri, 500);
  });

  after(async () => {
    await client?.close();
    await db.stop();
    dir.cleanup();
  });

  it('a replica started while the database is down polls its fallback share, then what its leases give it once the database is back', async () => {
    let polled = new Set<number>();
    const fallback = new Set([1, 3, 5, 7]);
    const replica = new LeaseManager(client.db(), 'ingestion-1', { ...SETTINGS, dbTimeoutMs: 500, fallback }, createLogger('test', 'silent'), (buckets) => (polled = new Set(buckets)));
    replica.start();
    try {
      // Before the fix it polled nothing until a lease round succeeded.
      await eventually('the replica to poll its fallback share while the database is down', async () => polled.size > 0, 5000);
      expect([...polled].sort()).to.deep.equal([1, 3, 5, 7]);
      await db.start();
      // Alone, it leases every bucket; the fallback alone no longer counts.
      await eventually('the lone replica to lease and poll every bucket once the database is back', async () => polled.size === SETTINGS.buckets && replica.buckets().size === SETTINGS.buckets, 15000);
      await db.stop();
      // Down again: it keeps what it holds (all) — nothing dropped.
      await holdFor(1500, 'several failed lease rounds');
      expect(polled.size).to.equal(SETTINGS.buckets);
    } finally {
      await replica.stop();
    }
  });

  it('the weakened release-on-outage configuration polls nothing once its leases expire, and takes them again when the database is back', async () => {
    let polled = new Set<number>();
    const replica = new LeaseManager(client.db(), 'ingestion-0', { ...SETTINGS, dbTimeoutMs: 500, fallback: new Set([0, 2, 4, 6]), onOutage: 'release' }, createLogger('test', 'silent'), (buckets) => (polled = new Set(buckets)));
    await db.start();
    replica.start();
    try {
      await eventually('every bucket leased', async () => polled.size === SETTINGS.buckets, 15000);
      await db.stop();
      // No fallback, and nothing once the TTL (1 s) has passed without a renewal.
      await eventually('nothing polled once the leases ran out', async () => polled.size === 0, 10000);
      await db.start();
      await eventually('every bucket leased again', async () => polled.size === SETTINGS.buckets, 15000);
    } finally {
      await replica.stop();
      await db.stop();
    }
  });

  it('every bucket is in exactly one replica\'s fallback share; an id without an ordinal falls back to every bucket', () => {
    const shares = [0, 1, 2].map((o) => fallbackShare(64, o, 3));
    const all = shares.flatMap((s) => [...s]).sort((a, b) => a - b);
    expect(all).to.deep.equal(Array.from({ length: 64 }, (_, b) => b));
    expect(fallbackShare(8, undefined, 3).size).to.equal(8);
    expect(fallbackShare(8, 5, 3).size).to.equal(8);
    expect(ordinalOf('ingestion-12')).to.equal(12);
    expect(ordinalOf('myhost-4242x')).to.equal(undefined);
  });
});
