/**
 * Benchmark suite "range-reads": ListMeasurements at a day of history, the
 * read a user meets first (issue [P]). The same readings, as storage writes
 * them (slot included), are loaded into FerretDB on SQLite and FerretDB on
 * PostgreSQL (with the slot index the stack builds, stack/src/postgres.ts),
 * with unordered insertMany from two writers (its throughput is the second
 * figure); then first pages of 100 of a random flat in a one-hour range at a
 * random place in the day are asked of the real query service (in-process,
 * gRPC): on SQLite the way `flatline up --db sqlite` reads them (one find of the range,
 * a scan of the collection on FerretDB v1), on PostgreSQL that way and slot
 * by slot (FLATLINE_QUERY_SLOT_READS=1); and slot by slot over the same
 * readings kept as fetch documents (FLATLINE_STORAGE_FETCH_DOCUMENTS=1),
 * what `flatline up` runs. The peer is the same query on the other backend,
 * same run.
 */
import { credentials } from '@grpc/grpc-js';
import { MongoClient } from 'mongodb';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { QueryServiceClient } from '@flatline/proto';
import { checkHealth, COLLECTIONS, fetchDocsOf, FETCH_DOCUMENTS, readingIndexesFor, READING_SLOTS, slotMinute, slotOf, unaryCall, type FetchDoc, type ReadingDoc } from '@flatline/platform';
import { ensureReadingsSlotIndex, eventually, startDatabase, startInProcessService, startPostgres, tempDir, type StartedServer } from '@flatline/stack';
import { percentile, type BenchContext, type BenchSuite, type SuiteResult } from './suite.ts';

const DEVICES = ['heat', 'power', 'water'];
const PAGE_KEY = 'a-bench-page-token-key-of-this-run';

/** Settings of a range-reads run. */
export interface RangeReadsPlan {
  readonly flats: number;
  readonly hours: number;
  /** One reading per device every everyMs. */
  readonly everyMs: number;
  /** A fetch (one fetch document per flat and minute) every fetchEveryMs, with the readings taken since the last. */
  readonly fetchEveryMs: number;
  /** Pages asked of the slot reads on PostgreSQL; the full scans get fewer (see pagesOf). */
  readonly pages: number;
  /** Every layout and backend, or only fetch documents on PostgreSQL (what flatline up keeps: the size, where the others take hours to load). */
  readonly layouts: 'all' | 'fetch';
}

/**
 * The plan: a day of 10 flats x 3 devices every 5 s (518,400 readings), a
 * small quick one, or with dayFlats (`--day N`) the size: a day of N
 * flats x 3 devices, a reading a second, fetched every 5 s, as fetch
 * documents only (100 flats: 25,920,000 readings).
 */
export function rangeReadsPlan(quick: boolean, dayFlats?: number): RangeReadsPlan {
  if (dayFlats !== undefined) return { flats: dayFlats, hours: 24, everyMs: 1000, fetchEveryMs: 5000, pages: 200, layouts: 'fetch' };
  return quick ? { flats: 4, hours: 2, everyMs: 5000, fetchEveryMs: 5000, pages: 20, layouts: 'all' } : { flats: 10, hours: 24, everyMs: 5000, fetchEveryMs: 5000, pages: 200, layouts: 'all' };
}

export const readingsOf = (p: RangeReadsPlan): number => p.flats * DEVICES.length * ((p.hours * 3600_000) / p.everyMs);

/**
 * The day of readings in chunks of about 1000 readings, as storage writes
 * them: one document per reading (slot included), or with fetch documents
 * (FLATLINE_STORAGE_FETCH_DOCUMENTS=1) one per flat, fetch (every
 * fetchEveryMs) and minute.
 */
