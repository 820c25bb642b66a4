import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { status, type ServiceError } from '@grpc/grpc-js';
import { type StorageServiceClient, type QueryServiceClient, type GetFreshnessRequest, type ListMeasurementsRequest, type WatchFreshnessResponse, type Reading } from '@flatline/proto';
import { checkHealth, unaryCall } from '@flatline/platform';
import { type StartedServer, eventually, ServicesFixture } from '@flatline/stack';

const T0 = new Date('2026-11-29T08:00:00Z');
const at = (s: number): Date => new Date(T0.getTime() + s * 1000);

function reading(flatId: string, deviceId: string, seq: number, takenAtS: number): Reading {
  return { flatId, deviceId, seq: String(seq), takenAt: at(takenAtS), quantity: 'electricity', unit: 'kWh', value: seq / 10, epoch: 0 };
}

/**
 * A page token made the way the service made them before they were keyed: an
 * unkeyed SHA-256 anyone can compute from the source, so anyone could point a
 * page anywhere. A service must refuse it.
 */
function unkeyedToken(cursor: { takenAtMs: number; deviceId: string; seq: number }, query: { flatId: string; deviceId: string }): string {
  const digest = (text: string): string => createHash('sha256').update(`flatline.page.v1\n${text}`).digest('base64url').slice(0, 22);
  const q = digest(JSON.stringify([query.flatId, query.deviceId, null, null]));
  const body = Buffer.from(JSON.stringify([cursor.takenAtMs, cursor.deviceId, cursor.seq, q])).toString('base64url');
  return `${body}.${digest(body)}`;
}

async function rejection(p: Promise<unknown>): Promise<ServiceError | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => e as ServiceError,
  );
}

