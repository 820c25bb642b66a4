/**
 * PostgreSQL as FerretDB's backend (issue [P]): the real postgres from
 * tools/install-postgresql.sh (initdb into a temporary state folder, loopback
 * only, run as root through a user namespace when the tests run as root),
 * FerretDB on it (--postgresql-url), the real storage writing readings with
 * their slots; ensureSlotIndex then finds FerretDB's table of the readings
 * and puts a GIN index on `_jsonb->'slot'`, which pg_indexes lists, and the
 * plan of an equality on slot, as FerretDB itself asks PostgreSQL for it
 * (MongoDB `explain` on FerretDB returns PostgreSQL's EXPLAIN of the query it
 * sends), uses that index. Query with FLATLINE_QUERY_SLOT_READS=1 answers the
 * same pages as the default.
 */
import { expect } from 'chai';
import { credentials } from '@grpc/grpc-js';
import { MongoClient, type Document } from 'mongodb';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QueryServiceClient, StorageServiceClient, type ListMeasurementsRequest, type Reading } from '@flatline/proto';
import { checkHealth, unaryCall, COLLECTIONS } from '@flatline/platform';
import { eventually, startInProcessService, tempDir, type StartedServer } from '../src/harness.ts';
import { dbOfStateDir, FREE_PORTS, LocalStack } from '../src/stack.ts';
import { stackStatus } from '../src/status.ts';
import { heldIn, metricValue, seqGaps, type GapReport } from '../src/probes.ts';
import { startDatabase, type RunningDatabase } from '../src/components.ts';
import { collectionTable, ensureIdIndexes, ensureSlotIndex, idIndexName, ID_LOOKUP_COLLECTIONS, psql, readingGapsPostgres, readingGapsSql, slotIndexName, startPostgres, type RunningPostgres } from '../src/postgres.ts';

const MINUTE = 60_000;
const T0 = Math.floor((Date.now() - 3600_000) / MINUTE) * MINUTE;
const DEVICES = ['heat', 'power', 'water'];
const FLATS = 40;
/** Readings per device per flat, one every 5 s: 40 flats x 3 devices x 120 = 14,400 readings over 10 minutes. */
const PER_DEVICE = 120;

function reading(flatId: string, deviceId: string, seq: number): Reading {
  return { flatId, deviceId, seq: String(seq), takenAt: new Date(T0 + seq * 5000), quantity: 'energy', unit: 'kWh', value: seq, epoch: 0 };
}

/** Every node of a PostgreSQL JSON plan (EXPLAIN (FORMAT JSON)). */
function planNodes(node: Document | undefined): Document[] {
  if (node === undefined || node === null || typeof node !== 'object') return [];
  const children = (node['Plans'] as Document[] | undefined) ?? [];
  return [node, ...children.flatMap(planNodes)];
}