export function* dayChunks(p: RangeReadsPlan, startMs: number, layout: 'reading' | 'fetch'): Generator<{ docs: Array<ReadingDoc | FetchDoc>; readings: number }> {
  const storedAt = new Date(startMs + p.hours * 3600_000);
  let chunk: { docs: Array<ReadingDoc | FetchDoc>; readings: number } = { docs: [], readings: 0 };
  const steps = (p.hours * 3600_000) / p.everyMs;
  const perFetch = Math.max(1, Math.round(p.fetchEveryMs / p.everyMs));
  for (let first = 0; first < steps; first += perFetch) {
    const taken = Array.from({ length: Math.min(perFetch, steps - first) }, (_, i) => ({ step: first + i, takenMs: startMs + (first + i) * p.everyMs }));
    for (let f = 0; f < p.flats; f++) {
      const flatId = String(f);
      if (layout === 'fetch') {
        const readings = taken.flatMap(({ step, takenMs }) => DEVICES.map((deviceId) => ({ deviceId, epoch: 0, seq: step + 1, takenAtMs: takenMs, quantity: 'energy', unit: 'kWh', value: step })));
        for (const { doc } of fetchDocsOf(flatId, readings, storedAt)) chunk.docs.push(doc);
      } else {
        for (const { step, takenMs } of taken) {
          for (const deviceId of DEVICES) {
            chunk.docs.push({ flat_id: flatId, device_id: deviceId, epoch: 0, seq: step + 1, taken_at: new Date(takenMs), quantity: 'energy', unit: 'kWh', value: step, stored_at: storedAt, slot: slotOf(flatId, slotMinute(takenMs)) });
          }
        }
      }
      chunk.readings += DEVICES.length * taken.length;
      if (chunk.readings >= 1000) {
        yield chunk;
        chunk = { docs: [], readings: 0 };
      }
    }
  }
  if (chunk.readings > 0) yield chunk;
}

/** Loads the readings with storage's indexes and its record that every reading has a slot (and that fetch documents are kept, with them); resolves with readings per second. */
async function load(uri: string, p: RangeReadsPlan, startMs: number, say: (line: string) => void, layout: 'reading' | 'fetch' = 'reading'): Promise<number> {
  const client = new MongoClient(uri);
  try {
    const db = client.db();
    const readings = db.collection<ReadingDoc | FetchDoc>(COLLECTIONS.readings);
    for (const { key, ...options } of readingIndexesFor({ ferretdb: true })) await readings.createIndex(key, options);
    await db.collection<{ _id: string; done_at: Date }>(COLLECTIONS.migrations).insertOne({ _id: READING_SLOTS, done_at: new Date() });
    if (layout === 'fetch') await db.collection<{ _id: string; since: Date }>(COLLECTIONS.migrations).insertOne({ _id: FETCH_DOCUMENTS, since: new Date(0) });
    const chunks = dayChunks(p, startMs, layout);
    const total = readingsOf(p);
    let n = 0;
    let shown = 0;
    const started = performance.now();
    // Two writers, as two storage replicas would.
    await Promise.all(
      [0, 1].map(async () => {
        for (let next = chunks.next(); !next.done; next = chunks.next()) {
          await readings.insertMany(next.value.docs, { ordered: false });
          n += next.value.readings;
          if (n - shown >= total / 10) {
            shown = n;
            say(`  ${Math.round((100 * n) / total)} % (${n} readings)`);
          }
        }
      }),
    );
    return n / ((performance.now() - started) / 1000);
  } finally {
    await client.close();
  }
}

/** Latencies (ms) of `pages` first pages of 100: a random flat, a one-hour range at a random place in the day (seeded). */
async function pageTimes(grpc: string, p: RangeReadsPlan, startMs: number, pages: number, seed: number): Promise<number[]> {
  const client = new QueryServiceClient(grpc, credentials.createInsecure());
  let x = seed;
  const random = (): number => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  const times: number[] = [];
  try {
    for (let i = 0; i < pages; i++) {
      const from = new Date(startMs + Math.floor(random() * (p.hours - 1) * 3600_000));
      const req = { flatId: String(Math.floor(random() * p.flats)), deviceId: '', from, to: new Date(from.getTime() + 3600_000), pageSize: 100, pageToken: '' };
      const t0 = performance.now();
      const page = await unaryCall(client, client.listMeasurements, req, 600_000);
      times.push(performance.now() - t0);
      if (page.readings.length !== 100) throw new Error(`a page of ${page.readings.length} readings, expected 100`);
    }
  } finally {
    client.close();
  }
  return times;
}

async function queryService(uri: string, dir: string, slotReads: boolean): Promise<StartedServer> {
  mkdirSync(dir, { recursive: true });
  const s = await startInProcessService('query', uri, dir, {
    FLATLINE_QUERY_PAGE_TOKEN_KEY: PAGE_KEY,
    FLATLINE_QUERY_SLOT_READS: slotReads ? '1' : '0',
    FLATLINE_DB_TIMEOUT_MS: '60000', // the most it takes; a SQLite page at a day of history takes 25–40 s
    FLATLINE_LOG_LEVEL: 'info',
  });
  await eventually('query SERVING', async () => (await checkHealth(s.grpc)) === 'SERVING', 60000);
  // Until it has read storage's record of when slots began, pages are read the old way.
  if (slotReads) await eventually('query to read by slots', async () => readFileSync(join(dir, 'query.log'), 'utf8').includes('every reading has a slot'), 60000, 200);
  return s;
}

