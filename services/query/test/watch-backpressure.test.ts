/**
 * WatchFreshness against clients that stop reading (issue 12 item 6): the
 * real query service in a child process, real FerretDB, and raw HTTP/2
 * clients that pause their stream so that the server's flow-control window
 * really closes (checked: the bytes such a client receives stop at about one
 * window). The service's resident memory must stay bounded, a reader that
 * resumes must get the newest report rather than a queue of old ones, and
 * streams beyond FLATLINE_QUERY_MAX_STREAMS are refused.
 */
import { readFileSync } from 'node:fs';
import { connect as connectHttp2, constants as h2, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { connect as connectTcp, type Socket } from 'node:net';
import { expect } from 'chai';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { StorageServiceClient, QueryServiceClient, WatchFreshnessRequest, WatchFreshnessResponse } from '@flatline/proto';
import { checkHealth, unaryCall } from '@flatline/platform';
import { type RunningService, eventually, holdFor, startTestService, tempDir, TestDatabase } from '@flatline/stack';

const FLATS = 1000;
const MAX_STREAMS = 8;
const MiB = 1024 * 1024;

/** Resident set size of a process, from /proc/<pid>/status (VmRSS, in kB). */
function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}


/** A WatchFreshness call over a plain HTTP/2 connection whose reads the test controls. */
interface RawWatch {
  readonly socket: Socket;
  readonly session: ClientHttp2Session;
  readonly stream: ClientHttp2Stream;
  /** Decoded responses, once reading was resumed. */
  readonly responses: WatchFreshnessResponse[];
  /** Stops paying attention: the stream stays paused, nothing is consumed, the window stays shut. */
  resume(): void;
  close(): void;
}

/**
 * Opens WatchFreshness with Node's HTTP/2 client and never reads it (until
 * resume()): a paused Http2Stream does not consume its data, so no
 * WINDOW_UPDATE goes back and the server cannot send beyond its window.
 */
function rawWatch(address: string, request: WatchFreshnessRequest): RawWatch {
  const [host, port] = address.split(':') as [string, string];
  const socket = connectTcp({ host, port: Number(port) });
  const session = connectHttp2(`http://${address}`, { createConnection: () => socket });
  session.on('error', () => undefined);
  const stream = session.request({
    [h2.HTTP2_HEADER_METHOD]: 'POST',
    [h2.HTTP2_HEADER_PATH]: '/flatline.query.v1.QueryService/WatchFreshness',
    [h2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
    [h2.HTTP2_HEADER_TE]: 'trailers',
  });
  stream.on('error', () => undefined);
  const body = WatchFreshnessRequest.encode(request).finish();
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  Buffer.from(body).copy(frame, 5);
  stream.end(frame);
  stream.pause();
  const responses: WatchFreshnessResponse[] = [];
  let pending = Buffer.alloc(0);
  return {
    socket,
    session,
    stream,
    responses,
    resume: () => {
      stream.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
          const n = pending.readUInt32BE(1);
          responses.push(WatchFreshnessResponse.decode(pending.subarray(5, 5 + n)));
          pending = pending.subarray(5 + n);
        }
      });
      stream.resume();
    },
    close: () => {
      stream.close(h2.NGHTTP2_CANCEL);
      session.destroy();
    },
  };
}

