/**
 * ListMeasurements read slot by slot (FLATLINE_QUERY_SLOT_READS=1) gives
 * exactly the pages of the old read, over the same data: readings the real
 * storage wrote (with their slots), readings stored before slots existed
 * (none, inserted as an older storage did, with the slots record moved to
 * just past them), slotted readings taken before the newest of those (an
 * outbox drained old readings through the new storage), devices sharing
 * timestamps so that page boundaries fall inside a minute and inside one
 * timestamp, open and closed ranges, a device filter, page tokens of one
 * path continued by the other. Real FerretDB (SQLite) and storage; the two
 * QueryStores and a query service in-process.
 */
import { expect } from 'chai';
import { credentials } from '@grpc/grpc-js';
import { MongoClient } from 'mongodb';
import { QueryServiceClient, type ListMeasurementsRequest, type Reading } from '@flatline/proto';
import { COLLECTIONS, createLogger, READING_SLOTS, silentLogger, unaryCall, type SlotsRecord } from '@flatline/platform';
import { eventually, ServicesFixture, startInProcessService, type StartedServer } from '@flatline/stack';
import type { RangeQuery } from '../../src/domain/query-args.ts';
import { QueryStore } from '../../src/mongo/query-store.ts';
import { expectSamePages, pagesOf, show } from './paging.ts';
import { SlotHorizon } from '../../src/mongo/slot-horizon.ts';
import { StateSnapshot } from '../../src/mongo/state-snapshot.ts';

const KEY = 'a-test-deployment-page-token-key';
const MINUTE = 60_000;
/**
 * 25 minutes ago, 17 s into a minute: minute boundaries fall between readings,
 * and the last reading (T0 + 1293 s) is a few minutes old, so that an open
 * range (up to now) walks few empty minutes: on SQLite each slot lookup is a scan.
 */
const T0 = Math.floor((Date.now() - 25 * MINUTE) / MINUTE) * MINUTE + 17_000;
const at = (s: number): Date => new Date(T0 + s * 1000);
const DEVICES = ['heat', 'power', 'water'];

function reading(flatId: string, deviceId: string, seq: number, takenAtS: number): Reading {
  return { flatId, deviceId, seq: String(seq), takenAt: at(takenAtS), quantity: 'energy', unit: 'kWh', value: seq / 10, epoch: 0 };
}

/** A reading as a storage of the release before slots stored it (no slot field). */
function legacy(flatId: string, deviceId: string, seq: number, takenAtS: number) {
  return { flat_id: flatId, device_id: deviceId, epoch: 0, seq, taken_at: at(takenAtS), quantity: 'energy', unit: 'kWh', value: seq / 10, stored_at: new Date() };
}