/** The suite. */
export const rangeReadsSuite: BenchSuite = {
  name: 'range-reads',
  title: 'ListMeasurements, a page of 100 in a one-hour range at a day of history: FerretDB on SQLite (scan) next to PostgreSQL (slot index)',
  plan(ctx: BenchContext): string {
    const p = rangeReadsPlan(ctx.quick, ctx.sizes?.day);
    if (p.layouts === 'fetch') {
      return `load ${readingsOf(p)} readings (${p.flats} flats x ${DEVICES.length} devices, one per ${p.everyMs / 1000} s, fetched every ${p.fetchEveryMs / 1000} s, ${p.hours} h) as fetch documents into FerretDB on PostgreSQL (slot index), then ${p.pages} first pages of 100 by slots`;
    }
    return (
      `load ${readingsOf(p)} readings (${p.flats} flats x ${DEVICES.length} devices, one per ${p.everyMs / 1000} s, ${p.hours} h) into FerretDB on SQLite and on PostgreSQL (slot index), ` +
      `then ${p.pages} first pages of 100 by slots on PostgreSQL and ${Math.max(3, Math.round(p.pages / 20))}–${Math.max(5, Math.round(p.pages / 5))} by the range read on each backend`
    );
  },
  async run(ctx: BenchContext): Promise<SuiteResult> {
    const p = rangeReadsPlan(ctx.quick, ctx.sizes?.day);
    const dir = tempDir('bench-range-reads');
    const f: Frame = {
      p,
      dir: dir.path,
      say: (line) => ctx.say(`range-reads: ${line}`),
      startMs: Math.floor((Date.now() - (p.hours + 1) * 3600_000) / 60_000) * 60_000,
      stop: [],
      rows: [],
    };
    try {
      return await (p.layouts === 'fetch' ? runDay(f) : runAll(f));
    } finally {
      for (const s of f.stop) await s().catch(() => undefined);
      if (!ctx.keep) dir.cleanup();
    }
  },
};

/** What a run shares: its plan, folder, progress line, start of the day, what to stop (first to last) and the table's rows. */
interface Frame {
  readonly p: RangeReadsPlan;
  readonly dir: string;
  readonly say: (line: string) => void;
  readonly startMs: number;
  readonly stop: Array<() => Promise<unknown>>;
  readonly rows: string[][];
}

/** FerretDB on a PostgreSQL of its own in the run's folder (both stopped at the end), the slot index built before any load, as the stack does. */
async function ferretOnPostgres(f: Frame): Promise<{ uri: string; pgUrl: string }> {
  const pg = await startPostgres({ dataDir: join(f.dir, 'postgres'), logFile: join(f.dir, 'postgres.log') });
  f.stop.push(() => pg.stop());
  const onPg = await startDatabase({ listen: '127.0.0.1:0', stateDir: join(f.dir, 'unused'), postgresqlUrl: pg.url, logFile: join(f.dir, 'ferretdb-pg.log') });
  f.stop.unshift(() => onPg.process.stop());
  await ensureReadingsSlotIndex(onPg.uri, pg.url);
  return { uri: onPg.uri, pgUrl: pg.url };
}

/** n first pages (after one to warm up) read by a query service of its own on uri: adds the row to the table, says it and answers the p99 (ms). */
async function measure(f: Frame, what: string, uri: string, slotReads: boolean, n: number): Promise<number> {
  const q = await queryService(uri, join(f.dir, `query-${f.rows.length}`), slotReads);
  try {
    await pageTimes(q.grpc, f.p, f.startMs, 1, 7); // warm-up
    const t = await pageTimes(q.grpc, f.p, f.startMs, n, 42);
    const [p50, p99] = [percentile(t, 50), percentile(t, 99)];
    f.rows.push([what, String(n), `${p50.toFixed(1)} ms`, `${p99.toFixed(1)} ms`, `${Math.max(...t).toFixed(1)} ms`]);
    f.say(`${what}: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms over ${n} pages`);
    return p99;
  } finally {
    await q.stop();
  }
}

const PAGES_TABLE = 'ListMeasurements, first pages of 100 in a one-hour range';
const PG_FETCH = 'PostgreSQL, slot reads, fetch documents (flatline up)';