describe('WatchFreshness with clients that do not read (real query process)', function () {
  this.timeout(90000);
  const dir = tempDir('query-watch');
  const db = new TestDatabase(`${dir.path}/ferretdb`);
  let query: RunningService;
  let client: QueryServiceClient;
  const flatIds = Array.from({ length: FLATS }, (_, i) => `w${String(i).padStart(4, '0')}`);
  // The largest report a caller may ask for: 1,000 stalest flats (~32 KB on the wire), ten a second.
  const bigWatch: WatchFreshnessRequest = { selector: { flatIds: [], excludeFlatIds: [], limit: 1000 }, intervalSeconds: 0.1 };
  const raws: RawWatch[] = [];

  before(async () => {
    await db.start();
    const storage = await startTestService('storage', db.uri, dir.path);
    const storageClient = new StorageServiceClient(storage.grpc, credentials.createInsecure());
    try {
      await eventually('storage to answer SERVING', async () => (await checkHealth(storage.grpc)) === 'SERVING', 10000);
      const now = Date.now();
      await unaryCall(storageClient, storageClient.append, { fetches: flatIds.map((flatId, i) => ({ flatId, fetchedAt: new Date(now - i * 10), readings: [] })) }, 20000);
    } finally {
      storageClient.close();
      await storage.process.stop();
    }
    query = await startTestService('query', db.uri, dir.path, { FLATLINE_QUERY_MAX_STREAMS: String(MAX_STREAMS) });
    client = new QueryServiceClient(query.grpc, credentials.createInsecure());
    const count = async (): Promise<boolean> => (await unaryCall(client, client.getFreshness, { flatIds: [], excludeFlatIds: [], limit: 1 }, 5000)).report?.flatCount === FLATS;
    await eventually(`query to see the ${FLATS} flats`, count, 10000);
  });

  afterEach(() => {
    for (const r of raws.splice(0)) r.close();
  });

  after(async () => {
    client?.close();
    await query?.process.stop();
    await db.stop();
    dir.cleanup();
  });

  it('keeps its memory bounded while five clients stop reading ten large reports a second', async () => {
    const pid = query.process.pid!;
    // One reading client alongside, for comparison and to show readers still get fresh reports.
    const reader = client.watchFreshness(bigWatch);
    let readBytes = 0;
    let lastAsOf = 0;
    reader.on('data', (r: WatchFreshnessResponse) => {
      readBytes += WatchFreshnessResponse.encode(r).finish().length;
      lastAsOf = r.report?.asOf?.getTime() ?? 0;
    });
    reader.on('error', () => undefined);
    try {
      await eventually('the reading client to receive reports', async () => readBytes > 0, 10000, 50);
      const baseline = rssBytes(pid);
      for (let i = 0; i < 5; i++) raws.push(rawWatch(query.grpc, bigWatch));
      const boundBytes = 24 * MiB;
      let worst = 0;
      const end = Date.now() + 10000;
      // Sampled every 250 ms for 10 s; stops early once over the bound (the old code grows without end).
      while (Date.now() < end) {
        await holdFor(250, 'the sampling interval of the resident memory');
        worst = Math.max(worst, rssBytes(pid) - baseline);
        if (worst > boundBytes) break;
      }
      const stalledBytes = raws.map((r) => r.socket.bytesRead);
      const summary = `RSS growth ${(worst / MiB).toFixed(1)} MiB over a baseline of ${(baseline / MiB).toFixed(1)} MiB; bytes received: reader ${readBytes}, non-readers ${stalledBytes.join(', ')}`;
      console.log(`      ${summary}`);
      // The transport really stopped: each non-reader holds about one flow-control window, the reader got far more.
      for (const b of stalledBytes) expect(b, summary).to.be.below(512 * 1024);
      expect(readBytes, summary).to.be.above(4 * Math.max(...stalledBytes));
      expect(worst, summary).to.be.below(boundBytes);
      expect(Date.now() - lastAsOf, 'the reading client still gets fresh reports').to.be.below(2000);
    } finally {
      reader.cancel();
    }
  });

  it('gives a client that resumes reading the newest report, not the queue of old ones', async () => {
    const raw = rawWatch(query.grpc, bigWatch);
    raws.push(raw);
    await holdFor(3000, 'the client reads nothing while thirty reports are made');
    const resumedAt = Date.now();
    raw.resume();
    await eventually('a fresh report after the reader resumed', async () => raw.responses.some((r) => (r.report?.asOf?.getTime() ?? 0) >= resumedAt - 500), 5000, 50);
    const firstFresh = raw.responses.findIndex((r) => (r.report?.asOf?.getTime() ?? 0) >= resumedAt - 500);
    console.log(`      after 3 s unread: ${firstFresh} older report(s) before the first fresh one, ${raw.responses.length} received`);
    // Thirty reports were made while it did not read; only what its window held (two or three) and the newest may come first.
    expect(firstFresh, `reports before the first fresh one (of ${raw.responses.length})`).to.be.at.most(5);
  });

  it(`refuses a stream beyond FLATLINE_QUERY_MAX_STREAMS (${MAX_STREAMS}) with RESOURCE_EXHAUSTED, and admits one again when a stream ends`, async () => {
    const small: WatchFreshnessRequest = { selector: { flatIds: [flatIds[0]!], excludeFlatIds: [], limit: 1 }, intervalSeconds: 1 };
    // The streams of the tests before are gone once the service has seen their cancellation.
    for (let i = 0; i < MAX_STREAMS; i++) raws.push(rawWatch(query.grpc, small));
    const outcome = (): Promise<ServiceError | 'report'> =>
      new Promise((resolve) => {
        const call = client.watchFreshness(small);
        call.on('data', () => {
          call.cancel();
          resolve('report');
        });
        call.on('error', (err: ServiceError) => resolve(err));
      });
    await holdFor(500, 'the service to admit the streams opened above');
    const refused = await outcome();
    expect(refused, 'the stream beyond the cap').to.not.equal('report');
    const err = refused as ServiceError;
    expect(err.code, err.message).to.equal(status.RESOURCE_EXHAUSTED);
    expect(err.details).to.match(/at most 8 .*streams/);
    raws.pop()!.close();
    await eventually('a stream to be admitted once another ended', async () => (await outcome()) === 'report', 5000, 200);
  });
});
