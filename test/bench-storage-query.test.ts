/** The storage and query bench suites without running them: plans, the documents they write, ghz's command line and report, the floor server. */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { QueryServiceClient, type GetLatestResponse } from '@flatline/proto';
import { unaryCall, decodeLatest, deviceKey, readingsOfDocs, stateBucket, createLogger, createMetrics, serveMetrics } from '@flatline/platform';
import { toAppendBatch } from '@flatline/storage';
import { GET_FRESHNESS, GET_LATEST, PROTOSET, errorText, observeLoop, getLatestData, ghzArgs, parseGhzReport, queryResult, querySettings, querySuite, startFloor, type GhzSummary, type QueryRun, inParallel, median, fetchDocs, runOrder, skipped, stateUpdates, storageResult, storageSettings, storageSuite, workloadBatches, workloadReadings, type StorageRun } from '@flatline/bench';
import { tempDir } from '@flatline/stack';

const ctx = (quick: boolean) => ({ quick, keep: false, say: () => {} });
const small = { flats: 7, rounds: 3, fetchesPerAppend: 4, devicesPerFlat: 3, startMs: Date.UTC(2026, 0, 1) };

/** A ghz JSON report as ghz v0.121 writes it (durations in nanoseconds), trimmed to what the suite reads. */
function ghzReport(over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    date: '2026-11-29T12:00:00Z',
    count: 3000,
    total: 3_000_000_000,
    average: 1_500_000,
    fastest: 400_000,
    slowest: 12_000_000,
    rps: 1000,
    errorDistribution: null,
    statusCodeDistribution: { OK: 3000 },
    latencyDistribution: [
      { percentage: 10, latency: 700_000 },
      { percentage: 50, latency: 1_200_000 },
      { percentage: 99, latency: 4_800_000 },
    ],
    details: [],
    ...over,
  });
}

function summary(over: Partial<GhzSummary> = {}): GhzSummary {
  return { count: 3000, ok: 3000, errors: 0, seconds: 3, okRps: 1000, p50Ms: 1, p99Ms: 4, averageMs: 1.5, slowestMs: 10, statuses: { OK: 3000 }, errorMessages: {}, ...over };
}

