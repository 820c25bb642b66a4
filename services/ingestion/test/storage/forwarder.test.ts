/**
 * The forwarder against a real storage process on a real FerretDB: what the
 * outbox holds reaches the database whole, however large one fetch was.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { credentials, InterceptingCall, Metadata, status, type Interceptor } from '@grpc/grpc-js';
import { MongoClient } from 'mongodb';
import { StorageServiceClient } from '@flatline/proto';
import { createLogger, createMetrics } from '@flatline/platform';
import { type StartedServer, eventually, startInProcessService, tempDir, TestDatabase } from '@flatline/stack';
import type { DeviceReading } from '../../src/domain/device-answer.ts';
import { createIngestionMetrics } from '../../src/metrics.ts';
import { Outbox } from '../../src/outbox/outbox.ts';
import { Forwarder } from '../../src/storage/forwarder.ts';

const T0 = Date.parse('2026-11-29T08:00:00Z');

describe('forwarder → storage (real storage in-process, real FerretDB)', function () {
  this.timeout(120000);
  const dir = tempDir('forwarder');
  const db = new TestDatabase(`${dir.path}/ferretdb`);
  let storage: StartedServer;
  let client: StorageServiceClient;
  let mongo: MongoClient;

  before(async () => {
    await db.start();
    storage = await startInProcessService('storage', db.uri, dir.path);
    client = new StorageServiceClient(storage.grpc, credentials.createInsecure());
    mongo = new MongoClient(db.uri, { serverSelectionTimeoutMS: 3000 });
  });

  after(async () => {
    client?.close();
    await mongo?.close();
    await storage?.stop();
    await db.stop();
    dir.cleanup();
  });

  /** Forwards what box holds until it is empty (or timeoutMs passes); returns the forwarder's metrics text. */
  async function forwardAll(box: Outbox, timeoutMs: number, via: StorageServiceClient = client, appendTimeoutMs = 10000): Promise<string> {
    const base = createMetrics('ingestion');
    const metrics = createIngestionMetrics(base);
    const forwarder = new Forwarder(box, via, { batch: 500, timeoutMs: appendTimeoutMs, warnRows: 100000, onFailure: 'retry' }, metrics, createLogger('test', 'silent'));
    forwarder.start();
    try {
      await eventually('the outbox to drain into storage', async () => box.size().fetches === 0, timeoutMs);
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

  const reading = (seq: number, unit = 'Cel'): DeviceReading => ({ deviceId: 'heat', seq, takenAtMs: T0 + seq, quantity: 'temperature', unit, value: seq });

  it('dead-letters only the fetch result storage names as invalid, and stores the rest of its batch', async () => {
    const box = new Outbox(join(dir.path, 'verdict', 'outbox.sqlite'));
    box.record([
      { flatId: 'verdict-1', fetchedAtMs: T0, readings: [reading(1), reading(2)] },
      { flatId: 'verdict-2', fetchedAtMs: T0, readings: [reading(1, 'u'.repeat(40))] }, // storage refuses a unit over 32 characters
      { flatId: 'verdict-3', fetchedAtMs: T0, readings: [reading(1)] },
    ]);
    await forwardAll(box, 30000);
    expect(box.size().fetches).to.equal(0);
    expect(box.deadLetters().map((d) => [d.flatId, d.reason])).to.deep.equal([['verdict-2', 'fetches[1].readings[0].unit must be 1 to 32 characters']]);
    expect([await stored('verdict-1'), await stored('verdict-2'), await stored('verdict-3')]).to.deep.equal([2, 0, 1]);
    box.close();
  });

  it('dead-letters nothing on an INVALID_ARGUMENT that is not storage\'s verdict (another hop), and stores everything once that hop lets calls through', async () => {
    const box = new Outbox(join(dir.path, 'hop', 'outbox.sqlite'));
    box.record([1, 2, 3].map((n) => ({ flatId: `hop-${n}`, fetchedAtMs: T0, readings: [reading(1), reading(2)] })));
    // A proxy in between that refuses the first calls with INVALID_ARGUMENT of its own.
    let refusals = 6;
    const hop: Interceptor = (options, next) => {
      let refused = false;
      return new InterceptingCall(next(options), {
        start: (metadata, listener, nextStart) => {
          if (refusals > 0) {
            refusals -= 1;
            refused = true;
            listener.onReceiveStatus({ code: status.INVALID_ARGUMENT, details: 'proxy: request header too large', metadata: new Metadata() });
            return;
          }
          nextStart(metadata, listener);
        },
        sendMessage: (message, nextSend) => (refused ? undefined : nextSend(message)),
        halfClose: (nextHalfClose) => (refused ? undefined : nextHalfClose()),
      });
    };
    const viaHop = new StorageServiceClient(storage.grpc, credentials.createInsecure(), { interceptors: [hop] });
    try {
      await forwardAll(box, 30000, viaHop);
    } finally {
      viaHop.close();
    }
    expect(refusals).to.equal(0);
    expect(box.deadLetters(), 'dead letters').to.deep.equal([]);
    expect(box.size().fetches).to.equal(0);
    expect([await stored('hop-1'), await stored('hop-2'), await stored('hop-3')]).to.deep.equal([2, 2, 2]);
    box.close();
  });

  it('sends smaller Appends while large ones do not finish within their deadline, and drains (a loaded storage)', async () => {
    const box = new Outbox(join(dir.path, 'slow', 'outbox.sqlite'));
    box.record(Array.from({ length: 300 }, (_, n) => ({ flatId: `slow-${n}`, fetchedAtMs: T0, readings: [reading(1)] })));
    // A storage that finishes an Append of more than 40 fetch results only after its deadline: the call is held, never answered.
    const sizes: number[] = [];
    const slow: Interceptor = (options, next) => {
      let held = false;
      return new InterceptingCall(next(options), {
        sendMessage: (message: { fetches: unknown[] }, nextSend) => {
          sizes.push(message.fetches.length);
          held = message.fetches.length > 40;
          if (!held) nextSend(message);
        },
        halfClose: (nextHalfClose) => (held ? undefined : nextHalfClose()),
      });
    };
    const viaSlow = new StorageServiceClient(storage.grpc, credentials.createInsecure(), { interceptors: [slow] });
    try {
      await forwardAll(box, 60000, viaSlow, 500);
    } finally {
      viaSlow.close();
    }
    expect(box.size().fetches).to.equal(0);
    expect(sizes[0], 'the first Append is the configured size').to.equal(300);
    expect(Math.min(...sizes), 'then smaller ones').to.be.at.most(40);
    expect(await mongo.db().collection('readings').countDocuments({ flat_id: { $regex: '^slow-' } })).to.equal(300);
    box.close();
  });

  it('reports how full the outbox is, so health can turn NOT_SERVING before it is full', async () => {
    const box = new Outbox(join(dir.path, 'fill', 'outbox.sqlite'), { maxBytes: 1024 * 1024 });
    let seq = 0;
    for (let i = 0; i < 400; i++) box.record([{ flatId: 'fill-1', fetchedAtMs: T0 + i, readings: Array.from({ length: 20 }, () => reading(++seq)) }]);
    const base = createMetrics('ingestion');
    const fills: number[] = [];
    // Storage unreachable: nothing drains.
    const nowhere = new StorageServiceClient('127.0.0.1:1', credentials.createInsecure());
    const forwarder = new Forwarder(box, nowhere, { batch: 500, timeoutMs: 500, warnRows: 100000, onFailure: 'retry' }, createIngestionMetrics(base), createLogger('test', 'silent'), (f) => fills.push(f));
    forwarder.start();
    try {
      await eventually('the forwarder to report how full the outbox is', async () => fills.length > 0, 5000);
    } finally {
      await forwarder.stop();
      nowhere.close();
    }
    const used = box.usedBytes();
    expect(fills[0]).to.be.closeTo(used / (1024 * 1024), 0.05);
    expect(fills[0]).to.be.greaterThan(0.5);
    const text = await base.registry.metrics();
    expect(text).to.match(/flatline_ingestion_outbox_limit_bytes\{[^}]*\} 1048576/);
    expect(text).to.match(/flatline_ingestion_outbox_bytes\{[^}]*\} [1-9]\d+/);
    box.close();
  });
});
