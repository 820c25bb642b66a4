/**
 * Benchmark suite "storage": Append throughput of the storage service next to
 * raw mongodb driver insertMany of the same documents, in the same batches,
 * into the same FerretDB (issue [E] item 2), on PostgreSQL with the indexes
 * the stack makes there, as `npm start` runs it: fetch documents
 * (FLATLINE_STORAGE_FETCH_DOCUMENTS=1), which the raw runs insert too
 * (fetchDocs).
 *
 * Every run starts from an empty database of its own (one per run, same
 * FerretDB), so no run pays for the index pages another one grew, and the
 * storage service is started fresh against that database (it creates its
 * indexes itself; the raw runs create the very same ones, readingIndexesFor({ ferretdb: true })
 * of the store schema, with the driver). The kinds of run alternate their order from
 * repeat to repeat so that a neighbour's burst of CPU or a warming SQLite
 * cache does not always favour the same side.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import type { Db, MongoClient } from 'mongodb';
import { StorageServiceClient, type FetchResult } from '@flatline/proto';
import { checkHealth, deadline, unaryCall, createMongoClient, COLLECTIONS, deviceKey, encodeLatest, fetchDocsOf, stateBucket, type FetchDoc, type StateDoc, readingIndexesFor, DUPLICATE_KEY } from '@flatline/platform';
import { REPO_ROOT, TOOLS_BIN, ensureIdIndexes, ensureReadingsSlotIndex, startDatabase, startPostgres, startService, treeStatsOf, type RunningDatabase, type RunningPostgres, type RunningService, cpuSeconds } from '@flatline/stack';
import { sleep, type BenchContext, type BenchSuite, type DetailTable, type Figure, type SuiteResult } from './suite.ts';

/** The kinds of meter a flat has, as the device simulator names them (heat-1, power-1, water-1). */
const DEVICES = [
  { id: 'heat-1', quantity: 'temperature', unit: 'Cel' },
  { id: 'power-1', quantity: 'electricity', unit: 'kWh' },
  { id: 'water-1', quantity: 'water', unit: 'm3' },
] as const;

/** How the documents of a run are laid out. */
export interface Workload {
  /** Flats, named "1", "2", … as the local stack names them. */
  readonly flats: number;
  /** Polls of every flat; each brings one new reading per device (seq = round). */
  readonly rounds: number;
  /** Fetch results per Append, as ingestion's forwarder sends (FLATLINE_FORWARD_BATCH, default 500). */
  readonly fetchesPerAppend: number;
  /** Devices per flat (1 to 3). */
  readonly devicesPerFlat: number;
  /** Time of the first reading (ms); a poll every 5 s after it. */
  readonly startMs: number;
  /** Prefix of the flat ids (keeps warm-up flats apart from measured ones). */
  readonly flatPrefix?: string;
}

/** Readings a workload holds. */
export function workloadReadings(w: Workload): number {
  return w.flats * w.rounds * w.devicesPerFlat;
}

/**
 * The Append batches of a workload: round after round, every flat fetched
 * once per round with one new reading per device (consecutive seqs per
 * device); that stream of fetches is cut every fetchesPerAppend, as the
 * forwarder takes the oldest of its outbox. Values follow the shape of the
 * simulator's (a temperature, two growing counters).
 */