describe('bench suites: storage and query (not run here)', () => {
  it('plan() says what a quick and a full run would do', () => {
    expect(storageSuite.name).to.equal('storage');
    expect(querySuite.name).to.equal('query');
    for (const suite of [storageSuite, querySuite]) {
      for (const quick of [true, false]) expect(suite.plan(ctx(quick)), `${suite.name} quick=${quick}`).to.be.a('string').with.length.greaterThan(40);
    }
    expect(storageSuite.plan(ctx(true))).to.include('21,000 readings').and.include('1 repeat');
    expect(storageSuite.plan(ctx(false))).to.include('201,000 readings').and.include('3 repeat');
    expect(querySuite.plan(ctx(true))).to.include('--rps 1000 -z 3s').and.include('--rps 0 -c 50');
    expect(querySuite.plan(ctx(false))).to.include('--rps 1000 -z 10s').and.include('-z 10s');
  });

  it('sizes quick runs at about 20k readings and full runs at about 200k, in Appends of 500 fetch results', () => {
    for (const [quick, about] of [
      [true, 20_000],
      [false, 200_000],
    ] as const) {
      const s = storageSettings(quick);
      expect(workloadReadings(s.workload)).to.be.within(about, about * 1.1);
      expect(s.workload.fetchesPerAppend).to.equal(500);
      expect(s.callers).to.be.within(2, 8);
    }
    expect(storageSettings(false).repeats).to.equal(3);
    expect(querySettings(true)).to.deep.include({ rps: 1000, fixedSeconds: 3, maxConcurrency: 50 });
    expect(querySettings(false)).to.deep.include({ rps: 1000, fixedSeconds: 10, maxSeconds: 10 });
  });

  describe('documents', () => {
    it('are flats × devices × consecutive seqs, each (flat, device, seq) once, in batches of fetchesPerAppend', () => {
      const batches = workloadBatches(small);
      // A stream of fetches cut every 4, as the forwarder takes the oldest of its outbox.
      expect(batches.map((b) => b.length)).to.deep.equal([4, 4, 4, 4, 4, 1]);
      const keys = batches.flat().flatMap((f) => f.readings.map((r) => `${r.flatId}/${r.deviceId}/${r.seq}`));
      expect(keys).to.have.length(workloadReadings(small)).and.to.have.length(7 * 3 * 3);
      expect(new Set(keys).size).to.equal(keys.length);
      const seqsOf = (flat: string, device: string) =>
        batches.flat().flatMap((f) => f.readings.filter((r) => r.flatId === flat && r.deviceId === device).map((r) => Number(r.seq)));
      expect(seqsOf('5', 'power-1')).to.deep.equal([1, 2, 3]);
      expect(new Set(batches.flat().flatMap((f) => f.readings.map((r) => r.deviceId)))).to.deep.equal(new Set(['heat-1', 'power-1', 'water-1']));
    });

    it('are Appends that storage accepts (its own validation)', () => {
      for (const fetches of workloadBatches({ ...small, flatPrefix: 'warmup-' })) {
        const batch = toAppendBatch({ fetches });
        expect(batch.readings).to.have.length(fetches.length * 3);
        expect(batch.fetchCount).to.equal(fetches.length);
      }
      expect(workloadBatches(storageSettings(true).workload).every((fetches) => toAppendBatch({ fetches }).readings.length === 1500)).to.equal(true);
    });

    it('map to the documents storage writes, for insertMany', () => {
      const [batch] = workloadBatches(small);
      const storedAt = new Date();
      // With fetch documents (the stack on PostgreSQL, and the raw runs): one per fetch result here, every reading in it.
      const perFetch = fetchDocs(batch!, storedAt);
      expect(perFetch.readings).to.equal(12);
      expect(readingsOfDocs(perFetch.docs).length).to.equal(12);
      expect(perFetch.docs).to.have.length(batch!.length);
      const first = batch![0]!.readings[0]!;
      expect(perFetch.docs[0]!.stored_at).to.equal(storedAt);
      expect(readingsOfDocs([perFetch.docs[0]!]).find((r) => r.deviceId === first.deviceId)).to.deep.equal({
        flatId: '1',
        deviceId: 'heat-1',
        epoch: 0,
        seq: 1,
        takenAtMs: first.takenAt!.getTime(),
        quantity: 'temperature',
        unit: 'Cel',
        value: first.value,
      });
    });

    it('give one $max upsert per flat-state bucket, with the last fetch and the latest reading per device', () => {
      const fetches = workloadBatches({ ...small, fetchesPerAppend: 100 })[0]!; // every round of every flat
      const ups = stateUpdates(fetches);
      expect(new Set(ups.map((u) => u.bucket)).size).to.equal(ups.length);
      expect(ups.map((u) => u.bucket).sort()).to.deep.equal([...new Set(['1', '2', '3', '4', '5', '6', '7'].map(stateBucket))].sort());
      const of3 = ups.find((u) => u.bucket === stateBucket('3'))!.max;
      expect(of3['at.3']).to.deep.equal(new Date(small.startMs + 3 * 5000));
      expect(decodeLatest(of3[`latest.3.${deviceKey('water-1')}`] as string)).to.include({ seq: 3, unit: 'm3' });
    });
  });

  it('says why when it cannot run, with no figures', () => {
    expect(skipped('ghz could not be installed')).to.deep.equal({ figures: [], details: [], notes: [], skipped: 'ghz could not be installed' });
  });

  it('alternates the order of the kinds of run', () => {
    expect(runOrder(1)).to.deep.equal(['storage', 'raw', 'raw+state']);
    expect(runOrder(2)).to.deep.equal(['raw+state', 'raw', 'storage']);
    expect(runOrder(3)).to.deep.equal(runOrder(1));
  });

  it('medians, and runs at most n at a time', async () => {
    expect(median([3, 1, 2])).to.equal(2);
    expect(median([4, 1, 2, 3])).to.equal(2.5);
    expect(Number.isNaN(median([]))).to.equal(true);
    let open = 0;
    let most = 0;
    const done: number[] = [];
    await inParallel([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      most = Math.max(most, ++open);
      await new Promise((r) => setTimeout(r, 5));
      open--;
      done.push(n);
    });
    expect(most).to.equal(3);
    expect(done.sort()).to.deep.equal([1, 2, 3, 4, 5, 6, 7]);
  });

  it('reports the median storage / raw ratio against 0.8× and every repeat', () => {
    const runs: StorageRun[] = [];
    const rates = { storage: [900, 700, 800], raw: [1000, 1000, 1000], 'raw+state': [850, 850, 850] } as const;
    for (const repeat of [1, 2, 3]) {
      for (const kind of runOrder(repeat)) {
        const rps = rates[kind][repeat - 1]!;
        runs.push({ kind, repeat, readings: 1000, seconds: 1000 / rps, readingsPerSecond: rps, dbCpuSeconds: 1, ...(kind === 'storage' ? { serviceCpuSeconds: 0.5 } : {}) });
      }
    }
    const result = storageResult(runs, storageSettings(false));
    const [vsRaw, vsState] = result.figures;
    expect(vsRaw).to.include({ flatline: '800 readings/s', versus: '1,000 readings/s', goal: '≥ 0.8× raw insertMany', met: true });
    expect(vsRaw!.ratio).to.be.closeTo(0.8, 1e-9);
    expect(vsRaw!.name).to.include('median of 3');
    expect(vsState!.ratio).to.be.closeTo(800 / 850, 1e-9);
    expect(result.details[0]!.rows).to.have.length(9);
    expect(result.details[1]!.rows.map((r) => r[1])).to.deep.equal(['0.90', '0.70', '0.80']);
    expect(result.notes.join('\n')).to.include('storage does more than insertMany');
  });

  describe('ghz', () => {
    it('is called at a fixed rate or none, for a duration, over a few connections, with a JSON report', () => {
      const args = ghzArgs({ target: '127.0.0.1:7102', call: GET_LATEST, data: getLatestData(1000), rps: 1000, durationSeconds: 10, concurrency: 50, connections: 4, output: '/tmp/x.json' });
      const flag = (name: string) => args[args.indexOf(name) + 1];
      expect(args).to.include('--insecure');
      expect(flag('--protoset')).to.equal(PROTOSET);
      expect(flag('--call')).to.equal('flatline.query.v1.QueryService/GetLatest');
      expect(flag('-d')).to.equal('{"flat_id":"{{randomInt 1 1001}}"}');
      expect([flag('--rps'), flag('-z'), flag('-c'), flag('--connections'), flag('-O'), flag('-o')]).to.deep.equal(['1000', '10s', '50', '4', 'json', '/tmp/x.json']);
      expect(flag('--duration-stop')).to.equal('wait');
      expect(args.at(-1)).to.equal('127.0.0.1:7102');
      const single = ghzArgs({ target: 'h:1', call: GET_LATEST, data: '{}', rps: 0, durationSeconds: 2, concurrency: 1, connections: 4, output: '/tmp/y.json' });
      expect(single[single.indexOf('--connections') + 1]).to.equal('1');
    });

    it('finds the query service in the protoset it is given (with Timestamp, which the messages use)', () => {
      const set = readFileSync(PROTOSET).toString('latin1');
      expect(set).to.include('flatline/query/v1/query.proto').and.include('QueryService').and.include('GetFreshness');
      expect(set).to.include('google/protobuf/timestamp.proto');
    });

    it('reads a report: nanoseconds to ms, percentiles of OK answers, errors from the status counts', () => {
      const s = parseGhzReport(ghzReport());
      expect(s).to.deep.include({ count: 3000, ok: 3000, errors: 0, seconds: 3, okRps: 1000, p50Ms: 1.2, p99Ms: 4.8, averageMs: 1.5, slowestMs: 12 });
      expect(errorText(s)).to.equal('');
      const bad = parseGhzReport(
        ghzReport({ statusCodeDistribution: { OK: 2990, Unavailable: 7, DeadlineExceeded: 3 }, errorDistribution: { 'rpc error: code = Unavailable desc = x': 7, 'rpc error: code = DeadlineExceeded desc = y': 3 } }),
      );
      expect(bad).to.deep.include({ ok: 2990, errors: 10 });
      expect(bad.okRps).to.be.closeTo(2990 / 3, 1e-9);
      expect(errorText(bad)).to.equal('10 errors (Unavailable 7, DeadlineExceeded 3)');
      expect(parseGhzReport(ghzReport({ latencyDistribution: null, statusCodeDistribution: { Unavailable: 3000 } }))).to.deep.include({ ok: 0, errors: 3000 });
      expect(Number.isNaN(parseGhzReport(ghzReport({ latencyDistribution: null })).p99Ms)).to.equal(true);
      expect(() => parseGhzReport('{"summary":"text"}')).to.throw(/not a ghz JSON report/);
      expect(() => parseGhzReport('Summary:\n  Count: 10')).to.throw();
    });
  });

  describe('query figures', () => {
    const settings = querySettings(true);
    const r = (target: QueryRun['target'], call: string, mode: QueryRun['mode'], s: GhzSummary, repeat = 1): QueryRun => ({
      label: `${target} ${call.slice(call.lastIndexOf('/') + 1)}`,
      target,
      call,
      mode,
      repeat,
      summary: s,
      serverCpuSeconds: 1,
      dbCpuSeconds: 2,
    });

    it('compare GetLatest with the floor and judge p99 ≤ 5 ms and throughput ≥ 0.5×', () => {
      const result = queryResult(
        [
          r('query', GET_LATEST, 'fixed', summary({ p50Ms: 1.5, p99Ms: 4.5 })),
          r('floor', GET_LATEST, 'fixed', summary({ p50Ms: 0.5, p99Ms: 1.5 })),
          r('query', GET_FRESHNESS, 'fixed', summary({ p50Ms: 3, p99Ms: 9 })),
          r('query', GET_LATEST, 'max', summary({ okRps: 6000 })),
          r('floor', GET_LATEST, 'max', summary({ okRps: 10000 })),
        ],
        settings,
      );
      const [p99, p50, fp50, fp99, max] = result.figures;
      expect(p99).to.include({ name: 'GetLatest p99 at 1000 rps', flatline: '4.50 ms', versus: '1.50 ms (floor)', goal: '≤ 5 ms', met: true });
      expect(p99!.ratio).to.be.closeTo(3, 1e-9);
      expect(p50!.flatline).to.equal('1.50 ms');
      expect(fp50!.flatline).to.equal('3.00 ms');
      expect(fp99!.flatline).to.equal('9.00 ms');
      expect(max).to.include({ flatline: '6,000 rps', versus: '10,000 rps', goal: '≥ 0.5× floor', met: true });
      expect(max!.ratio).to.be.closeTo(0.6, 1e-9);
      expect(result.notes.join('\n')).to.not.include('error').and.not.include('not held');
    });

    it('say so when a run had errors or did not hold the rate, and then do not count the goal as met', () => {
      const result = queryResult(
        [
          r('query', GET_LATEST, 'fixed', summary({ count: 600, ok: 590, errors: 10, okRps: 196, p99Ms: 4, statuses: { OK: 590, Unavailable: 10 }, errorMessages: { 'rpc error: code = Unavailable': 10 } })),
          r('floor', GET_LATEST, 'fixed', summary()),
          r('query', GET_LATEST, 'max', summary({ okRps: 200 })),
          r('floor', GET_LATEST, 'max', summary({ okRps: 1000 })),
        ],
        settings,
      );
      expect(result.figures[0]!.name).to.equal('GetLatest p99 at 1000 rps — 10 errors');
      expect(result.figures[0]!.met).to.equal(false);
      expect(result.figures[4]!.met).to.equal(false);
      const notes = result.notes.join('\n');
      expect(notes).to.include('10 errors (Unavailable 10)').and.include('the rate was not held');
      expect(notes).to.include('ms CPU in the service');
    });
  });

  describe("the query service's event loop over a run (observeLoop, its /metrics)", () => {
    it('sees a stall of the process and its GC pauses within the window, and says in a note whether a stall reaches the p99', async () => {
      const metrics = createMetrics('loop-test');
      const server = await serveMetrics('127.0.0.1:0', metrics.registry, createLogger('loop-test', 'silent'));
      try {
        const close = await observeLoop(`127.0.0.1:${server.port}`);
        expect(close, 'observeLoop of a live /metrics').to.not.equal(undefined);
        // A 150 ms stall (a turn after the scrape: the delay monitor does not see a block in the turn it was reset in), and garbage enough for several scavenges.
        await new Promise((r) => setTimeout(r, 30));
        const until = performance.now() + 150;
        while (performance.now() < until);
        let keep = 0;
        for (let i = 0; i < 200_000; i++) keep += new Array(64).fill(i).length;
        expect(keep).to.be.greaterThan(0);
        await new Promise((r) => setTimeout(r, 50));
        const l = (await close!())!;
        expect(l.delayMaxMs, 'event-loop delay max').to.be.at.least(100);
        expect(l.gcPauses, 'GC pauses').to.be.greaterThan(0);
        expect(l.gcMs).to.be.greaterThan(0);

        const latest = (p99Ms: number) => ({ label: 'query GetLatest', target: 'query' as const, call: GET_LATEST, mode: 'fixed' as const, repeat: 1, summary: summary({ p99Ms }), serverCpuSeconds: 1, dbCpuSeconds: 1, loop: l });
        const note = (p99Ms: number) => queryResult([latest(p99Ms)], querySettings(false)).notes.find((n) => n.includes('event loop was delayed'));
        expect(note(50)).to.include('stalls of the service itself reach the p99');
        expect(note(l.delayMaxMs + 50)).to.include('no stall of the service reached the p99');
      } finally {
        await server.close();
      }
    });

    it('answers undefined when /metrics does not answer', async () => {
      expect(await observeLoop('127.0.0.1:1')).to.equal(undefined);
    });
  });

  it('serves the floor from a child process: the constant GetLatest answer it was given', async function () {
    this.timeout(30000);
    const dir = tempDir('bench-floor');
    const answer: GetLatestResponse = {
      flatId: '1',
      readings: [{ flatId: '1', deviceId: 'heat-1', seq: '7', takenAt: new Date('2026-11-29T12:00:00Z'), quantity: 'temperature', unit: 'Cel', value: 21.5, epoch: 0 }],
      lastFetchAt: new Date('2026-11-29T12:00:01Z'),
    };
    const floor = await startFloor(answer, join(dir.path, 'floor.log'));
    const client = new QueryServiceClient(floor.address, credentials.createInsecure());
    try {
      expect(await unaryCall(client, client.getLatest, { flatId: '999' }, 5000)).to.deep.equal(answer);
      const err = await unaryCall(client, client.getFreshness, { flatIds: [], excludeFlatIds: [], limit: 0 }, 5000).catch((e: unknown) => e);
      expect(err).to.have.property('code', 12); // UNIMPLEMENTED
    } finally {
      client.close();
      await floor.process.stop();
      dir.cleanup();
    }
  });
});
