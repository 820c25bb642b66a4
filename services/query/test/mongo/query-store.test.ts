/**
 * The plan of ListMeasurements's find (issue 12 item 10). The find is the
 * one QueryStore really sends (captured through the driver's command
 * monitoring), the indexes are the ones storage really creates, and explain
 * runs through the driver against the real server (FerretDB here).
 *
 * What can truthfully be checked depends on the server. MongoDB reports a
 * winningPlan: there it must be an index scan of the range index with no
 * in-memory SORT stage. FerretDB v1 on SQLite reports SQLite's own plan, and
 * it pushes down neither a filter (only a single _id equality) nor a sort
 * (only $natural): every find scans the table and sorts in memory, whatever
 * the indexes. So on FerretDB the test checks what does not depend on the
 * server (the sort is the index key after its equality prefix, the filter is
 * one range on that index, the index exists) and pins what FerretDB reports,
 * so that a change of backend shows up here.
 */
import { expect } from 'chai';
import { credentials } from '@grpc/grpc-js';
import { MongoClient, type Document } from 'mongodb';
import { StorageServiceClient } from '@flatline/proto';
import { checkHealth, readingIndexesFor, unaryCall } from '@flatline/platform';
import { QueryStore } from '../../src/mongo/query-store.ts';
import type { RangeQuery } from '../../src/domain/query-args.ts';
import { eventually, startTestService, tempDir, TestDatabase } from '@flatline/stack';

/** The index a page must follow: equality on flat_id, then the page order (taken_at, device_id, seq), all ascending. */
const WANTED_INDEX = { flat_id: 1, taken_at: 1, device_id: 1, seq: 1 };

/** Every stage of a MongoDB explain plan tree. */
function stagesOf(plan: Document | undefined): Document[] {
  if (plan === undefined || plan === null) return [];
  const children = [plan['inputStage'], ...((plan['inputStages'] as Document[] | undefined) ?? [])].filter((c) => c !== undefined);
  return [plan, ...children.flatMap((c: Document) => stagesOf(c))];
}

/** What is wrong with a MongoDB queryPlanner.winningPlan for a page: an in-memory sort, or no scan of the range index. */
function planProblems(winningPlan: Document): string[] {
  const stages = stagesOf((winningPlan['queryPlan'] as Document | undefined) ?? winningPlan);
  const problems: string[] = [];
  if (stages.some((s) => s['stage'] === 'SORT')) problems.push('an in-memory SORT stage');
  const scans = stages.filter((s) => s['stage'] === 'IXSCAN');
  if (!scans.some((s) => JSON.stringify(s['keyPattern']) === JSON.stringify(WANTED_INDEX))) {
    problems.push(`no IXSCAN of ${JSON.stringify(WANTED_INDEX)} (scans: ${JSON.stringify(scans.map((s) => s['keyPattern']))})`);
  }
  return problems;
}

/** A sort spec as ordered [field, direction] pairs (the driver sends it as a Map, to keep the order). */
function sortEntries(sort: unknown): Array<[string, unknown]> {
  return sort instanceof Map ? [...(sort as Map<string, unknown>).entries()] : Object.entries(sort as Document);
}

/** The fields a filter names, at any depth of $and/$or. */
function fieldsOf(filter: Document): string[] {
  return Object.entries(filter).flatMap(([k, v]) => (k === '$or' || k === '$and' ? (v as Document[]).flatMap(fieldsOf) : [k]));
}