describe('PostgreSQL under FerretDB: the slot index and a slot read that uses it', function () {
  this.timeout(300000);
  const dir = tempDir('postgres');
  let pg: RunningPostgres;
  let ferretdb: RunningDatabase;
  let storage: StartedServer;
  let query: StartedServer;
  let slotQuery: StartedServer;
  let mongo: MongoClient;

  before(async function () {
    pg = await startPostgres({ dataDir: join(dir.path, 'postgres'), port: 0, logFile: join(dir.path, 'postgres.log') });
    ferretdb = await startDatabase({ listen: '127.0.0.1:0', stateDir: join(dir.path, 'unused'), postgresqlUrl: pg.url, logFile: join(dir.path, 'ferretdb.log') });
    storage = await startInProcessService('storage', ferretdb.uri, dir.path, { FLATLINE_DB_TIMEOUT_MS: '10000' });
    await eventually('storage to answer SERVING', async () => (await checkHealth(storage.grpc)) === 'SERVING', 30000);
    mongo = new MongoClient(ferretdb.uri, { serverSelectionTimeoutMS: 5000 });
  });

  after(async () => {
    await mongo?.close();
    await Promise.all([storage?.stop(), query?.stop(), slotQuery?.stop()]);
    await ferretdb?.process.stop();
    await pg?.stop();
    dir.cleanup();
  });

  it('runs initdb once into the state folder, listens on 127.0.0.1 only, with fsync on and JIT off', async () => {
    expect(existsSync(join(dir.path, 'postgres', 'PG_VERSION'))).to.equal(true);
    const settings = await psql(pg.url, "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('listen_addresses', 'fsync', 'jit', 'plan_cache_mode')");
    expect(settings).to.equal('fsync=on jit=off listen_addresses=127.0.0.1 plan_cache_mode=force_custom_plan');
    expect(readFileSync(join(dir.path, 'postgres', 'pg_hba.conf'), 'utf8')).to.match(/^host all all 127\.0\.0\.1\/32 trust$/m).and.not.match(/::1|0\.0\.0\.0/);
  });

  it('starts in a state folder deeper than a Unix socket path may be (108 bytes): it listens on TCP only', async () => {
    const deep = join(dir.path, 'a-state-folder-whose-path-is-longer-than-a-unix-socket-path-may-be', 'postgresql', 'data');
    expect(deep.length).to.be.above(108);
    const other = await startPostgres({ dataDir: deep, logFile: join(dir.path, 'deep.log') });
    try {
      expect(await psql(other.url, 'SELECT 1')).to.equal('1');
      expect(await psql(other.url, 'SHOW unix_socket_directories')).to.equal('');
    } finally {
      await other.stop();
    }
  });

  it('stores readings through storage with their slots, then ensureSlotIndex puts a GIN index on FerretDB\'s table, once', async () => {
    const client = new StorageServiceClient(storage.grpc, credentials.createInsecure());
    try {
      for (let f = 0; f < FLATS; f += 10) {
        const fetches = Array.from({ length: 10 }, (_, i) => {
          const flatId = String(f + i);
          return { flatId, fetchedAt: new Date(), readings: DEVICES.flatMap((d) => Array.from({ length: PER_DEVICE }, (_, s) => reading(flatId, d, s + 1))) };
        });
        const res = await unaryCall(client, client.append, { fetches }, 60000);
        expect(res.inserted).to.equal(10 * DEVICES.length * PER_DEVICE);
      }
    } finally {
      client.close();
    }
    // Slot reads before the index exists, more than five of one statement: PostgreSQL would keep a generic
    // plan for them (no index) after the index is built, unless every run is planned with its values.
    for (let i = 0; i < 8; i++) await mongo.db().collection('readings').find({ slot: `${i}/${T0 / MINUTE + 1}`, flat_id: String(i) }).sort({ taken_at: 1 }).limit(101).toArray();
    const first = await ensureSlotIndex(pg.url, 'flatline', 'readings');
    expect(first.created).to.equal(true);
    expect(first.index).to.equal(slotIndexName(first.table));
    expect((await ensureSlotIndex(pg.url, 'flatline', 'readings')).created, 'a second call finds it').to.equal(false);
    const indexdef = await psql(pg.url, `SELECT indexdef FROM pg_indexes WHERE schemaname = 'flatline' AND tablename = '${first.table}' AND indexname = '${first.index}'`);
    console.log(`      pg_indexes: ${indexdef}`);
    expect(indexdef).to.match(/USING gin \(+_jsonb -> 'slot'::text\)+ WITH \(fastupdate='?off'?\)$/);
  });

  it('plans an equality on slot, as FerretDB sends it, with the GIN index (MongoDB explain through FerretDB)', async () => {
    const { table, index } = await ensureSlotIndex(pg.url, 'flatline', 'readings');
    await psql(pg.url, `ANALYZE flatline."${table}"`);
    const slot = `7/${Math.floor((T0 + 300_000) / MINUTE)}`;
    const explained = await mongo.db().command({ explain: { find: 'readings', filter: { slot, flat_id: '7' } }, verbosity: 'queryPlanner' });
    expect(explained['filterPushdown'], JSON.stringify(explained)).to.equal(true);
    const plan = (explained['queryPlanner'] as Document)['Plan'] as Document;
    const nodes = planNodes(plan);
    const usingIndex = nodes.filter((n) => n['Index Name'] === index);
    console.log(`      plan: ${nodes.map((n) => `${n['Node Type']}${n['Index Name'] !== undefined ? ` on ${n['Index Name']}` : ''}${n['Index Cond'] !== undefined ? ` (${n['Index Cond']})` : ''}`).join(' <- ')}`);
    expect(usingIndex, JSON.stringify(plan)).to.have.length.greaterThan(0);
    expect(nodes.some((n) => n['Node Type'] === 'Seq Scan'), 'no sequential scan').to.equal(false);
    expect(await mongo.db().collection('readings').countDocuments({ slot })).to.equal(DEVICES.length * 12);
  });

  it('uses the index when FerretDB runs the find, not only in its explain (its cached prepared statements are planned per run)', async () => {
    const { index } = await ensureSlotIndex(pg.url, 'flatline', 'readings');
    const scans = async (): Promise<number> => Number(await psql(pg.url, `SELECT idx_scan FROM pg_stat_user_indexes WHERE schemaname = 'flatline' AND indexrelname = '${index}'`));
    const before = await scans();
    // More than five runs of one statement: where PostgreSQL would switch to a generic plan, which cannot use the index.
    for (let i = 0; i < 12; i++) {
      const slot = `${i % FLATS}/${T0 / MINUTE + 1 + (i % 9)}`; // minutes 1 to 9 hold 12 readings of each device
      const found = await mongo.db().collection('readings').find({ slot, flat_id: String(i % FLATS) }).sort({ taken_at: 1 }).limit(101).toArray();
      expect(found).to.have.length(DEVICES.length * 12);
    }
    // The statistics reach pg_stat_user_indexes within a second or so.
    await eventually('12 more scans of the slot index', async () => (await scans()) >= before + 12, 10000, 200);
  });

  it('looks up a bucket of the flat state by _id through its GIN index, although the table holds only 64 large documents (enable_seqscan off)', async () => {
    const mongoUri = ferretdb.uri;
    await ensureIdIndexes(mongoUri, pg.url);
    const table = await collectionTable(pg.url, 'flatline', COLLECTIONS.state);
    // 64 buckets of ~46 KB, as at 10,000 flats: stored out of line, which the planner does not count.
    const state = mongo.db().collection<{ _id: string; latest: Record<string, Record<string, string>> }>(COLLECTIONS.state);
    const bucket = (b: number) => ({
      _id: `big${b}`,
      latest: Object.fromEntries(Array.from({ length: 160 }, (_, f) => [`${b}-${f}`, Object.fromEntries(['heat', 'water', 'power'].map((d) => [d, `${String(f).padStart(16, '0')}[1764576000000,${f}.5,"energy","kWh"]${'x'.repeat(40)}`]))])),
    });
    await state.insertMany(Array.from({ length: 64 }, (_, b) => bucket(b)));
    await psql(pg.url, `ANALYZE "flatline".${JSON.stringify(table)}`);
    const scans = async (): Promise<number> => Number(await psql(pg.url, `SELECT idx_scan FROM pg_stat_user_indexes WHERE schemaname = 'flatline' AND indexrelname = '${idIndexName(table)}'`));
    const before = await scans();
    for (let b = 0; b < 10; b++) expect((await state.findOne({ _id: `big${b}` }))?._id).to.equal(`big${b}`);
    await eventually('10 more scans of the _id index of the flat state', async () => (await scans()) >= before + 10, 10000, 200);
    await state.deleteMany({ _id: { $regex: '^big' } });
  });

  it('query reads by slots on PostgreSQL and answers the pages of the default read', async () => {
    const key = 'a-test-deployment-page-token-key';
    query = await startInProcessService('query', ferretdb.uri, dir.path, { FLATLINE_QUERY_PAGE_TOKEN_KEY: key, FLATLINE_QUERY_METRICS_LISTEN: '127.0.0.1:0' });
    mkdirSync(join(dir.path, 'slots'));
    slotQuery = await startInProcessService('query', ferretdb.uri, join(dir.path, 'slots'), { FLATLINE_QUERY_PAGE_TOKEN_KEY: key, FLATLINE_QUERY_SLOT_READS: '1' });
    for (const s of [query, slotQuery]) await eventually('query to answer SERVING', async () => (await checkHealth(s.grpc)) === 'SERVING', 30000);
    // It reads storage's record of when slots began (none was stored before: every reading has one) before slot reads begin.
    await eventually('the slot horizon in the log', async () => readFileSync(join(dir.path, 'slots', 'query.log'), 'utf8').includes('every reading has a slot'), 30000);
    const clients = [query, slotQuery].map((s) => new QueryServiceClient(s.grpc, credentials.createInsecure()));
    const list = (c: QueryServiceClient, req: Partial<ListMeasurementsRequest>) =>
      unaryCall(c, c.listMeasurements, { flatId: '', deviceId: '', from: undefined, to: undefined, pageSize: 0, pageToken: '', ...req }, 20000);
    try {
      const req = { flatId: '7', from: new Date(T0 + 61_000), to: new Date(T0 + 500_000), pageSize: 100 };
      const seen: string[] = [];
      let token = '';
      do {
        const [a, b] = await Promise.all(clients.map((c) => list(c, { ...req, pageToken: token })));
        expect(b!.readings).to.deep.equal(a!.readings);
        expect(b!.nextPageToken).to.equal(a!.nextPageToken);
        seen.push(...a!.readings.map((r) => `${r.deviceId}#${r.seq}`));
        token = a!.nextPageToken;
      } while (token !== '');
      // seq 13 (T0 + 65 s) to 99 (T0 + 495 s) of each device.
      expect(seen.length).to.equal(DEVICES.length * 87);
    } finally {
      clients.forEach((c) => c.close());
    }
  });

  it('readingGapsSql (the scale suite\'s gap count, in PostgreSQL) agrees with seqGaps, and counts a reading removed from the middle of a run', async () => {
    const database = new URL(ferretdb.uri).pathname.slice(1);
    const before = await readingGapsSql(pg.url, database);
    const scan = await seqGaps(ferretdb.uri);
    expect(before).to.deep.equal({ runs: scan.devices, readings: scan.readings, missing: 0, runsWithGaps: 0 });
    expect(before.readings).to.equal(FLATS * DEVICES.length * PER_DEVICE);
    // The negative control: one reading gone from the middle of flat 3's heat meter.
    const removed = await mongo.db().collection('readings').deleteOne({ flat_id: '3', device_id: 'heat', seq: 50 });
    expect(removed.deletedCount).to.equal(1);
    const after = await readingGapsSql(pg.url, database);
    expect(after).to.deep.equal({ runs: before.runs, readings: before.readings - 1, missing: 1, runsWithGaps: 1 });
    expect((await seqGaps(ferretdb.uri)).gaps).to.deep.equal([{ flat: '3', device: 'heat', epoch: 0, missing: 1 }]);
  });

  it("readingGapsPostgres (the supervisor's gap count on PostgreSQL) finds what seqGaps finds: a missing reading, two in a row, one an outbox holds, a meter reset (no gap) and a hole in the new epoch, only since a time", async () => {
    const database = new URL(ferretdb.uri).pathname.slice(1);
    const readings = mongo.db().collection('readings');
    // Besides flat 3's heat seq 50 (the test before): flat 6's water 60 and 61 gone; flat 5's power meter reset
    // (epoch 1: seqs 1, 2, 3, then 5), taken after every earlier reading.
    expect((await readings.deleteMany({ flat_id: '6', device_id: 'water', seq: { $in: [60, 61] } })).deletedCount).to.equal(2);
    const later = (seq: number) => ({ flat_id: '5', device_id: 'power', epoch: 1, seq, taken_at: new Date(T0 + (PER_DEVICE + seq) * 5000) });
    await readings.insertMany([1, 2, 3, 5].map(later));
    const held = heldIn([{ flatId: '6', deviceId: 'water', epoch: 0, seq: 60 }]);
    const since = new Date(T0 + 51 * 5000);
    const everyReading: GapReport = {
      devices: FLATS * DEVICES.length,
      readings: FLATS * DEVICES.length * PER_DEVICE - 3 + 4,
      gaps: [
        { flat: '3', device: 'heat', epoch: 0, missing: 1 },
        { flat: '5', device: 'power', epoch: 1, missing: 1 },
        { flat: '6', device: 'water', epoch: 0, missing: 2 },
      ],
      held: 0,
    };
    const cases: Array<[string, Date | undefined, typeof held | undefined, GapReport]> = [
      ['every reading', undefined, undefined, everyReading],
      ['an outbox holds water 60', undefined, held, { ...everyReading, gaps: [...everyReading.gaps.slice(0, 2), { flat: '6', device: 'water', epoch: 0, missing: 1 }], held: 1 }],
      [
        'taken since seq 51 (flat 3 begins after its hole)',
        since,
        undefined,
        { ...everyReading, readings: FLATS * DEVICES.length * (PER_DEVICE - 50) - 2 + 4, gaps: everyReading.gaps.slice(1) },
      ],
    ];
    for (const [what, from, h, expected] of cases) {
      let t = Date.now();
      const sql = await readingGapsPostgres(pg.url, database, from, h);
      const sqlMs = Date.now() - t;
      t = Date.now();
      const scan = await seqGaps(ferretdb.uri, from, h);
      console.log(`      ${what}: PostgreSQL ${sqlMs} ms, through FerretDB ${Date.now() - t} ms (${scan.readings} readings)`);
      expect(sql, what).to.deep.equal(expected);
      expect(scan, what).to.deep.equal(expected);
    }
  });

  it('the gap counts look into fetch documents (FLATLINE_STORAGE_FETCH_DOCUMENTS=1) and count a reading two fetch results carried once: a hole, one an outbox holds, a reset, only since a time', async () => {
    const database = 'fetchdocs';
    const uri = ferretdb.uri.replace(/\/[^/?]*(\?|$)/, `/${database}$1`);
    mkdirSync(join(dir.path, 'fetchdocs'));
    const perFetch = await startInProcessService('storage', uri, join(dir.path, 'fetchdocs'), { FLATLINE_DB_TIMEOUT_MS: '10000', FLATLINE_STORAGE_FETCH_DOCUMENTS: '1' });
    const client = new StorageServiceClient(perFetch.grpc, credentials.createInsecure());
    try {
      await eventually('the fetch-document storage to answer SERVING', async () => (await checkHealth(perFetch.grpc)) === 'SERVING', 30000);
      const append = (flatId: string, readings: Reading[]) => unaryCall(client, client.append, { fetches: [{ flatId, fetchedAt: new Date(), readings }] }, 20000);
      // Flat a: heat and power, seqs 1..30 fetched 3 at a time, heat 17 never stored; then a takeover fetches 20..30 again.
      for (let s = 1; s <= 30; s += 3) {
        await append('a', [s, s + 1, s + 2].flatMap((q) => ['heat', 'power'].filter((d) => !(d === 'heat' && q === 17)).map((d) => reading('a', d, q))));
      }
      await append('a', Array.from({ length: 11 }, (_, i) => 20 + i).flatMap((q) => ['heat', 'power'].map((d) => reading('a', d, q))));
      // Flat b: power seqs 1..5, then reset (epoch 1) seqs 1..3, taken later: no gap.
      await append('b', [1, 2, 3, 4, 5].map((q) => reading('b', 'power', q)));
      await append('b', [1, 2, 3].map((q) => ({ ...reading('b', 'power', 10 + q), seq: String(q), epoch: 1 })));
      const docs = await mongo.db(database).collection(COLLECTIONS.readings).countDocuments();
      expect(docs, 'fewer documents than readings').to.be.within(1, 30);
      const readings = 29 + 30 + 5 + 3;
      expect(await readingGapsSql(pg.url, database)).to.deep.equal({ runs: 4, readings, missing: 1, runsWithGaps: 1 });
      const every: GapReport = { devices: 3, readings, gaps: [{ flat: 'a', device: 'heat', epoch: 0, missing: 1 }], held: 0 };
      expect(await readingGapsPostgres(pg.url, database)).to.deep.equal(every);
      expect(await readingGapsPostgres(pg.url, database, undefined, heldIn([{ flatId: 'a', deviceId: 'heat', epoch: 0, seq: 17 }]))).to.deep.equal({ ...every, gaps: [], held: 1 });
      // Taken since seq 18 of flat a (T0 + 90 s): the hole is before it; flat b's readings are all earlier but its epoch 1 (T0 + 55..65 s).
      expect(await readingGapsPostgres(pg.url, database, new Date(T0 + 18 * 5000))).to.deep.equal({ devices: 2, readings: 13 * 2, gaps: [], held: 0 });
      // The gap count through FerretDB cannot look into them, and says so rather than count nothing.
      const refused = await seqGaps(uri).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(refused?.message).to.include('fetch documents');
    } finally {
      client.close();
      await perFetch.stop();
    }
  });
});