export function workloadBatches(w: Workload): FetchResult[][] {
  const devices = DEVICES.slice(0, w.devicesPerFlat);
  const batches: FetchResult[][] = [];
  let batch: FetchResult[] = [];
  for (let round = 1; round <= w.rounds; round++) {
    const fetchedAt = new Date(w.startMs + round * 5000);
    for (let f = 1; f <= w.flats; f++) {
      const flatId = `${w.flatPrefix ?? ''}${f}`;
      batch.push({
        flatId,
        fetchedAt,
        readings: devices.map((d, i) => ({
          flatId,
          deviceId: d.id,
          seq: String(round),
          epoch: 0,
          takenAt: new Date(fetchedAt.getTime() - 1000),
          quantity: d.quantity,
          unit: d.unit,
          value: i === 0 ? 21 + ((f * 7 + round) % 30) / 10 : f + round * 0.0125,
        })),
      });
      if (batch.length === w.fetchesPerAppend) {
        batches.push(batch);
        batch = [];
      }
    }
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/**
 * The documents storage writes for a batch with fetch documents
 * (FLATLINE_STORAGE_FETCH_DOCUMENTS=1, as the stack runs it on PostgreSQL;
 * reading-store.ts), for the raw driver runs, and the readings they hold.
 */
export function fetchDocs(batch: readonly FetchResult[], storedAt: Date): { docs: FetchDoc[]; readings: number } {
  const docs = batch.flatMap((f) =>
    fetchDocsOf(
      f.flatId,
      f.readings.map((r) => ({ deviceId: r.deviceId, epoch: r.epoch, seq: Number(r.seq), takenAtMs: r.takenAt!.getTime(), quantity: r.quantity, unit: r.unit, value: r.value })),
      storedAt,
    ).map((d) => d.doc),
  );
  return { docs, readings: batch.reduce((n, f) => n + f.readings.length, 0) };
}

/** One $max upsert of a flat-state bucket document. */
export interface StateUpsert {
  readonly bucket: string;
  readonly max: Readonly<Record<string, Date | string>>;
}

/**
 * The flat-state updates storage makes for a batch, written the plain way:
 * one $max upsert per bucket document the batch touches, fields as
 * store-schema.ts defines them (at.<flat>, latest.<flat>.<device>).
 */
export function stateUpdates(batch: readonly FetchResult[]): StateUpsert[] {
  const buckets = new Map<string, Record<string, Date | string>>();
  const put = (flatId: string, field: string, value: Date | string): void => {
    const bucket = stateBucket(flatId);
    let fields = buckets.get(bucket);
    if (fields === undefined) buckets.set(bucket, (fields = {}));
    const known = fields[field];
    if (known === undefined || known < value) fields[field] = value;
  };
  for (const f of batch) {
    put(f.flatId, `at.${f.flatId}`, f.fetchedAt!);
    for (const r of f.readings) {
      const latest = encodeLatest({ epoch: 0, seq: Number(r.seq), takenAtMs: r.takenAt!.getTime(), value: r.value, quantity: r.quantity, unit: r.unit });
      put(f.flatId, `latest.${f.flatId}.${deviceKey(r.deviceId)}`, latest);
    }
  }
  return [...buckets].map(([bucket, max]) => ({ bucket, max }));
}

/** Median of values (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** A number with thousands separators, rounded. */
export function whole(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–';
}

/** Runs items through fn with at most `concurrency` calls at a time, in order of the queue. */
export async function inParallel<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** Version of an npm package installed at the repository root ('' if unknown). */
export function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string }).version ?? '';
  } catch {
    return '';
  }
}

/** The FerretDB version tools/ferretdb builds (from its go.mod; '' if unknown). */
export function ferretdbVersion(): string {
  try {
    return /github\.com\/FerretDB\/FerretDB (v\S+)/.exec(readFileSync(join(REPO_ROOT, 'tools', 'ferretdb', 'go.mod'), 'utf8'))?.[1] ?? '';
  } catch {
    return '';
  }
}

/**
 * FerretDB on PostgreSQL in a temporary folder, removed by close() unless
 * kept, with the indexes the stack adds there: as `npm start` runs it.
 */
export class BenchDatabase {
  private constructor(
    readonly dir: string,
    readonly db: RunningDatabase,
    readonly postgres: RunningPostgres,
    private readonly keep: boolean,
  ) {}