describe('ListMeasurements: the find, the index, and the plan (real storage indexes, real FerretDB)', function () {
  this.timeout(60000);
  const dir = tempDir('query-plan');
  const db = new TestDatabase(`${dir.path}/ferretdb`);
  let client: MongoClient;
  const finds: Document[] = [];

  before(async () => {
    await db.start();
    const storage = await startTestService('storage', db.uri, dir.path);
    const storageClient = new StorageServiceClient(storage.grpc, credentials.createInsecure());
    try {
      // Storage creates its indexes before it answers SERVING.
      await eventually('storage to answer SERVING (its indexes created)', async () => (await checkHealth(storage.grpc)) === 'SERVING', 10000);
      const t0 = Date.parse('2026-11-29T08:00:00Z');
      const readings = [1, 2, 3].flatMap((seq) =>
        ['a', 'b'].map((deviceId) => ({ flatId: 'p', deviceId, seq: String(seq), takenAt: new Date(t0 + seq * 1000), quantity: 'heat', unit: 'kWh', value: seq, epoch: 0 })),
      );
      await unaryCall(storageClient, storageClient.append, { fetches: [{ flatId: 'p', fetchedAt: new Date(), readings }] }, 10000);
    } finally {
      storageClient.close();
      await storage.process.stop();
    }
    client = new MongoClient(db.uri, { monitorCommands: true, serverSelectionTimeoutMS: 5000 });
    client.on('commandStarted', (e) => {
      if (e.commandName === 'find' && e.command['find'] === 'readings') finds.push(e.command);
    });
    // Two pages through the store's own code: the first, and the one after its cursor.
    const store = new QueryStore(client.db());
    const q: RangeQuery = { key: { flatId: 'p', deviceId: '', fromMs: undefined, toMs: undefined }, pageSize: 4, after: undefined };
    const first = await store.range(q, 5000);
    expect(first.more).to.equal(true);
    const second = await store.range({ ...q, after: first.last }, 5000);
    expect(second.readings.map((r) => `${r.deviceId}#${r.seq}`)).to.deep.equal(['a#3', 'b#3']);
    expect(finds).to.have.length(2);
  });

  after(async () => {
    await client?.close();
    await db.stop();
    dir.cleanup();
  });

  it('sorts by the index key after its equality prefix, in the same directions', () => {
    const wanted = Object.entries(WANTED_INDEX).slice(1);
    for (const find of finds) expect(sortEntries(find['sort']), JSON.stringify(find)).to.deep.equal(wanted);
  });

  it('filters on one range of that index: flat_id equal, taken_at bounded, ties broken on the same fields', () => {
    for (const [i, find] of finds.entries()) {
      const filter = find['filter'] as Document;
      const what = `page ${i + 1}: ${JSON.stringify(filter)}`;
      expect(typeof filter['flat_id'], what).to.equal('string');
      for (const field of fieldsOf(filter)) expect(Object.keys(WANTED_INDEX), what).to.include(field);
      // After a cursor the page starts at the cursor's time: an index bound, not only a branch of an $or.
      if (i > 0) expect(filter['taken_at'], what).to.have.property('$gte');
    }
  });

  it('is served by an index that storage creates on MongoDB (on FerretDB, which reads with none, storage makes only the unique one)', async () => {
    const onMongo = readingIndexesFor({ ferretdb: false }).map((x) => JSON.stringify(x.key));
    expect(onMongo, 'storage ensureIndexes on MongoDB').to.include(JSON.stringify(WANTED_INDEX));
    const indexes = await client.db().collection('readings').indexes();
    expect(indexes.map((x) => x.name), 'storage ensureIndexes on this FerretDB').to.include('flat_device_epoch_seq');
  });

  it('explains the real find as the server plans it (MongoDB: index scan, no SORT; FerretDB: what it reports)', async () => {
    for (const find of finds) {
      const { find: collection, filter, sort, limit } = find;
      const explain = await client.db().command({ explain: { find: collection, filter, sort, limit }, verbosity: 'queryPlanner' });
      const planner = explain['queryPlanner'] as Document;
      if (planner['winningPlan'] !== undefined) {
        expect(planProblems(planner['winningPlan'] as Document), JSON.stringify(planner['winningPlan'])).to.deep.equal([]);
        continue;
      }
      // FerretDB: it planned the command we sent, and says how (SQLite's EXPLAIN QUERY PLAN and its pushdown flags).
      const shown = { Plan: planner['Plan'], filterPushdown: explain['filterPushdown'], sortPushdown: explain['sortPushdown'], limitPushdown: explain['limitPushdown'] };
      console.log(`      FerretDB explain of page ${finds.indexOf(find) + 1}: ${JSON.stringify(shown)}`);
      expect(sortEntries((explain['command'] as Document)['sort'])).to.deep.equal(sortEntries(sort));
      expect((explain['command'] as Document)['filter']).to.deep.equal(filter);
      // Pinned: FerretDB v1 scans the table and sorts in memory. If this fails, the backend changed: check the plan again.
      expect(explain['sortPushdown'], JSON.stringify(shown)).to.equal(false);
      expect(String((planner['Plan'] as string[] | undefined)?.[0]), JSON.stringify(shown)).to.match(/\bSCAN\b/);
    }
  });

  it('plan check (on MongoDB explain shapes): refuses SORT over the old index, accepts an ordered scan of the range index', () => {
    // Shapes of MongoDB's explain output (queryPlanner.winningPlan), written here for the checker, not recorded from a server.
    const old = { stage: 'SORT', sortPattern: { taken_at: 1, device_id: 1, seq: 1 }, inputStage: { stage: 'FETCH', inputStage: { stage: 'IXSCAN', keyPattern: { flat_id: 1, taken_at: 1 }, indexName: 'flat_taken_at' } } };
    expect(planProblems(old)).to.have.length(2);
    const good = { stage: 'LIMIT', inputStage: { stage: 'FETCH', inputStage: { stage: 'IXSCAN', keyPattern: WANTED_INDEX, indexName: 'flat_taken_at_device_seq' } } };
    expect(planProblems(good)).to.deep.equal([]);
    expect(planProblems({ queryPlan: good })).to.deep.equal([]);
  });
});
