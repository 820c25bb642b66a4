/**
 * The forwarder against a real storage process on a real FerretDB: what the
 * outbox holds reaches the database whole, however large one fetch was.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { MongoClient } from 'mongodb';
import { StorageServiceClient } from '@flatline/proto/flatline/storage/v1/storage.js';
import { createLogger } from '@flatline/platform/logger.js';
import { createMetrics } from '@flatline/platform/metrics.js';
import type { RunningService } from '@flatline/cli/stack/components.js';
import type { DeviceReading } from '../../src/domain/device-answer.ts';
import { createIngestionMetrics } from '../../src/metrics.ts';
import { Outbox } from '../../src/outbox/outbox.ts';
import { Forwarder } from '../../src/storage/forwarder.ts';
import { eventually, startTestService, tempDir, TestDatabase } from '../../../../test/support/stack.ts';

const T0 = Date.parse('2026-11-29T08:00:00Z');

describe('forwarder → storage (real processes, real FerretDB)', function () {
  this.timeout(120000);
  const dir = tempDir('forwarder');
  const db = new TestDatabase(`${dir.path}/ferretdb`);
  let storage: RunningService;
  let client: StorageServiceClient;
  let mongo: MongoClient;

  before(async () => {
    await db.start();
    storage = await startTestService('storage', db.uri, dir.path);
    client = new StorageServiceClient(storage.grpc, credentials.createInsecure());
    mongo = new MongoClient(db.uri, { serverSelectionTimeoutMS: 3000 });
  });

  after(async () => {
    client?.close();
    await mongo?.close();
    await storage?.process.stop();
    await db.stop();
    dir.cleanup();
  });

  /** Forwards what box holds until it is empty (or timeoutMs passes); returns the forwarder's metrics text. */
  async function forwardAll(box: Outbox, timeoutMs: number): Promise<string> {
    const base = createMetrics('ingestion');
    const metrics = createIngestionMetrics(base);
    const forwarder = new Forwarder(box, client, { batch: 500, timeoutMs: 10000, warnRows: 100000, onFailure: 'retry' }, metrics, createLogger('test', 'silent'));
    forwarder.start();
    try {
      await eventually(async () => box.size().fetches === 0, timeoutMs);
    } finally {
      await forwarder.stop();
    }
    return base.registry.metrics();
  }

  const stored = (flatId: string) => mongo.db().collection('readings').countDocuments({ flat_id: flatId });

  it('stores a fetch of 12,000 readings (more than one Append may carry), nothing dead-lettered', async () => {
    const box = new Outbox(join(dir.path, 'big', 'outbox.sqlite'));
    const readings: DeviceReading[] = Array.from({ length: 12_000 }, (_, i) => ({ deviceId: `d${i % 3}`, seq: Math.floor(i / 3) + 1, takenAtMs: T0 + i, quantity: 'temperature', unit: 'Cel', value: i }));
    box.record([{ flatId: 'big-1', fetchedAtMs: T0, readings }]);
    const text = await forwardAll(box, 90000);
    expect(box.size().fetches, 'outbox left').to.equal(0);
    expect(box.deadLetters(), 'dead letters').to.deep.equal([]);
    expect(text).to.not.match(/flatline_ingestion_dead_letters_total\{[^}]*\} [1-9]/);
    expect(await stored('big-1')).to.equal(12_000);
    box.close();
  });

  it('stores a fetch larger than the 4 MiB gRPC message limit', async () => {
    const box = new Outbox(join(dir.path, 'heavy', 'outbox.sqlite'));
    const readings: DeviceReading[] = Array.from({ length: 16_000 }, (_, i) => ({
      deviceId: `${'d'.repeat(60)}${i % 4}`,
      seq: Math.floor(i / 4) + 1,
      takenAtMs: T0 + i,
      quantity: 'q'.repeat(64),
      unit: 'u'.repeat(32),
      value: i,
    }));
    box.record([{ flatId: 'h'.repeat(64), fetchedAtMs: T0, readings }]);
    await forwardAll(box, 90000);
    expect(box.size().fetches, 'outbox left').to.equal(0);
    expect(box.deadLetters()).to.deep.equal([]);
    expect(await stored('h'.repeat(64))).to.equal(16_000);
    box.close();
  });
});