describe('flatline up --db postgresql: the stack on PostgreSQL (real processes)', function () {
  this.timeout(300000);
  const dir = tempDir('postgres-stack');
  let stack: LocalStack;
  let client: QueryServiceClient;

  before(async () => {
    stack = await LocalStack.start({ stateDir: dir.path, host: '127.0.0.1', ports: FREE_PORTS, flats: 3, intervalMs: 1000, replicas: 1, logLevel: 'info', db: 'postgresql' });
    client = new QueryServiceClient(stack.queryAddress, credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    await stack?.stop();
    dir.cleanup();
  });

  const list = (req: Partial<ListMeasurementsRequest>) => unaryCall(client, client.listMeasurements, { flatId: '', deviceId: '', from: undefined, to: undefined, pageSize: 0, pageToken: '', ...req }, 20000);

  it('keeps its cluster in the state folder, supervises postgres beside ferretdb, and query reads by slots', async () => {
    expect(existsSync(join(stack.postgresDir, 'PG_VERSION'))).to.equal(true);
    expect(stack.supervised().map((s) => s.name)).to.include.members(['postgres', 'ferretdb']);
    const rows = await stackStatus(stack.stackFile()!);
    expect(rows.find((r) => r.component === 'postgres')?.health, JSON.stringify(rows)).to.equal('SERVING');
    await eventually('query to read slot by slot', async () => readFileSync(join(dir.path, 'logs', 'query.log'), 'utf8').includes('every reading has a slot'), 30000);
  });

  it('puts a GIN index on _id of the flat state, its log and ingestion\'s leases, and FerretDB\'s lookups by _id use it (enable_seqscan off; a scan of the buckets took 121 ms at 10,000 flats)', async () => {
    const url = stack.postgresqlUrl!;
    expect(await psql(url, 'SHOW enable_seqscan')).to.equal('off');
    const tables = await Promise.all(ID_LOOKUP_COLLECTIONS.map((c) => collectionTable(url, 'flatline', c)));
    const scans = async (): Promise<number[]> =>
      Promise.all(tables.map(async (t) => Number((await psql(url, `SELECT coalesce(sum(idx_scan), -1) FROM pg_stat_user_indexes WHERE schemaname = 'flatline' AND indexrelname = '${idIndexName(t)}'`)) || -1)));
    const before = await scans();
    expect(before.every((n) => n >= 0), `an index on each of ${tables.join(', ')}: ${before.join(', ')}`).to.equal(true);
    // The stack runs: storage writes its log and its buckets' first readings, query follows the log by _id.
    const [buckets, log] = tables.map((_, i) => i);
    let now = before;
    for (const until = Date.now() + 30000; Date.now() < until; await new Promise((r) => setTimeout(r, 500))) {
      now = await scans();
      if (now[log!]! > before[log!]! + 5 && now[buckets!]! > before[buckets!]!) break;
    }
    const what = `index scans of ${tables.join(', ')}: ${before.join(', ')} then ${now.join(', ')}`;
    expect(now[log!]! - before[log!]!, `log lookups by _id through the index (${what})`).to.be.greaterThan(5);
    expect(now[buckets!]! - before[buckets!]!, `bucket updates by _id through the index (${what})`).to.be.greaterThan(0);
  });

  it('lists a flat\'s readings with no range given (from its first reading, through its state) and pages them to the end', async () => {
    await eventually('flat 1 to have 3 readings per device stored', async () => (await list({ flatId: '1', pageSize: 1000 })).readings.length >= 9, 60000, 500);
    const seen: string[] = [];
    let token = '';
    do {
      const page = await list({ flatId: '1', pageSize: 2, pageToken: token });
      seen.push(...page.readings.map((r) => `${r.deviceId}#${r.seq}`));
      token = page.nextPageToken;
    } while (token !== '' && seen.length < 1000);
    expect(seen.length).to.be.at.least(9);
    expect(new Set(seen).size, 'no reading twice').to.equal(seen.length);
  });

  it('keeps no statistics of the readings\' values (autovacuum\'s ANALYZE of them took ~1 s of CPU a minute at 10,000 flats): _jsonb and every index expression, storage\'s index too; ANALYZE still counts the rows', async () => {
    const url = stack.postgresqlUrl!;
    const table = `flatline."${await collectionTable(url, 'flatline', 'readings')}"`;
    const rel = `'${table}'::regclass`;
    const targets = (
      await psql(
        url,
        `SELECT c.relname || '.' || a.attname || '=' || a.attstattarget FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         WHERE a.attnum > 0 AND NOT a.attisdropped AND (c.oid = ${rel} OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = ${rel})) ORDER BY 1`,
      )
    ).split('\n');
    console.log(`      statistics targets: ${targets.join(', ')}`);
    // _jsonb, FerretDB's _id index, the slot index and storage's (flat, device, epoch, seq).
    expect(targets.length, targets.join(', ')).to.be.at.least(1 + 1 + 1 + 4);
    expect(targets.filter((t) => !t.endsWith('=0'))).to.deep.equal([]);
    await eventually('readings stored', async () => Number(await psql(url, `SELECT count(*) FROM ${table}`)) > 0, 60000, 500);
    await psql(url, `ANALYZE ${table}`);
    expect(Number(await psql(url, `SELECT reltuples FROM pg_class WHERE oid = ${rel}`))).to.be.greaterThan(0);
  });

  it('restarts postgres when it dies (kill -9), on the same port and cluster; the Appends that failed meanwhile are retried from the outboxes: zero gaps', async () => {
    const sum = async (name: string): Promise<number> => {
      let total = 0;
      for (const r of stack.ingestion) if (r?.process.running) total += await metricValue(r.metrics, name).catch(() => 0);
      return total;
    };
    const errorsBefore = await sum('flatline_ingestion_forward_errors_total');
    const before = (await list({ flatId: '2', pageSize: 1000 })).readings.length;
    const port = new URL(stack.postgresqlUrl!).port;
    const pg = stack.supervised().find((s) => s.name === 'postgres')!;
    process.kill(pg.pid!, 'SIGKILL');
    await eventually('postgres restarted', async () => (stack.supervised().find((s) => s.name === 'postgres')?.restarts ?? 0) >= 1, 60000, 200);
    expect(new URL(stack.postgresqlUrl!).port, 'the same port').to.equal(port);
    await eventually('flat 2 to have more readings than before the kill', async () => (await list({ flatId: '2', pageSize: 1000 }).catch(() => ({ readings: [] }))).readings.length > before, 60000, 500);
    await eventually('the outboxes to drain', async () => (await sum('flatline_ingestion_outbox_fetches')) === 0, 60000, 500);
    const errors = (await sum('flatline_ingestion_forward_errors_total')) - errorsBefore;
    console.log(`      Appends that failed while postgres was down: ${errors}`);
    expect(errors, 'the kill reached storage: Appends failed (else this proves nothing)').to.be.greaterThan(0);
    expect((await stack.storedGaps()).gaps).to.deep.equal([]);
  });
});

describe('dbOfStateDir: the backend a stack gets when none is asked for', () => {
  const dir = tempDir('db-of-state');
  after(() => dir.cleanup());

  it('is PostgreSQL for a new folder, SQLite for a folder with only SQLite files (an earlier stack\'s readings), PostgreSQL once it has a cluster', () => {
    const state = join(dir.path, 'state');
    expect(dbOfStateDir(state)).to.equal('postgresql');
    mkdirSync(join(state, 'ferretdb'), { recursive: true });
    expect(dbOfStateDir(state), 'an empty ferretdb folder').to.equal('postgresql');
    writeFileSync(join(state, 'ferretdb', 'flatline.sqlite'), '');
    expect(dbOfStateDir(state)).to.equal('sqlite');
    mkdirSync(join(state, 'postgresql', 'data'), { recursive: true });
    writeFileSync(join(state, 'postgresql', 'data', 'PG_VERSION'), '15\n');
    expect(dbOfStateDir(state)).to.equal('postgresql');
  });
});
