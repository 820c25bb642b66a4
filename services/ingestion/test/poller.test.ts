import { expect } from 'chai';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createLogger, createMetrics } from '@flatline/platform';
import { eventually, tempDir } from '@flatline/stack';
import { DeviceClient } from '../src/devices/device-client.ts';
import { createIngestionMetrics } from '../src/metrics.ts';
import { Outbox } from '../src/outbox/outbox.ts';
import { Poller } from '../src/poller.ts';

const T0 = Date.parse('2026-12-01T06:00:00.000Z');
const credentials = new Map([['7', { username: 'flat-7', password: 'secret-seven' }]]);

/** A device gateway (plain HTTP, as behind a TLS-originating sidecar) answering seqs from..to of heat-1, or 503. */
function gateway(): { server: Server; answer: (range: [number, number] | 'down') => void } {
  let current: [number, number] | 'down' = 'down';
  const server = createServer((_req, res) => {
    if (current === 'down') {
      res.statusCode = 503;
      res.end();
      return;
    }
    const readings = [];
    for (let seq = current[0]; seq <= current[1]; seq++) readings.push({ seq, taken_at: new Date(T0 + seq * 1000).toISOString(), value: seq });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ flat_id: '7', devices: [{ device_id: 'heat-1', quantity: 'temperature', unit: 'Cel', readings }] }));
  });
  return { server, answer: (range) => (current = range) };
}

describe('poller: readings lost at the device', () => {
  const dir = tempDir('poller');
  after(() => dir.cleanup());

  /** Polls flat 7 while the gateway answers seqs 1..3, then is down, then answers `after`; returns the missed counter and the log. */
  async function run(name: string, after: [number, number]): Promise<{ missed: number; log: string }> {
    const { server, answer } = gateway();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = new DeviceClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, caFile: join(dir.path, 'unused-ca.pem'), credentials, connections: 2 });
    const outbox = new Outbox(join(dir.path, name, 'outbox.sqlite'));
    const metrics = createIngestionMetrics(createMetrics('ingestion'));
    const logFile = join(dir.path, `${name}.log`);
    const poller = new Poller({ intervalMs: 100, timeoutMs: 1000, concurrency: 4, breakerFailures: 1000, backoffMaxMs: 100 }, client, outbox, metrics, createLogger('ingestion', 'info', logFile));
    const fetches = async (): Promise<number> => outbox.size().fetches;
    try {
      answer([1, 3]);
      poller.setFlats(['7'], true);
      poller.start();
      await eventually('the first fetch kept', async () => (await fetches()) >= 1, 5000, 20);
      answer('down');
      const kept = await fetches();
      await new Promise((r) => setTimeout(r, 300));
      expect(await fetches(), 'nothing kept while the gateway answers 503').to.equal(kept);
      answer(after);
      await eventually('a fetch after the outage kept', async () => (await fetches()) > kept, 5000, 20);
      await poller.stop(1000);
      const missed = (await metrics.missed.get()).values.reduce((n, v) => n + v.value, 0);
      return { missed, log: readFileSync(logFile, 'utf8') };
    } finally {
      await poller.stop(0);
      await client.close();
      outbox.close();
      server.close();
    }
  }

  it('counts and logs readings the device no longer had (seqs 4..7 gone after the outage): flat, device, seqs and the time they span', async () => {
    const { missed, log } = await run('lost', [8, 10]);
    expect(missed).to.equal(4);
    const lines = log.split('\n').filter((l) => l.includes('readings missed'));
    expect(lines, log).to.have.length(1);
    const line = JSON.parse(lines[0]!) as { level: number; readings: number; flats: number; holes: string[] };
    expect(line.level).to.equal(40);
    expect(line.readings).to.equal(4);
    expect(line.flats).to.equal(1);
    expect(line.holes).to.deep.equal(['flat 7 heat-1: seq 4..7 (5.0 s between the readings either side)']);
    expect(log).to.not.include('secret-seven');
  });

  it('negative control: a device that still had every reading after the outage (seqs 1..10) is no loss and logs none', async () => {
    const { missed, log } = await run('kept', [1, 10]);
    expect(missed).to.equal(0);
    expect(log).to.not.include('readings missed');
  });
});

describe('poller: the poll timeout', () => {
  const dir = tempDir('poller-timeout');
  after(() => dir.cleanup());

  /** A DeviceClient that remembers the signal of each fetch it was given. */
  class SignalsSeen extends DeviceClient {
    readonly signals: AbortSignal[] = [];
    override async fetch(flatId: string, signal: AbortSignal): Promise<string> {
      this.signals.push(signal);
      return super.fetch(flatId, signal);
    }
  }

  /** Polls flat 7 at a gateway that answers after delayMs; returns the outcomes counted and the signals of the polls. */
  async function run(name: string, delayMs: number): Promise<{ outcomes: Record<string, number>; signals: AbortSignal[]; requestsClosedEarly: number }> {
    let closedEarly = 0;
    const server = createServer((req, res) => {
      let answered = false;
      res.on('close', () => {
        if (!answered) closedEarly += 1;
      });
      setTimeout(() => {
        answered = true;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ flat_id: '7', devices: [{ device_id: 'heat-1', quantity: 'temperature', unit: 'Cel', readings: [{ seq: 1, taken_at: new Date(T0).toISOString(), value: 1 }] }] }));
      }, delayMs);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = new SignalsSeen({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, caFile: undefined, credentials, connections: 2 });
    const outbox = new Outbox(join(dir.path, name, 'outbox.sqlite'));
    const metrics = createIngestionMetrics(createMetrics('ingestion'));
    const poller = new Poller({ intervalMs: 100, timeoutMs: 250, concurrency: 4, breakerFailures: 1000, backoffMaxMs: 100 }, client, outbox, metrics, createLogger('ingestion', 'fatal'));
    try {
      poller.setFlats(['7'], true);
      poller.start();
      await eventually('three polls ended', async () => (await metrics.polls.get()).values.reduce((n, v) => n + v.value, 0) >= 3, 10_000, 20);
      await poller.stop(1000);
      const outcomes: Record<string, number> = {};
      for (const v of (await metrics.polls.get()).values) outcomes[String(v.labels['outcome'])] = v.value;
      return { outcomes, signals: client.signals, requestsClosedEarly: closedEarly };
    } finally {
      await poller.stop(0);
      await client.close();
      outbox.close();
      server.close();
    }
  }

  it('cuts off a device that answers after the timeout: the poll counts as a timeout and its request is closed, not left waiting', async () => {
    const { outcomes, signals, requestsClosedEarly } = await run('slow', 2000);
    expect(outcomes['timeout'] ?? 0).to.be.at.least(1);
    expect(outcomes['ok'] ?? 0).to.equal(0);
    expect(signals.every((s) => s.aborted)).to.equal(true);
    await eventually('the gateway saw the requests closed', async () => requestsClosedEarly >= 1, 5000, 20);
  });

  it('leaves the signal of a poll that answered alone: aborting it afterwards would build an AbortError for nothing (8 % of ingestion\'s CPU at 3,000 flats)', async () => {
    const { outcomes, signals } = await run('fast', 0);
    expect(outcomes['ok'] ?? 0).to.be.at.least(3);
    expect(signals.length).to.be.at.least(3);
    expect(signals.filter((s) => s.aborted)).to.have.length(0);
  });
});