  /** Starts PostgreSQL and FerretDB on it, on free ports, with their files under a new temporary folder. */
  static async start(prefix: string, ctx: BenchContext): Promise<BenchDatabase> {
    const dir = mkdtempSync(join(tmpdir(), `flatline-bench-${prefix}-`));
    let postgres: RunningPostgres | undefined;
    try {
      postgres = await startPostgres({ dataDir: join(dir, 'postgresql'), logFile: join(dir, 'logs', 'postgres.log') });
      const db = await startDatabase({ listen: '127.0.0.1:0', stateDir: join(dir, 'ferretdb'), postgresqlUrl: postgres.url, logFile: join(dir, 'logs', 'ferretdb.log') });
      return new BenchDatabase(dir, db, postgres, ctx.keep);
    } catch (err) {
      await postgres?.stop();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Before anything writes to database: the slot and _id indexes the stack makes (stack/src/postgres.ts). */
  async prepare(database: string): Promise<void> {
    await ensureReadingsSlotIndex(this.uri(database), this.postgres.url);
    await ensureIdIndexes(this.uri(database), this.postgres.url);
  }

  /** CPU seconds the database has used so far: FerretDB, and PostgreSQL's process tree (its backends, WAL writer, checkpointer). */
  cpuSeconds(): number {
    const ferretdb = this.db.process.pid;
    const postgres = this.postgres.process.pid;
    if (ferretdb === undefined || postgres === undefined) return Number.NaN;
    const stats = treeStatsOf([ferretdb, postgres]);
    return (stats.get(ferretdb)?.cpuS ?? Number.NaN) + (stats.get(postgres)?.cpuS ?? Number.NaN);
  }

  /** Connection string of a database of this FerretDB. */
  uri(database: string): string {
    return `mongodb://${this.db.address}/${database}`;
  }

  /** Starts a flatline service (storage or query) against database, on free ports, waiting until it is SERVING. */
  async service(service: 'storage' | 'query', database: string, name: string = service): Promise<RunningService> {
    const upper = service.toUpperCase();
    const running = await startService({
      service,
      name,
      env: {
        [`FLATLINE_${upper}_LISTEN`]: '127.0.0.1:0',
        [`FLATLINE_${upper}_METRICS_LISTEN`]: '127.0.0.1:0',
        FLATLINE_MONGODB_URI: this.uri(database),
        // A throughput run queues big batches on a database shared by
        // concurrent callers: bound each call generously so that the figure
        // is a rate, not a count of timeouts.
        FLATLINE_DB_TIMEOUT_MS: '30000',
        FLATLINE_LOG_LEVEL: 'info',
        // As the stack runs them on PostgreSQL (stack.ts): ranges read slot by slot through the slot index, readings kept per fetch.
        ...(service === 'query' ? { FLATLINE_QUERY_SLOT_READS: '1' } : { FLATLINE_STORAGE_FETCH_DOCUMENTS: '1' }),
      },
      logFile: join(this.dir, 'logs', `${name}.log`),
    });
    for (const end = Date.now() + 20000; ; ) {
      if ((await checkHealth(running.grpc)) === 'SERVING') return running;
      if (Date.now() > end) {
        await running.process.stop();
        throw new Error(`${name} did not become SERVING within 20 s; see ${running.process.logFile}`);
      }
      await sleep(100);
    }
  }

  /** Stops FerretDB (and PostgreSQL) and removes the folder (unless kept: then says where it is). */
  async close(ctx: BenchContext): Promise<void> {
    await this.db.process.stop();
    await this.postgres.stop();
    if (this.keep) ctx.say(`kept ${this.dir}`);
    else rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The ways the same documents are written. */
export type StorageRunKind = 'storage' | 'raw' | 'raw+state';

/** One timed run. */
export interface StorageRun {
  readonly kind: StorageRunKind;
  readonly repeat: number;
  readonly readings: number;
  readonly seconds: number;
  readonly readingsPerSecond: number;
  /** CPU seconds the database (FerretDB and its PostgreSQL) used during the run. */
  readonly dbCpuSeconds: number;
  /** CPU seconds the storage service used during the run (storage runs only). */
  readonly serviceCpuSeconds?: number;
}

/** CPU seconds of a process, or NaN once it is gone. */
function cpuOf(pid: number | undefined): number {
  try {
    return pid === undefined ? Number.NaN : cpuSeconds(pid);
  } catch {
    return Number.NaN;
  }
}

/** Settings of a storage suite run. */
export interface StorageSettings {
  readonly workload: Workload;
  readonly repeats: number;
  /** Concurrent callers, as ingestion replicas forwarding at once. */
  readonly callers: number;
}

/** The settings of a quick or full run. */
export function storageSettings(quick: boolean): StorageSettings {
  // 1000 flats × 3 devices: one round is 3000 readings, 2 Appends of 500 fetch results.
  return {
    workload: { flats: 1000, rounds: quick ? 7 : 67, fetchesPerAppend: 500, devicesPerFlat: 3, startMs: Date.UTC(2026, 0, 1) },
    repeats: quick ? 1 : 3,
    callers: 4,
  };
}

/** Deadline of one Append in the benchmark (generous: a rate is measured, not a latency). */
const APPEND_DEADLINE_MS = 120000;

/** Appends every batch through the storage service at address with `callers` concurrent callers; returns readings inserted. */
export async function appendAll(address: string, batches: readonly FetchResult[][], callers: number): Promise<number> {
  const client = new StorageServiceClient(address, credentials.createInsecure());
  let inserted = 0;
  try {
    await inParallel(batches, callers, async (fetches) => {
      const res = await unaryCall(client, client.append, { fetches }, APPEND_DEADLINE_MS);
      inserted += res.inserted;
    });
  } finally {
    client.close();
  }
  return inserted;
}


/** The raw driver side: insertMany (and optionally the state updates) of every batch with `callers` concurrent callers. */
async function rawAll(db: Db, batches: ReadonlyArray<{ docs: FetchDoc[]; readings: number }>, state: ReadonlyArray<StateUpsert[]> | undefined, callers: number): Promise<number> {
  const readings = db.collection<FetchDoc>(COLLECTIONS.readings);
  const flatState = db.collection<StateDoc>(COLLECTIONS.state);
  let inserted = 0;
  await inParallel(
    batches.map((b, i) => ({ docs: b.docs, readings: b.readings, state: state?.[i] })),
    callers,
    async (b) => {
      // Shallow copies: insertMany sets _id on the documents it is given, and
      // every repeat must send the same documents as the first.
      const res = await readings.insertMany(
        b.docs.map((d) => ({ ...d })),
        { ordered: false },
      );
      if (res.insertedCount !== b.docs.length) throw new Error(`raw insertMany inserted ${res.insertedCount} of ${b.docs.length} documents`);
      inserted += b.readings;
      // One update per bucket, one after the other, as storage's state writer does.
      for (const op of b.state ?? []) {
        const update = (): Promise<unknown> => flatState.updateOne({ _id: op.bucket }, { $max: { ...op.max } }, { upsert: true });
        // Two callers upserting a new bucket at once: one insert loses with a
        // duplicate key; once more finds the document and updates it.
        await update().catch((err: unknown) => {
          if ((err as { code?: unknown }).code === DUPLICATE_KEY) return update();
          throw err;
        });
      }
    },
  );
  return inserted;
}

/** Everything a run needs, generated once before any timing. */
interface Prepared {
  readonly batches: FetchResult[][];
  readonly docs: Array<{ docs: FetchDoc[]; readings: number }>;
  readonly state: StateUpsert[][];
  readonly warmup: FetchResult[][];
  readonly warmupDocs: Array<{ docs: FetchDoc[]; readings: number }>;
  readonly warmupState: StateUpsert[][];
  readonly readings: number;
}

function prepare(settings: StorageSettings): Prepared {
  const storedAt = new Date();
  const batches = workloadBatches(settings.workload);
  // A small batch of other flats first, on every side alike: it warms the
  // JIT, the connections and the new database's files before the clock runs.
  const warmup = workloadBatches({ ...settings.workload, flats: 50, rounds: 1, flatPrefix: 'warmup-' });
  return {
    batches,
    docs: batches.map((b) => fetchDocs(b, storedAt)),
    state: batches.map(stateUpdates),
    warmup,
    warmupDocs: warmup.map((b) => fetchDocs(b, storedAt)),
    warmupState: warmup.map(stateUpdates),
    readings: workloadReadings(settings.workload),
  };
}

/** One timed run of one kind, each in a database of its own. */
async function timedRun(kind: StorageRunKind, repeat: number, bench: BenchDatabase, client: MongoClient, p: Prepared, callers: number): Promise<StorageRun> {
  const database = `bench_${kind.replace('+', '_')}_${repeat}`;
  await bench.prepare(database);
  if (kind === 'storage') {
    const storage = await bench.service('storage', database, `storage-${repeat}`);
    try {
      await appendAll(storage.grpc, p.warmup, callers);
      const cpu0 = [bench.cpuSeconds(), cpuOf(storage.process.pid)];
      const t0 = performance.now();
      const inserted = await appendAll(storage.grpc, p.batches, callers);
      const seconds = (performance.now() - t0) / 1000;
      const cpu1 = [bench.cpuSeconds(), cpuOf(storage.process.pid)];
      if (inserted !== p.readings) throw new Error(`storage inserted ${inserted} readings, expected ${p.readings}`);
      return { kind, repeat, readings: inserted, seconds, readingsPerSecond: inserted / seconds, dbCpuSeconds: cpu1[0]! - cpu0[0]!, serviceCpuSeconds: cpu1[1]! - cpu0[1]! };
    } finally {
      await storage.process.stop();
    }
  }
  const db = client.db(database);
  for (const { key, ...options } of readingIndexesFor({ ferretdb: true })) await db.collection(COLLECTIONS.readings).createIndex(key, deadline(30000, options));
  const withState = kind === 'raw+state';
  await rawAll(db, p.warmupDocs, withState ? p.warmupState : undefined, callers);
  const cpu0 = bench.cpuSeconds();
  const t0 = performance.now();
  const inserted = await rawAll(db, p.docs, withState ? p.state : undefined, callers);
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = bench.cpuSeconds();
  if (inserted !== p.readings) throw new Error(`${kind} inserted ${inserted} readings, expected ${p.readings}`);
  return { kind, repeat, readings: inserted, seconds, readingsPerSecond: inserted / seconds, dbCpuSeconds: cpu1 - cpu0 };
}

/** Order of the kinds in repeat r (1-based): reversed every other repeat. */
export function runOrder(repeat: number): StorageRunKind[] {
  const kinds: StorageRunKind[] = ['storage', 'raw', 'raw+state'];
  return repeat % 2 === 1 ? kinds : kinds.reverse();
}

/** A result with no figures, only why the suite could not run here (FerretDB or ghz missing …). */
export function skipped(reason: string): SuiteResult {
  return { figures: [], details: [], notes: [], skipped: reason };
}

/** Figures, details and notes of the storage runs. */
export function storageResult(runs: readonly StorageRun[], settings: StorageSettings): SuiteResult {
  const repeats = [...new Set(runs.map((r) => r.repeat))].sort((a, b) => a - b);
  const rate = (kind: StorageRunKind, repeat: number): number => runs.find((r) => r.kind === kind && r.repeat === repeat)?.readingsPerSecond ?? Number.NaN;
  const ratios = repeats.map((r) => rate('storage', r) / rate('raw', r));
  const ratiosState = repeats.map((r) => rate('storage', r) / rate('raw+state', r));
  const med = (kind: StorageRunKind): number => median(repeats.map((r) => rate(kind, r)));
  const ratio = median(ratios);
  const ratioState = median(ratiosState);
  const of = repeats.length > 1 ? ` (median of ${repeats.length})` : '';
  const w = settings.workload;
  const figures: Figure[] = [
    {
      name: `storage Append vs raw insertMany, readings/s${of}`,
      flatline: `${whole(med('storage'))} readings/s`,
      versus: `${whole(med('raw'))} readings/s`,
      ratio,
      goal: '≥ 0.8× raw insertMany',
      ...(Number.isFinite(ratio) ? { met: ratio >= 0.8 } : {}),
    },
    {
      name: `storage Append vs raw insertMany + the same state updates${of}`,
      flatline: `${whole(med('storage'))} readings/s`,
      versus: `${whole(med('raw+state'))} readings/s`,
      ratio: ratioState,
    },
  ];
  const rows = runs.map((r) => [
    String(r.repeat),
    r.kind,
    whole(r.readings),
    r.seconds.toFixed(2),
    whole(r.readingsPerSecond),
    r.dbCpuSeconds.toFixed(2),
    r.serviceCpuSeconds === undefined ? '' : r.serviceCpuSeconds.toFixed(2),
  ]);
  const details: DetailTable[] = [
    { title: 'storage: every run (in the order run)', head: ['repeat', 'kind', 'readings', 'seconds', 'readings/s', 'database CPU s (FerretDB + PostgreSQL)', 'storage CPU s'], rows },
    {
      title: 'storage: ratios per repeat',
      head: ['repeat', 'storage / raw', 'storage / raw+state'],
      rows: repeats.map((r, i) => [String(r), ratios[i]!.toFixed(2), ratiosState[i]!.toFixed(2)]),
    },
  ];
  const notes = [
    `Same documents every way: ${w.flats} flats × ${w.devicesPerFlat} devices × ${w.rounds} consecutive seqs = ${whole(workloadReadings(w))} readings in Appends of ${w.fetchesPerAppend} fetch results (${w.fetchesPerAppend * w.devicesPerFlat} readings), ${settings.callers} concurrent callers on every side; every run into an empty database of its own with storage's indexes on FerretDB (the unique flat_device_epoch_seq), after the same 50-flat warm-up batch.`,
    'storage does more than insertMany: it validates the request, and after the readings it writes the flat state (last fetch per flat, latest reading per device: $max upserts of the bucket documents, group-committed across concurrent Appends). "raw+state" adds those updates to raw insertMany the plain way (one upsert per touched bucket per batch, no group commit): storage / raw+state shows what flatline\'s own code (gRPC, validation, state writer) costs or saves; raw+state / raw what the state costs.',
    'Both sides run with the driver defaults (write concern of the server, no journal flag), retryWrites off as in the services; the storage service runs with FLATLINE_DB_TIMEOUT_MS=30000 so that a queued big batch is measured, not timed out.',
    'Every reading is new, as ingestion\'s outbox forwards only readings past its per-device cursor; duplicates (a retried Append, overlapping replicas) take another path in storage, not measured here. One new reading per device per fetch (a device period equal to the poll interval): with the simulator\'s defaults (1 s period, 5 s interval) a fetch carries about 5 per device and Appends are that much bigger.',
  ];
  return { figures, details, notes, raw: { settings, runs } };
}

/** The storage suite. */
export const storageSuite: BenchSuite = {
  name: 'storage',
  title: 'storage Append throughput vs raw mongodb insertMany of the same documents into the same FerretDB',
  plan(ctx) {
    const s = storageSettings(ctx.quick);
    const w = s.workload;
    return [
      `storage: one FerretDB (${relative(REPO_ROOT, join(TOOLS_BIN, 'ferretdb'))}) on PostgreSQL, with the stack's indexes, as npm start runs it; ${whole(workloadReadings(w))} readings (${w.flats} flats × ${w.devicesPerFlat} devices × ${w.rounds} seqs) in Appends of ${w.fetchesPerAppend} fetch results, ${s.callers} concurrent callers;`,
      `  ${s.repeats} repeat(s), order alternating, each into a fresh database: storage service Append (gRPC) | raw insertMany (ordered:false) | raw insertMany + the same flat-state $max upserts;`,
      '  figures: storage readings/s ÷ raw readings/s (goal ≥ 0.8×), storage ÷ raw+state.',
    ].join('\n');
  },
  async run(ctx) {
    const settings = storageSettings(ctx.quick);
    let bench: BenchDatabase;
    try {
      bench = await BenchDatabase.start('storage', ctx);
    } catch (err) {
      return skipped(`cannot start FerretDB on PostgreSQL (run tools/install.sh ferretdb postgresql): ${(err as Error).message.split('\n')[0]}`);
    }
    const client = createMongoClient(bench.uri('bench'), 30000);
    try {
      await client.connect();
      const p = prepare(settings);
      const runs: StorageRun[] = [];
      for (let repeat = 1; repeat <= settings.repeats; repeat++) {
        for (const kind of runOrder(repeat)) {
          ctx.say(`storage: repeat ${repeat}/${settings.repeats}: ${kind}, ${whole(p.readings)} readings…`);
          const run = await timedRun(kind, repeat, bench, client, p, settings.callers);
          ctx.say(`storage:   ${whole(run.readingsPerSecond)} readings/s (${run.seconds.toFixed(2)} s)`);
          runs.push(run);
        }
      }
      const result = storageResult(runs, settings);
      return { ...result, versions: { mongodb: packageVersion('mongodb'), '@grpc/grpc-js': packageVersion('@grpc/grpc-js'), ferretdb: ferretdbVersion() } };
    } finally {
      await client.close();
      await bench.close(ctx);
    }
  },
};