describe('query service (real FerretDB, storage and query in-process)', function () {
  this.timeout(60000);
  const services = new ServicesFixture('query', { query: { FLATLINE_QUERY_PAGE_TOKEN_KEY: 'a-test-deployment-page-token-key' } });
  const db = services.db;
  let query: StartedServer;
  let client: QueryServiceClient;
  let storageClient: StorageServiceClient;
  const fetchedAt = new Map<string, Date>();

  const list = (req: Partial<ListMeasurementsRequest>) =>
    unaryCall(client, client.listMeasurements, { flatId: '', deviceId: '', from: undefined, to: undefined, pageSize: 0, pageToken: '', ...req }, 5000);
  const freshness = (req: Partial<GetFreshnessRequest>) =>
    unaryCall(client, client.getFreshness, { flatIds: [], excludeFlatIds: [], limit: 0, ...req }, 5000);

  before(async () => {
    await services.start();
    ({ query, queryClient: client, storageClient } = services);
    // Flat "range": two devices, five readings each, sharing timestamps in pairs
    // so that paging has to break ties on device and seq.
    const readings = [1, 2, 3, 4, 5].flatMap((seq) => [reading('range', 'a', seq, Math.ceil(seq / 2)), reading('range', 'b', seq, Math.ceil(seq / 2))]);
    const now = Date.now();
    const fetches = [
      { flatId: 'range', fetchedAt: new Date(now - 1000), readings },
      { flatId: 'fresh-1', fetchedAt: new Date(now - 2000), readings: [] },
      { flatId: 'fresh-2', fetchedAt: new Date(now - 3000), readings: [] },
      { flatId: 'stale-1', fetchedAt: new Date(now - 60000), readings: [] },
    ];
    for (const f of fetches) fetchedAt.set(f.flatId, f.fetchedAt);
    await unaryCall(storageClient, storageClient.append, { fetches }, 10000);
    // GetLatest and GetFreshness answer from a copy reloaded every FLATLINE_QUERY_SNAPSHOT_MS (500 ms).
    await eventually("query's snapshot to show the 4 flats", async () => (await freshness({})).report?.flatCount === 4, 5000);
  });

  after(() => services.stop());

  it('GetLatest returns the latest reading of each device and the last fetch', async () => {
    const res = await unaryCall(client, client.getLatest, { flatId: 'range' }, 5000);
    expect(res.readings.map((r) => `${r.deviceId}#${r.seq}`)).to.deep.equal(['a#5', 'b#5']);
    expect(res.lastFetchAt?.getTime()).to.equal(fetchedAt.get('range')?.getTime());
  });

  it('GetLatest of a flat fetched with no readings answers OK with its last fetch', async () => {
    const res = await unaryCall(client, client.getLatest, { flatId: 'fresh-1' }, 5000);
    expect(res.readings).to.deep.equal([]);
    expect(res.lastFetchAt?.getTime()).to.equal(fetchedAt.get('fresh-1')?.getTime());
  });

  it('GetLatest of a flat never fetched answers NOT_FOUND naming the flat', async () => {
    const err = await rejection(unaryCall(client, client.getLatest, { flatId: 'never-seen' }, 5000));
    expect(err?.code, err?.message).to.equal(status.NOT_FOUND);
    expect(err?.details).to.match(/flat "never-seen" is unknown/);
  });

  it('ListMeasurements pages through a range in order, each reading exactly once', async () => {
    const seen: string[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const page = await list({ flatId: 'range', pageSize: 3, pageToken });
      expect(page.readings.length).to.be.at.most(3);
      seen.push(...page.readings.map((r) => `${r.takenAt?.toISOString().slice(17, 19)}/${r.deviceId}#${r.seq}`));
      pageToken = page.nextPageToken;
      pages += 1;
    } while (pageToken !== '' && pages < 10);
    expect(pages).to.equal(4);
    expect(seen).to.deep.equal([
      '01/a#1', '01/a#2', '01/b#1', '01/b#2',
      '02/a#3', '02/a#4', '02/b#3', '02/b#4',
      '03/a#5', '03/b#5',
    ]);
  });

  const pagesOf = async (req: Partial<ListMeasurementsRequest>): Promise<string[][]> => {
    const pages: string[][] = [];
    let pageToken = '';
    do {
      const page = await list({ ...req, pageToken });
      pages.push(page.readings.map((r) => `${r.takenAt?.toISOString().slice(17, 19)}/${r.deviceId}#${r.seq}`));
      pageToken = page.nextPageToken;
    } while (pageToken !== '' && pages.length < 10);
    return pages;
  };

  it('ListMeasurements pages one device, and pages from a start time, each reading once', async () => {
    expect(await pagesOf({ flatId: 'range', deviceId: 'a', pageSize: 2 })).to.deep.equal([['01/a#1', '01/a#2'], ['02/a#3', '02/a#4'], ['03/a#5']]);
    expect(await pagesOf({ flatId: 'range', from: at(2), pageSize: 3 })).to.deep.equal([
      ['02/a#3', '02/a#4', '02/b#3'],
      ['02/b#4', '03/a#5', '03/b#5'],
    ]);
  });

  it('ListMeasurements filters by device and by a half-open time range', async () => {
    const res = await list({ flatId: 'range', deviceId: 'b', from: at(2), to: at(3) });
    expect(res.readings.map((r) => `${r.deviceId}#${r.seq}`)).to.deep.equal(['b#3', 'b#4']);
    expect(res.nextPageToken).to.equal('');
  });

  it('GetFreshness ranks the stalest flats, excludes what it is told to, and lists never-fetched flats', async () => {
    const all = (await freshness({})).report!;
    expect(all.flatCount).to.equal(4);
    expect(all.stalest.map((f) => f.flatId)).to.deep.equal(['stale-1', 'fresh-2', 'fresh-1', 'range']);
    expect(all.worstAgeSeconds).to.be.within(60, 120);
    expect(all.p50AgeSeconds).to.be.within(2, 60);

    const healthy = (await freshness({ excludeFlatIds: ['stale-1'], limit: 1 })).report!;
    expect(healthy.flatCount).to.equal(3);
    expect(healthy.stalest.map((f) => f.flatId)).to.deep.equal(['fresh-2']);
    expect(healthy.worstAgeSeconds).to.be.below(60);

    const some = (await freshness({ flatIds: ['fresh-1', 'ghost'] })).report!;
    expect(some.flatCount).to.equal(1);
    expect(some.neverFetchedFlatIds).to.deep.equal(['ghost']);
    expect(some.neverFetchedCount).to.equal(1);
  });

  it('WatchFreshness streams a report at once and then every interval', async () => {
    const stream = client.watchFreshness({ selector: { flatIds: ['fresh-1'], excludeFlatIds: [], limit: 0 }, intervalSeconds: 0.2 });
    const reports: WatchFreshnessResponse[] = [];
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (r: WatchFreshnessResponse) => {
        reports.push(r);
        if (reports.length === 3) {
          stream.cancel();
          resolve();
        }
      });
      stream.on('error', (err: ServiceError) => (err.code === status.CANCELLED ? resolve() : reject(err)));
    });
    expect(reports).to.have.length(3);
    const ages = reports.map((r) => r.report!.stalest[0]!.ageSeconds);
    expect(ages[2]).to.be.greaterThan(ages[0]!);
  });

  const bad: Array<[string, () => Promise<unknown>, RegExp]> = [
    ['GetLatest with an empty flat id', () => unaryCall(client, client.getLatest, { flatId: '' }, 5000), /flat_id is required/],
    ['GetLatest with a malformed flat id', () => unaryCall(client, client.getLatest, { flatId: '../17' }, 5000), /flat_id must be 1 to 64 characters/],
    ['ListMeasurements with from after to', () => list({ flatId: 'range', from: at(5), to: at(1) }), /from .* must not be after to/],
    ['ListMeasurements with a negative page size', () => list({ flatId: 'range', pageSize: -1 }), /page_size must be from 1 to 1000/],
    ['ListMeasurements with a page size over 1000', () => list({ flatId: 'range', pageSize: 1001 }), /page_size must be from 1 to 1000/],
    ['ListMeasurements with a forged page token', () => list({ flatId: 'range', pageToken: 'eyJ0IjoxfQ.AAAA' }), /page_token is not a next_page_token/],
    ['ListMeasurements with a malformed device id', () => list({ flatId: 'range', deviceId: 'a b' }), /device_id must be/],
    ['GetFreshness with a limit over 1000', () => freshness({ limit: 1001 }), /limit must be from 0 to 1000/],
    ['GetFreshness with a malformed excluded flat', () => freshness({ excludeFlatIds: ['ok', 'not ok'] }), /exclude_flat_ids\[1\]/],
  ];
  for (const [what, send, message] of bad) {
    it(`answers INVALID_ARGUMENT to ${what}`, async () => {
      const err = await rejection(send());
      expect(err?.code, err?.message).to.equal(status.INVALID_ARGUMENT);
      expect(err?.details).to.match(message);
    });
  }

  it('refuses a page token signed the old, unkeyed way (anyone could compute it)', async () => {
    const forged = unkeyedToken({ takenAtMs: at(1).getTime(), deviceId: 'b', seq: 2 }, { flatId: 'range', deviceId: '' });
    const err = await rejection(list({ flatId: 'range', pageSize: 2, pageToken: forged }));
    expect(err?.code, err ? err.message : 'the forged token was accepted').to.equal(status.INVALID_ARGUMENT);
    expect(err?.details).to.match(/page_token is not a next_page_token of this query/);
  });

  it('refuses a page token of another query, and one altered by a single character', async () => {
    const first = await list({ flatId: 'range', pageSize: 2 });
    expect(first.nextPageToken).to.not.equal('');
    const other = await rejection(list({ flatId: 'range', deviceId: 'a', pageSize: 2, pageToken: first.nextPageToken }));
    expect(other?.code).to.equal(status.INVALID_ARGUMENT);
    expect(other?.details).to.match(/made for another query/);
    const t = first.nextPageToken;
    const flipped = t.slice(0, 5) + (t[5] === 'A' ? 'B' : 'A') + t.slice(6);
    const altered = await rejection(list({ flatId: 'range', pageSize: 2, pageToken: flipped }));
    expect(altered?.code).to.equal(status.INVALID_ARGUMENT);
  });

  it('answers from a copy of the flat state that follows storage within a second', async () => {
    await unaryCall(storageClient, storageClient.append, { fetches: [{ flatId: 'range', fetchedAt: new Date(), readings: [reading('range', 'a', 6, 4)] }] }, 10000);
    // Within about one reload (FLATLINE_QUERY_SNAPSHOT_MS 500 ms), with room for a loaded machine.
    await eventually('GetLatest to show the new reading (range/a seq 6) within about one reload', async () => (await unaryCall(client, client.getLatest, { flatId: 'range' }, 5000)).readings.some((r) => r.deviceId === 'a' && r.seq === '6'), 2000, 50);
  });

  it('answers UNAVAILABLE while FerretDB is down, turns NOT_SERVING, and recovers by itself', async () => {
    await db.stop();
    await eventually('query to answer NOT_SERVING with FerretDB down', async () => (await checkHealth(query.grpc)) === 'NOT_SERVING', 10000);
    const err = await rejection(unaryCall(client, client.getLatest, { flatId: 'range' }, 10000));
    expect(err?.code, err?.message).to.equal(status.UNAVAILABLE);
    await db.start();
    await eventually('QueryService to answer SERVING once FerretDB is back', async () => (await checkHealth(query.grpc, 'flatline.query.v1.QueryService')) === 'SERVING', 15000);
    const res = await unaryCall(client, client.getLatest, { flatId: 'range' }, 5000);
    expect(res.readings).to.have.length(2);
  });
});
