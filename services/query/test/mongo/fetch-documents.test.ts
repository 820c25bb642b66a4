/**
 * Readings kept one document per fetch result and minute
 * (FLATLINE_STORAGE_FETCH_DOCUMENTS=1) read back as the readings they are:
 * the same Appends go to a storage that keeps one document per reading and
 * to one that keeps fetch documents, and ListMeasurements by slots over the
 * second gives exactly the pages the old read gives over the first, with a
 * reading two fetch results carried (a replica that took the flat over
 * fetched the devices' window again) once, and a retried Append stored once.
 * A query replica that reads the old way refuses such a database rather than
 * leave its readings out; a fetch document that does not parse fails the
 * read. Real FerretDB (SQLite), storage and query in-process.
 */
import { expect } from 'chai';
import { status, type ServiceError } from '@grpc/grpc-js';
import { type FetchResult, type ListMeasurementsRequest, type Reading } from '@flatline/proto';
import { COLLECTIONS, FETCH_DOCUMENTS, MalformedReadingDocError, slotMinute, slotOf, unaryCall } from '@flatline/platform';
import { ServicesFixture } from '@flatline/stack';
import type { RangeQuery } from '../../src/domain/query-args.ts';
import { QueryStore } from '../../src/mongo/query-store.ts';
import { expectSamePages, pagesOf, show } from './paging.ts';

const KEY = 'a-test-deployment-page-token-key';
const MINUTE = 60_000;
/** 30 minutes ago, 11 s into a minute: minutes and pages split instants. */
const T0 = Math.floor((Date.now() - 30 * MINUTE) / MINUTE) * MINUTE + 11_000;
const DEVICES = ['heat', 'power', 'water'];

function reading(flatId: string, deviceId: string, seq: number): Reading {
  return { flatId, deviceId, seq: String(seq), takenAt: new Date(T0 + seq * 7000), quantity: 'energy', unit: 'kWh', value: seq / 10, epoch: 0 };
}