/** The size: fetch documents on PostgreSQL only, the others would take hours to load. */
async function runDay(f: Frame): Promise<SuiteResult> {
  const { p } = f;
  const onPg = await ferretOnPostgres(f);
  f.say(`loading ${readingsOf(p)} readings into FerretDB on PostgreSQL as fetch documents…`);
  const rate = await load(onPg.uri, p, f.startMs, f.say, 'fetch');
  const p99 = await measure(f, PG_FETCH, onPg.uri, true, p.pages);
  return {
    figures: [
      { name: `ListMeasurements p99, page of 100, ${readingsOf(p)} readings`, flatline: `${p99.toFixed(1)} ms (PostgreSQL, slots, fetch documents)`, versus: '', goal: '≤ 50 ms', met: p99 <= 50 },
      { name: 'unordered insertMany of fetch documents, 2 writers, PostgreSQL', flatline: `${rate.toFixed(0)} readings/s`, versus: '' },
    ],
    details: [{ title: PAGES_TABLE, head: ['read', 'pages', 'p50', 'p99', 'max'], rows: f.rows }],
    notes: [
      `Readings: ${p.flats} flats x ${DEVICES.length} devices, one per ${p.everyMs / 1000} s, fetched every ${p.fetchEveryMs / 1000} s (a fetch document per flat, fetch and minute), ${p.hours} h. Pages: a random flat, a random hour of the day, seeded.`,
      'Fetch documents only: at this size the other layouts and SQLite take hours to load (run without --day for the comparison at 518,400 readings).',
    ],
    raw: { plan: p, rows: f.rows, insertPerSecond: { postgresqlFetchDocuments: rate } },
  };
}

/** Every layout and backend, side by side. */
async function runAll(f: Frame): Promise<SuiteResult> {
  const { p } = f;
  const sqlite = await startDatabase({ listen: '127.0.0.1:0', stateDir: join(f.dir, 'sqlite'), logFile: join(f.dir, 'ferretdb-sqlite.log') });
  f.stop.push(() => sqlite.process.stop());
  const onPg = await ferretOnPostgres(f);
  const fetchDocsUri = Object.assign(new URL(onPg.uri), { pathname: '/fetchdocs' }).href;
  await ensureReadingsSlotIndex(fetchDocsUri, onPg.pgUrl);

  f.say(`loading ${readingsOf(p)} readings into FerretDB on SQLite…`);
  const sqliteRate = await load(sqlite.uri, p, f.startMs, f.say);
  f.say(`loading them into FerretDB on PostgreSQL (the slot index built before, as the stack does)…`);
  const pgRate = await load(onPg.uri, p, f.startMs, f.say);
  f.say(`loading them into FerretDB on PostgreSQL as fetch documents (as flatline up's storage keeps them)…`);
  const fetchRate = await load(fetchDocsUri, p, f.startMs, f.say, 'fetch');

  const scan = await measure(f, 'SQLite, range read (flatline up --db sqlite)', sqlite.uri, false, Math.max(3, Math.round(p.pages / 20)));
  await measure(f, 'PostgreSQL, range read', onPg.uri, false, Math.max(5, Math.round(p.pages / 5)));
  await measure(f, 'PostgreSQL, slot reads, a document per reading', onPg.uri, true, p.pages);
  const slots = await measure(f, PG_FETCH, fetchDocsUri, true, p.pages);
  return {
    figures: [
      { name: `ListMeasurements p99, page of 100, ${readingsOf(p)} readings`, flatline: `${slots.toFixed(1)} ms (PostgreSQL, slots, fetch documents)`, versus: `${scan.toFixed(1)} ms (SQLite, scan)`, ratio: slots / scan, goal: '≤ 50 ms', met: slots <= 50 },
      { name: 'unordered insertMany, 2 writers', flatline: `${pgRate.toFixed(0)} readings/s (PostgreSQL)`, versus: `${sqliteRate.toFixed(0)} readings/s (SQLite)`, ratio: pgRate / sqliteRate },
      { name: 'unordered insertMany, 2 writers, PostgreSQL', flatline: `${fetchRate.toFixed(0)} readings/s (fetch documents)`, versus: `${pgRate.toFixed(0)} readings/s (a document per reading)`, ratio: fetchRate / pgRate },
    ],
    details: [{ title: PAGES_TABLE, head: ['read', 'pages', 'p50', 'p99', 'max'], rows: f.rows }],
    notes: [
      'The slot index is a GIN index on `_jsonb->\'slot\'` that stack/src/postgres.ts adds to FerretDB\'s table; FerretDB v1 pushes down only equality (SQLite: only on _id), so the range read scans the collection on both backends.',
      `Readings: ${p.flats} flats x ${DEVICES.length} devices, one per ${p.everyMs / 1000} s, ${p.hours} h. Pages: a random flat, a random hour of the day, seeded.`,
    ],
    raw: { plan: p, rows: f.rows, insertPerSecond: { sqlite: sqliteRate, postgresql: pgRate, postgresqlFetchDocuments: fetchRate } },
  };
}