describe('ListMeasurements by slots: the same pages as the old read (real FerretDB and storage)', function () {
  this.timeout(600000);
  const services = new ServicesFixture('slot-reads', { query: { FLATLINE_QUERY_PAGE_TOKEN_KEY: KEY } });
  let client: MongoClient;
  let old: QueryStore;
  let slotted: QueryStore;
  let horizon: SlotHorizon;

  /** Every page of req by store, with the cursor of each page carried to the next as the service does. */
  before(async () => {
    await services.start();
    // Flat "s": three devices reading at the same instants every 7 s for about 12 minutes (seconds 600..1293),
    // through the real storage (which writes the slots), in two Appends.
    const all = Array.from({ length: 100 }, (_, i) => DEVICES.map((d) => reading('s', d, 1000 + i, 600 + i * 7))).flat();
    const other = Array.from({ length: 60 }, (_, i) => reading('s2', 'heat', 1 + i, 600 + i * 10));
    for (const part of [all.slice(0, 300), all.slice(300)]) {
      await unaryCall(services.storageClient, services.storageClient.append, { fetches: [{ flatId: 's', fetchedAt: new Date(), readings: part }] }, 10000);
    }
    await unaryCall(services.storageClient, services.storageClient.append, { fetches: [{ flatId: 's2', fetchedAt: new Date(), readings: other }] }, 10000);
    // Drained late through a new storage: slotted readings taken before the newest legacy one.
    await unaryCall(
      services.storageClient,
      services.storageClient.append,
      { fetches: [{ flatId: 's', fetchedAt: new Date(), readings: DEVICES.map((d) => reading('s', d, 500, 120)) }] },
      10000,
    );
    client = new MongoClient(services.db.uri);
    // Stored before slots existed: minutes 0..9 of the same flat, every 10 s, and one more at 300 s (the horizon is just past it).
    const readings = client.db().collection(COLLECTIONS.readings);
    await readings.insertMany([...Array.from({ length: 30 }, (_, i) => DEVICES.map((d) => legacy('s', d, 1 + i, i * 10))).flat(), legacy('s', 'heat', 400, 300)]);
    // As if this storage had started on a database that held them: its record says slots exist since just past the newest.
    await client
      .db()
      .collection<SlotsRecord>(COLLECTIONS.migrations)
      .updateOne({ _id: READING_SLOTS }, { $set: { since: new Date(at(300).getTime() + 1) } });
    horizon = new SlotHorizon(client.db(), { retryMs: 600000, timeoutMs: 30000 }, createLogger('slot-reads-test', 'silent'));
    old = new QueryStore(client.db());
    slotted = new QueryStore(client.db(), undefined, { horizon });
  });

  after(async () => {
    await client?.close();
    await services.stop();
  });

  it('the storage wrote a slot on each reading and the earliest reading of each flat; the horizon is its record', async () => {
    const readings = client.db().collection(COLLECTIONS.readings);
    const doc = await readings.findOne({ flat_id: 's', seq: 1000, device_id: 'heat' });
    expect(doc?.['slot']).to.equal(`s/${Math.floor(at(600).getTime() / MINUTE)}`);
    // The flat state as query reads it: the buckets and the flat-state log after them.
    const copy = new StateSnapshot(client.db(), { refreshMs: 0, maxAgeMs: 0, timeoutMs: 30000 }, silentLogger());
    await copy.refresh();
    expect(copy.bucketOf('s')?.first?.['s']?.toISOString(), 'the drained reading at 120 s lowered it').to.equal(at(120).toISOString());
    expect(horizon.get()).to.equal(undefined);
    expect(await horizon.refresh()).to.equal(true);
    expect(horizon.get()).to.equal(at(300).getTime() + 1);
  });

  const cases: Array<[string, RangeQuery['key'], number[]]> = [
    ['no start and no end (the old way until the horizon, then slots)', { flatId: 's', deviceId: '', fromMs: undefined, toMs: undefined }, [100, 23]],
    ['from before the horizon to inside a minute', { flatId: 's', deviceId: '', fromMs: at(50).getTime(), toMs: at(1290).getTime() }, [31]],
    ['from after the horizon, on a reading\'s own instant, open end', { flatId: 's', deviceId: '', fromMs: at(607).getTime(), toMs: undefined }, [100, 50]],
    ['one device, from a minute boundary', { flatId: 's', deviceId: 'power', fromMs: T0 + 43_000 + 10 * MINUTE, toMs: at(1700).getTime() }, [9]],
    ['a flat with no legacy readings', { flatId: 's2', deviceId: '', fromMs: at(0).getTime(), toMs: undefined }, [11]],
    ['an empty range', { flatId: 's', deviceId: '', fromMs: at(900).getTime(), toMs: at(900).getTime() }, [100]],
    ['a range where the flat has nothing', { flatId: 'nobody', deviceId: '', fromMs: at(0).getTime(), toMs: at(1500).getTime() }, [100]],
  ];
  for (const [what, key, sizes] of cases) {
    it(`pages identically: ${what}`, async () => {
      await expectSamePages(old, slotted, key, sizes);
    });
  }

  it('finds every reading of the flat once: 3 x 100 through storage, 3 drained late, 91 stored before slots', async () => {
    const pages = await pagesOf(slotted, { flatId: 's', deviceId: '', fromMs: undefined, toMs: undefined }, 100);
    const seen = pages.flatMap((p) => p.readings.map(show));
    expect(seen.length).to.equal(3 * 100 + 3 + 91);
    expect(new Set(seen).size).to.equal(seen.length);
    // A page boundary inside one instant: page 1 of 7 ends on the first device of an instant.
    const small = await pagesOf(slotted, { flatId: 's', deviceId: '', fromMs: at(607).getTime(), toMs: undefined }, 7);
    expect(small[0]!.readings.at(-1)?.deviceId).to.equal('heat');
    expect(small[1]!.readings[0]?.deviceId).to.equal('power');
    expect(small[1]!.readings[0]?.takenAt?.getTime()).to.equal(small[0]!.readings.at(-1)?.takenAt?.getTime());
  });

  it('ends a page after its cap of minutes read, with a token that goes on after them: the same readings, in more pages', async () => {
    // Three readings, 27 silent minutes, two more (a cap of 12 minutes stands for MAX_SLOT_MINUTES_PER_PAGE: each slot lookup is a scan on SQLite).
    const readings = [0, 1, 2].map((i) => reading('gap', 'heat', 1 + i, -40 * 60 + i)).concat([3, 4].map((i) => reading('gap', 'heat', 1 + i, -12 * 60 + i)));
    await unaryCall(services.storageClient, services.storageClient.append, { fetches: [{ flatId: 'gap', fetchedAt: new Date(), readings }] }, 10000);
    const everySlotted = new QueryStore(client.db(), undefined, { horizon: { get: () => -Infinity }, maxMinutesPerPage: 12 });
    const key = { flatId: 'gap', deviceId: '', fromMs: at(-41 * 60).getTime(), toMs: at(-5 * 60).getTime() };
    const a = await pagesOf(old, key, 4);
    expect(a.map((p) => p.readings.map((r) => r.seq))).to.deep.equal([['1', '2', '3', '4'], ['5']]);
    const b = await pagesOf(everySlotted, key, 4);
    // 37 minutes: 12 (3 readings), 12 (none), 12 (2 readings), 1 (none).
    expect(b.map((p) => p.readings.map((r) => r.seq))).to.deep.equal([['1', '2', '3'], [], ['4', '5'], []]);
    expect(b.map((p) => p.more)).to.deep.equal([true, true, true, false]);
    // Open end, no start: it starts at the flat's first reading (its state), not at the beginning of time.
    const open = await pagesOf(everySlotted, { flatId: 'gap', deviceId: '', fromMs: undefined, toMs: undefined }, 100);
    expect(open.flatMap((p) => p.readings.map((r) => r.seq))).to.deep.equal(['1', '2', '3', '4', '5']);
  });

  it('answers a flat that has no reading and no state with one empty page, without reading any slot', async () => {
    const everySlotted = new QueryStore(client.db(), undefined, { horizon: { get: () => -Infinity } });
    const pages = await pagesOf(everySlotted, { flatId: 'never-seen', deviceId: '', fromMs: undefined, toMs: undefined }, 100);
    expect(pages.map((p) => [p.readings.length, p.more])).to.deep.equal([[0, false]]);
  });

  it('with no horizon yet (no storage has recorded it) reads the old way', async () => {
    const unknown = new QueryStore(client.db(), undefined, { horizon: { get: () => undefined } });
    const key = { flatId: 's', deviceId: '', fromMs: at(607).getTime(), toMs: undefined };
    expect((await pagesOf(unknown, key, 100)).map((p) => p.readings.map(show))).to.deep.equal((await pagesOf(old, key, 100)).map((p) => p.readings.map(show)));
  });

  describe('the query service with FLATLINE_QUERY_SLOT_READS=1', () => {
    let slotQuery: StartedServer;
    let slotClient: QueryServiceClient;

    before(async () => {
      slotQuery = await startInProcessService('query', services.db.uri, services.dir.path, {
        FLATLINE_QUERY_PAGE_TOKEN_KEY: KEY,
        FLATLINE_QUERY_SLOT_READS: '1',
        // On SQLite each slot lookup is a scan of the collection (FerretDB pushes down only _id there): slower than one range read.
        FLATLINE_DB_TIMEOUT_MS: '60000',
      });
      slotClient = new QueryServiceClient(slotQuery.grpc, credentials.createInsecure());
    });

    after(async () => {
      slotClient?.close();
      await slotQuery?.stop();
    });

    const list = (c: QueryServiceClient, req: Partial<ListMeasurementsRequest>) =>
      unaryCall(c, c.listMeasurements, { flatId: '', deviceId: '', from: undefined, to: undefined, pageSize: 0, pageToken: '', ...req }, 60000);

    it('answers the pages of the default service, and the page tokens of each continue on the other', async () => {
      const req = { flatId: 's', from: at(100), pageSize: 60 };
      // The horizon is read in the background at start: until then the pages are the old way's anyway.
      await eventually('the slot service to page like the default one', async () => {
        const [a, b] = [await list(services.queryClient, req), await list(slotClient, req)];
        return JSON.stringify(a) === JSON.stringify(b);
      }, 60000);
      let token = '';
      for (let page = 0; page < 12; page++) {
        const [mine, theirs] = page % 2 === 0 ? [slotClient, services.queryClient] : [services.queryClient, slotClient];
        const a = await list(mine, { ...req, pageToken: token });
        const b = await list(theirs, { ...req, pageToken: token });
        expect(a.readings.map(show), `page ${page}`).to.deep.equal(b.readings.map(show));
        expect(a.nextPageToken, `page ${page}`).to.equal(b.nextPageToken);
        token = a.nextPageToken;
        if (token === '') break;
      }
      expect(token, 'paged to the end').to.equal('');
    });
  });
});