/** A fetch result of flatId with the readings seqs of every device. */
function fetchOf(flatId: string, seqs: readonly number[], fetchedAtS: number): FetchResult {
  return { flatId, fetchedAt: new Date(T0 + fetchedAtS * 1000), readings: seqs.flatMap((s) => DEVICES.map((d) => reading(flatId, d, s))) };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('fetch documents: read back as the readings they hold (real FerretDB, storage and query)', function () {
  this.timeout(300000);
  const perReading = new ServicesFixture('fetch-docs-reading', { query: { FLATLINE_QUERY_PAGE_TOKEN_KEY: KEY } });
  const perFetch = new ServicesFixture('fetch-docs-fetch', { storage: { FLATLINE_STORAGE_FETCH_DOCUMENTS: '1' }, query: { FLATLINE_QUERY_PAGE_TOKEN_KEY: KEY } });
  let old: QueryStore;
  let slotted: QueryStore;
  /** What the fetch-document storage answered to each Append, in order. */
  const outcomes: Array<{ inserted: number; duplicates: number }> = [];

  before(async () => {
    await Promise.all([perReading.start(), perFetch.start()]);
    // Flat "f": one reading per device every 7 s, fetched 3 at a time (seqs 1..60, about 7 minutes).
    const appends: FetchResult[][] = [];
    for (let s = 1; s <= 60; s += 3) appends.push([fetchOf('f', range(s, s + 2), s * 7 + 21), fetchOf('g', [s], s * 7 + 21)]);
    // A replica that takes flat f over fetches the devices' window again: seqs 40..60, stored already.
    appends.push([fetchOf('f', range(40, 60), 60 * 7 + 30)]);
    // A retried Append (its answer lost): the same fetch results again.
    appends.push(appends[3]!);
    for (const fetches of appends) {
      await unaryCall(perReading.storageClient, perReading.storageClient.append, { fetches }, 20000);
      outcomes.push(await unaryCall(perFetch.storageClient, perFetch.storageClient.append, { fetches }, 20000));
    }
    old = new QueryStore(perReading.mongo.db());
    slotted = new QueryStore(perFetch.mongo.db(), undefined, { horizon: { get: () => -Infinity } });
  });

  after(async () => {
    await Promise.all([perReading.stop(), perFetch.stop()]);
  });

  it('stores a fetch result per minute in one document, and a retried Append as duplicates of its own documents', async () => {
    const docs = await perFetch.mongo.db().collection(COLLECTIONS.readings).find({}).toArray();
    expect(docs.every((d) => typeof d['readings_json'] === 'string' && d['flat_id'] === undefined), 'every document is a fetch document').to.equal(true);
    // 40 fetch results of 3 readings' instants (f) or 1 (g), split where a minute ends; the takeover's 21 instants span 3 minutes.
    expect(docs.length).to.be.within(40 + 3, 40 + 3 + 20);
    expect(await perFetch.mongo.db().collection(COLLECTIONS.migrations).findOne({ _id: FETCH_DOCUMENTS as unknown as never })).to.have.property('since');
    // The takeover's readings are mostly new documents (another fetch result; a minute of it that holds just what an
    // earlier fetch result held is the same document); the retry's are all its own documents again.
    const takeover = outcomes.at(-2)!;
    expect(takeover.inserted + takeover.duplicates).to.equal(21 * 3);
    expect(takeover.inserted).to.be.greaterThan(takeover.duplicates);
    expect(outcomes.at(-1)).to.include({ inserted: 0, duplicates: 3 * 3 + 3 });
  });

  const cases: Array<[string, RangeQuery['key'], number[]]> = [
    ['no start and no end (from the flat\'s first reading)', { flatId: 'f', deviceId: '', fromMs: undefined, toMs: undefined }, [100, 7, 1]],
    ['a closed range through the re-fetched readings', { flatId: 'f', deviceId: '', fromMs: T0 + 33 * 7000, toMs: T0 + 52 * 7000 + 1 }, [10]],
    ['one device, from a reading\'s own instant', { flatId: 'f', deviceId: 'power', fromMs: T0 + 41 * 7000, toMs: undefined }, [4]],
    ['a flat of one reading per fetch', { flatId: 'g', deviceId: '', fromMs: T0, toMs: undefined }, [25]],
  ];
  for (const [what, key, sizes] of cases) {
    it(`pages as one document per reading does: ${what}`, async () => {
      await expectSamePages(old, slotted, key, sizes);
    });
  }

  it('lists every reading of flat f once, though the takeover stored many of them a second time', async () => {
    const seen = (await pagesOf(slotted, { flatId: 'f', deviceId: '', fromMs: undefined, toMs: undefined }, 50)).flatMap((p) => p.readings.map(show));
    expect(seen.length).to.equal(60 * 3);
    expect(new Set(seen).size).to.equal(seen.length);
  });

  const list = (f: ServicesFixture, req: Partial<ListMeasurementsRequest>) =>
    unaryCall(f.queryClient, f.queryClient.listMeasurements, { flatId: '', deviceId: '', from: undefined, to: undefined, pageSize: 0, pageToken: '', ...req }, 20000);

  it('a query replica that reads the old way refuses the database (FAILED_PRECONDITION naming FLATLINE_QUERY_SLOT_READS) rather than leave the readings out', async () => {
    const err = (await list(perFetch, { flatId: 'f', pageSize: 10 }).then(
      () => undefined,
      (e: unknown) => e as ServiceError,
    ))!;
    expect(err, 'refused').to.not.equal(undefined);
    expect(err.code).to.equal(status.FAILED_PRECONDITION);
    expect(err.details).to.include('FLATLINE_QUERY_SLOT_READS=1');
    // The control: the same service over one document per reading answers.
    expect((await list(perReading, { flatId: 'f', pageSize: 10 })).readings).to.have.length(10);
  });

  it('a fetch document whose readings do not parse fails the read, not skipped', async () => {
    const slot = slotOf('bad', slotMinute(T0));
    await perFetch.mongo.db().collection(COLLECTIONS.readings).insertOne({ _id: `${slot}/x` as never, slot, stored_at: new Date(), readings_json: '[["heat",0,1]]' });
    const err = await slotted.range({ key: { flatId: 'bad', deviceId: '', fromMs: T0 - MINUTE, toMs: T0 + MINUTE }, pageSize: 10, after: undefined }, 60000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(MalformedReadingDocError);
  });
});
