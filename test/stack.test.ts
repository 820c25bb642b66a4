import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { credentials } from '@grpc/grpc-js';
import { QueryServiceClient } from '@flatline/proto';
import { REPO_ROOT, TOOLS_BIN, type LocalStack, databaseWatchLines, freshness, holdFor, metric, queryFaultInterceptor, eventually, type GapReport, startTestStack, tempDir } from '@flatline/stack';
import { flatIds, loadCredentials, unaryCall } from '@flatline/platform';

const run = promisify(execFile);
const FLATS = 24;

/** Worst freshness over every flat (or the healthy ones), read with the real grpcurl. */
async function worstAgeByGrpcurl(query: string, exclude: string[] = []): Promise<{ worst: number; count: number; never: number }> {
  const { stdout } = await run(join(TOOLS_BIN, 'grpcurl'), ['-plaintext', '-d', JSON.stringify({ exclude_flat_ids: exclude }), query, 'flatline.query.v1.QueryService/GetFreshness']);
  const report = (JSON.parse(stdout) as { report: { worstAgeSeconds?: number; flatCount?: number; neverFetchedCount?: number } }).report;
  return { worst: report.worstAgeSeconds ?? 0, count: report.flatCount ?? 0, never: report.neverFetchedCount ?? 0 };
}

async function control(stack: LocalStack, method: string, path: string, body?: unknown): Promise<void> {
  const res = await fetch(`http://${stack.devices.addresses['control']}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  expect(res.status, await res.text()).to.be.within(200, 299);
}

async function outboxTotal(stack: LocalStack): Promise<number> {
  let total = 0;
  for (const r of stack.ingestion) if (r?.process.running) total += await metric(r.metrics, 'flatline_ingestion_outbox_fetches');
  return total;
}

async function pollOutcomes(stack: LocalStack, outcome: string): Promise<number> {
  let total = 0;
  for (const r of stack.ingestion) if (r?.process.running) total += await metric(r.metrics, 'flatline_ingestion_polls_total', `outcome="${outcome}"`);
  return total;
}

/** The error p rejects with; fails when p resolves. */
async function rejection(p: Promise<unknown>): Promise<Error> {
  const outcome = await p.then(
    (value) => ({ value }),
    (err: unknown) => ({ err }),
  );
  if ('value' in outcome) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.value)}`);
  return outcome.err as Error;
}

describe('eventually (the test harness): a wait that times out says why', () => {
  it('names what it waited for and the last error of the check', async () => {
    let n = 0;
    const err = await rejection(
      eventually('storage to answer SERVING', async () => {
        throw new Error(`connection refused (attempt ${++n})`);
      }, 300, 50),
    );
    expect(err.message).to.include('storage to answer SERVING').and.include(`connection refused (attempt ${n})`).and.include('300 ms');
  });

  it('says the check kept answering false when it never threw', async () => {
    const err = await rejection(eventually('the outbox to drain', async () => false, 200, 50));
    expect(err.message).to.include('the outbox to drain').and.match(/answered false/);
  });

  it('does not hang on a check that never settles', async function () {
    this.timeout(3000);
    const started = Date.now();
    const err = await rejection(eventually('a check that hangs', () => new Promise<boolean>(() => {}), 300, 50));
    expect(err.message).to.include('a check that hangs').and.include('still running');
    expect(Date.now() - started).to.be.below(1500);
  });

  it('resolves once the check holds, after errors and false answers', async () => {
    let n = 0;
    await eventually('the third attempt', async () => {
      n++;
      if (n === 1) throw new Error('not yet');
      return n >= 3;
    }, 2000, 10);
    expect(n).to.equal(3);
  });
});

describe('the whole stack (FerretDB, simulator, storage, query, two ingestion replicas)', function () {
  this.timeout(180000);
  const dir = tempDir('stack');
  let stack: LocalStack;
  /** The real flatline command against this stack. */
  const flatline = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', ...args, '--state-dir', dir.path], { cwd: REPO_ROOT });

  before(async () => {
    stack = await startTestStack(dir.path, FLATS, {
      // A window shorter than the database outage below, so that nothing
      // but the outbox can bring back readings fetched during it.
      devices: { FLATLINE_DEVICES_WINDOW_MS: '10000' },
      ingestion: { FLATLINE_LEASE_TTL_MS: '3000', FLATLINE_LEASE_RENEW_MS: '1000', FLATLINE_POLL_TIMEOUT_MS: '600', FLATLINE_BACKOFF_MAX_MS: '2000' },
      storage: { FLATLINE_DB_TIMEOUT_MS: '1500', FLATLINE_DB_PING_MS: '300' },
      query: { FLATLINE_DB_TIMEOUT_MS: '1500', FLATLINE_DB_PING_MS: '300' },
    });
  });

  // A failure here shows what the services said of their database, not only what the test saw: the
  // state folder (and its logs) is gone after the run.
  afterEach(function () {
    if (this.currentTest?.state !== 'failed' || stack === undefined) return;
    console.log(databaseWatchLines(stack.logs));
  });

  after(async () => {
    await stack?.stop();
    dir.cleanup();
  });

  it('reaches freshness under 20 s for every flat, read with grpcurl', async () => {
    await eventually('every flat fetched and fresher than 20 s, read with grpcurl', async () => {
      const f = await worstAgeByGrpcurl(stack.queryAddress);
      if (!(f.count === FLATS && f.never === 0 && f.worst < 20)) throw new Error(`grpcurl GetFreshness: ${JSON.stringify(f)}`);
      return true;
    }, 30000, 500);
  });

  it('splits the flats between the replicas without overlap', async () => {
    const held = async () => Promise.all(stack.ingestion.map((r) => metric(r!.metrics, 'flatline_ingestion_flats_held')));
    // The first replica holds everything until it sees the second; they settle within a few lease rounds.
    await eventually(`the ${FLATS} flats split between both replicas`, async () => {
      const h = await held();
      if (!(h.reduce((a, b) => a + b, 0) === FLATS && Math.min(...h) > 0)) throw new Error(`flats held: ${h.join(', ')}`);
      return true;
    }, 30000, 250);
  });

  it('stores every device reading with no gap in any sequence', async () => {
    // Outboxes send fresh fetches first: a backlog leaves holes in storage until it has drained. A lost reading's hole stays.
    let last: GapReport | undefined;
    await eventually(`readings of all ${FLATS * 3} devices stored, with no gap in any sequence`, async () => {
      last = await stack.storedGaps();
      return last.devices === FLATS * 3 && last.gaps.length === 0;
    }, 20000, 250).catch((err: Error) => {
      throw new Error(`${err.message}; the last read: ${JSON.stringify(last?.gaps.slice(0, 5))}`);
    });
  });

  it('loses nothing when an ingestion replica is SIGKILLed mid-run and the supervisor restarts it', async () => {
    const killed = stack.ingestion[0]!.process;
    killed.signal('SIGKILL');
    await killed.exited;
    await eventually('the supervisor to restart ingestion-0 on its outbox', async () => {
      const restarted = stack.ingestion[0];
      return restarted !== undefined && restarted.process !== killed && restarted.process.running;
    }, 30000, 200);
    expect(stack.supervised().find((c) => c.name === 'ingestion-0')).to.deep.include({ state: 'running', restarts: 1 });
    await eventually('the restarted ingestion-0 to poll its flats again', async () => (await metric(stack.ingestion[0]!.metrics, 'flatline_ingestion_polls_total', 'outcome="ok"')) > 0, 20000, 250);
    await eventually('the outboxes to drain', async () => (await outboxTotal(stack)) === 0, 60000, 500);
    const report = await stack.storedGaps();
    expect(report.gaps).to.deep.equal([]);
    expect((await freshness(stack.queryAddress)).worstAgeSeconds).to.be.below(20);
  });

  it('counts malformed and failing device answers and keeps the other flats fresh', async () => {
    const broken: Record<string, string> = { '1': 'http-500', '2': 'malformed-json', '3': 'wrong-types', '4': 'truncated-body', '5': 'slow-body', '6': 'http-503' };
    const before = { malformed: await pollOutcomes(stack, 'malformed'), http: await pollOutcomes(stack, 'http_error'), timeout: await pollOutcomes(stack, 'timeout') };
    for (const [flat, mode] of Object.entries(broken)) await control(stack, 'PUT', `/behaviours/${flat}`, { mode, delay_ms: 30000 });
    try {
      // At least one of each broken answer counted (three malformed kinds, two HTTP errors, one slow body).
      await eventually('ingestion to count the broken answers (3 malformed, 2 HTTP errors, 1 timeout)', async () => {
        const after = { malformed: await pollOutcomes(stack, 'malformed'), http: await pollOutcomes(stack, 'http_error'), timeout: await pollOutcomes(stack, 'timeout') };
        return after.malformed - before.malformed >= 3 && after.http - before.http >= 2 && after.timeout - before.timeout >= 1;
      }, 30000, 250);
      const healthy = await freshness(stack.queryAddress, { excludeFlatIds: Object.keys(broken) });
      expect(healthy.flatCount).to.equal(FLATS - 6);
      expect(healthy.worstAgeSeconds).to.be.below(20);
      for (const r of stack.ingestion) expect(r!.process.running, `${r!.process.name} still runs`).to.equal(true);
    } finally {
      await control(stack, 'DELETE', '/behaviours');
    }
    await eventually('every flat fresher than 20 s after the broken answers', async () => (await freshness(stack.queryAddress)).worstAgeSeconds < 20, 30000, 500);
  });

  it('loses nothing while FerretDB is stopped for 20 s: the outboxes grow, then drain to empty', async () => {
    // stop(): an expected stop, which the supervisor leaves alone.
    await stack.db.process.stop();
    // The outage itself: held for 20 s, not a wait for a condition.
    await holdFor(20000, 'FerretDB stays stopped');
    expect(await outboxTotal(stack), 'outbox grew while the database was away').to.be.greaterThan(0);
    await stack.startDb();
    await eventually('the outboxes to drain once FerretDB is back', async () => (await outboxTotal(stack)) === 0, 60000, 500);
    const report = await stack.storedGaps();
    expect(report.gaps).to.deep.equal([]);
    await eventually('every flat fresher than 20 s once FerretDB is back', async () => (await freshness(stack.queryAddress)).worstAgeSeconds < 20, 30000, 500);
  });

  it('puts Toxiproxy on every link: each service reaches the database, ingestion the devices and storage, through its proxy', async () => {
    const file = JSON.parse(readFileSync(join(dir.path, 'stack.json'), 'utf8')) as { toxiproxy?: { api: string; links: Record<string, string> }; database: string; devices: string; storage: string };
    expect(Object.keys(file.toxiproxy?.links ?? {}).sort()).to.deep.equal(['ingestion-db', 'ingestion-devices', 'ingestion-storage', 'query-db', 'storage-db']);
    const proxies = (await (await fetch(`${file.toxiproxy!.api}/proxies`)).json()) as Record<string, { upstream: string; listen: string }>;
    expect(proxies['storage-db']?.upstream).to.equal(file.database);
    expect(proxies['ingestion-devices']?.upstream).to.equal(file.devices);
    expect(proxies['ingestion-storage']?.upstream).to.equal(file.storage);
    // The services were given the proxies' addresses, not the servers' (their logs name the database they follow).
    const storageLog = readFileSync(join(dir.path, 'logs', 'storage.log'), 'utf8');
    expect(storageLog).to.include(file.toxiproxy!.links['storage-db']!);
  });

  it('loses nothing while every database connection is reset (db-reset, TCP RST through Toxiproxy), and the fault acted', async () => {
    const appendFailures = async (): Promise<number> => {
      let total = 0;
      for (const r of stack.ingestion) if (r?.process.running) total += await metric(r.metrics, 'flatline_ingestion_forward_errors_total').catch(() => 0);
      return total;
    };
    const failedBefore = await appendFailures();
    const on = await flatline('fault', 'on', 'db-reset');
    expect(on.stdout).to.contain('db-reset-storage-db on (link storage-db): reset_peer');
    try {
      const status = JSON.parse((await flatline('fault', 'status', '--json')).stdout) as Array<{ name: string; link?: string }>;
      expect(status.filter((r) => r.link !== undefined).map((r) => r.link).sort()).to.deep.equal(['ingestion-db', 'query-db', 'storage-db']);
      // The fault acted: storage cannot store, so the outboxes hold readings and Appends fail.
      await eventually('the outboxes to hold readings while every database connection is reset', async () => (await outboxTotal(stack)) > 0, 20000, 250);
      await holdFor(5000, 'db-reset stays on');
      expect(await appendFailures(), 'Appends failed while the links reset').to.be.greaterThan(failedBefore);
    } finally {
      const off = await flatline('fault', 'off', 'db-reset');
      expect(off.stdout).to.contain('db-reset off (3 toxic(s) removed)');
    }
    await eventually('the outboxes to drain once db-reset is off', async () => (await outboxTotal(stack)) === 0, 60000, 500);
    const report = await stack.storedGaps();
    // What ingestion says of its side, to tell a loss apart from readings set aside or never fetched.
    const sums = async (name: string): Promise<number[]> => Promise.all(stack.ingestion.map((r) => (r ? metric(r.metrics, name).catch(() => -1) : -1)));
    const side = `dead letters ${await sums('flatline_ingestion_dead_letters_total')}, missed ${await sums('flatline_ingestion_readings_missed_total')}, dropped ${await sums('flatline_ingestion_dropped_readings_total')}`;
    expect(report.gaps, side).to.deep.equal([]);
    await eventually('every flat fresher than 20 s once db-reset is off', async () => (await freshness(stack.queryAddress)).worstAgeSeconds < 20, 30000, 500);
  });

  // After the zero-gap checks: a flat held off longer than the devices' window loses readings, by design.
  it('flatline fault on devices-slow makes one flat stale while the others stay fresh; off --all brings it back', async () => {
    const on = await flatline('fault', 'on', 'devices-slow', '--flats', '7', '--delay', '30s');
    expect(on.stdout).to.contain('devices-slow on (flats 7)');
    try {
      await eventually('flat 7 to be at least 5 s stale', async () => (await freshness(stack.queryAddress, { flatIds: ['7'] })).worstAgeSeconds >= 5, 20000, 250);
      const others = await freshness(stack.queryAddress, { excludeFlatIds: ['7'] });
      expect(others.flatCount).to.equal(FLATS - 1);
      expect(others.worstAgeSeconds, 'the other flats stay fresh').to.be.below(5);
      const status = JSON.parse((await flatline('fault', 'status', '--json')).stdout) as Array<{ name: string; delayedLastMinute: number }>;
      expect(status.map((f) => f.name)).to.deep.equal(['devices-slow']);
      expect(status[0]!.delayedLastMinute, 'requests touched').to.be.greaterThan(0);
    } finally {
      await flatline('fault', 'off', '--all');
    }
    await eventually('flat 7 fresher than 5 s again', async () => (await freshness(stack.queryAddress, { flatIds: ['7'] })).worstAgeSeconds < 5, 30000, 500);
  });

  it('devices-tcp-slow with each flat its own latency (7: 3 s, 13: 1 s) through proxies of their own: those flats go stale, the others stay fresh; off puts them back on the gateway', async () => {
    // Both longer than the poll timeout (600 ms here). Toxiproxy counts a connection's bytes once they are through,
    // so a latency longer than the test would show none yet: touched's proof needs connections that end.
    const on = await flatline('fault', 'on', 'devices-tcp-slow', '--per-flat', '7=3s,13=1s');
    expect(on.stdout).to.match(/devices-tcp-slow on \(flat 7, its own link 127\.0\.0\.1:\d+\): latency downstream toxicity 1 \{"latency":3000,"jitter":0\}/);
    expect(on.stdout).to.match(/devices-tcp-slow on \(flat 13, its own link 127\.0\.0\.1:\d+\): latency downstream toxicity 1 \{"latency":1000,"jitter":0\}/);
    const links = JSON.parse(readFileSync(join(dir.path, 'device-links.json'), 'utf8')) as { flats: Record<string, string> };
    expect(Object.keys(links.flats).sort()).to.deep.equal(['13', '7']);
    try {
      // Both flats time out, nobody else does.
      await eventually('flats 7 and 13 to be at least 5 s stale', async () => (await freshness(stack.queryAddress, { flatIds: ['7', '13'] })).worstAgeSeconds >= 5 && (await freshness(stack.queryAddress, { flatIds: ['13'] })).worstAgeSeconds >= 5, 30000, 250);
      const others = await freshness(stack.queryAddress, { excludeFlatIds: ['7', '13'] });
      expect(others.flatCount).to.equal(FLATS - 2);
      expect(others.worstAgeSeconds, 'the other flats stay fresh').to.be.below(5);
      const touched = await flatline('fault', 'touched', 'devices-tcp-slow');
      expect(touched.stdout).to.match(/ingestion-devices-flat-7: devices-tcp-slow-latency-downstream; [1-9]\d* bytes received since it went on/);
      expect(touched.stdout).to.match(/ingestion-devices-flat-13: devices-tcp-slow-latency-downstream; [1-9]\d* bytes received since it went on/);
    } finally {
      const off = await flatline('fault', 'off', 'devices-tcp-slow');
      expect(off.stdout).to.contain('devices-tcp-slow off (2 toxic(s) removed)');
    }
    expect(JSON.parse(readFileSync(join(dir.path, 'device-links.json'), 'utf8'))).to.deep.equal({ version: 1, flats: {} });
    await eventually('flats 7 and 13 fresher than 5 s again', async () => (await freshness(stack.queryAddress, { flatIds: ['7', '13'] })).worstAgeSeconds < 5, 30000, 500);
    const proxies = Object.keys((await (await fetch(`${stack.toxiproxy!.client.baseUrl}/proxies`)).json()) as Record<string, unknown>);
    expect(proxies.filter((p) => p.startsWith('ingestion-devices-flat-')), 'the per-flat proxies are gone').to.deep.equal([]);
  });

  it('fault off --all restores a fault file left corrupt by a crashed toggle', async () => {
    writeFileSync(join(dir.path, 'faults.json'), '{"version":1,"faults":[{"name":"devices-sl');
    const refused = await flatline('fault', 'off', 'devices-slow').catch((e: { code: number; stderr: string }) => e);
    expect((refused as { code: number }).code).to.equal(2);
    expect((refused as { stderr: string }).stderr).to.contain('off --all rewrites it');
    await flatline('fault', 'off', '--all');
    expect(JSON.parse(readFileSync(join(dir.path, 'faults.json'), 'utf8'))).to.deep.equal({ version: 1, faults: [] });
    const bad = await flatline('fault', 'on', 'storage-unavailable', '--status', 'NOPE').catch((e: { code: number; stderr: string }) => e);
    expect((bad as { stderr: string }).stderr).to.contain('invalid fault: fault.abort.grpcStatus: must be a gRPC status name');
  });

  it('query-slow holds back the query calls of flatline freshness, and only while it is on', async () => {
    // The client a `flatline freshness` process makes (the fault file read
    // when it starts), timed call by call: the whole process also times its
    // start, which a loaded machine stretches by seconds.
    const timedCall = async (): Promise<number> => {
      const client = new QueryServiceClient(stack.queryAddress, credentials.createInsecure(), { interceptors: [queryFaultInterceptor(join(dir.path, 'faults.json'))] });
      try {
        const t = Date.now();
        await unaryCall(client, client.getFreshness, { flatIds: [], excludeFlatIds: [], limit: 1 }, 30000);
        return Date.now() - t;
      } finally {
        client.close();
      }
    };
    expect(await timedCall(), 'before the fault').to.be.below(1500);
    await flatline('fault', 'on', 'query-slow', '--delay', '2s');
    try {
      expect(await timedCall(), 'with query-slow 2 s').to.be.at.least(1900);
      const cli = Date.now();
      await flatline('freshness', '--json');
      expect(Date.now() - cli, 'flatline freshness with query-slow 2 s').to.be.at.least(1900);
    } finally {
      await flatline('fault', 'off', '--all');
    }
    expect(await timedCall(), 'after fault off').to.be.below(1500);
  });

  it('flatline freshness counts a flat of the stack that was never fetched (the query service alone cannot know it)', async () => {
    const original = readFileSync(stack.credentialsFile, 'utf8');
    const withNew = JSON.parse(original) as { version: number; flats: Record<string, unknown> };
    // A flat added to the credentials after the replicas read them: nobody polls it.
    withNew.flats['9999'] = { username: 'flat-9999', password: 'never-used-9999' };
    writeFileSync(stack.credentialsFile, JSON.stringify(withNew));
    try {
      const report = JSON.parse((await flatline('freshness', '--json')).stdout) as { neverFetchedCount?: number; neverFetchedFlatIds?: string[] };
      expect(report.neverFetchedCount).to.equal(1);
      expect(report.neverFetchedFlatIds).to.deep.equal(['9999']);
      const judged = await flatline('freshness', '--max-age', '20').then(
        () => 0,
        (e: { code: number }) => e.code,
      );
      expect(judged, 'a never-fetched flat fails --max-age').to.equal(1);
    } finally {
      writeFileSync(stack.credentialsFile, original);
    }
  });

  it('polls a dead replica\'s flats again within the takeover time', async () => {
    const killedAt = Date.now();
    const dead = stack.ingestion[1]!.process;
    // Marked expected, as a node crash marks it: the supervisor leaves it dead, so the other replica must take over.
    dead.expected = true;
    dead.signal('SIGKILL');
    await dead.exited;
    // Every flat fetched after the kill, within 15 s.
    await eventually(`every flat fetched by the other replica within 15 s of the kill`, async () => {
      const f = await freshness(stack.queryAddress);
      const behind = f.stalest.filter((s) => (s.lastFetchAt?.getTime() ?? 0) <= killedAt + 1000).map((s) => s.flatId);
      if (f.stalest.length !== FLATS || behind.length > 0) throw new Error(`${f.stalest.length} flats listed; not fetched since the kill: ${behind.join(', ')}`);
      return true;
    }, 15000, 250);
    expect(stack.ingestion[1], 'the dead replica stays dead').to.equal(undefined);
    expect(await metric(stack.ingestion[0]!.metrics, 'flatline_ingestion_flats_held')).to.equal(FLATS);
  });

  it('counts wrong credentials as authentication failures and never logs a password', async () => {
    const wrong = join(dir.path, 'wrong-credentials.json');
    const real = loadCredentials(stack.credentialsFile);
    const flats = Object.fromEntries(flatIds(FLATS).map((id) => [id, { username: `flat-${id}`, password: `not-the-password-${id}` }]));
    writeFileSync(wrong, JSON.stringify({ version: 1, flats }));
    const intruder = await stack.startIngestion(5, {
      FLATLINE_DEVICES_CREDENTIALS: wrong,
      // Leases of its own, so that it polls every flat without taking any from the real replicas.
      FLATLINE_MONGODB_URI: stack.db.uri.replace(/\/flatline$/, '/intruder'),
    });
    await eventually('three polls of the intruder counted as auth_failed', async () => (await metric(intruder.metrics, 'flatline_ingestion_polls_total', 'outcome="auth_failed"')) >= 3, 15000);
    expect(await metric(intruder.metrics, 'flatline_ingestion_polls_total', 'outcome="ok"')).to.equal(0);
    await intruder.process.stop();
    const secrets = [...Object.values(flats).map((c) => c.password), ...[...real.values()].map((c) => c.password)];
    for (const file of readdirSync(stack.logs)) {
      const text = readFileSync(join(stack.logs, file), 'utf8');
      for (const secret of secrets) expect(text.includes(secret), `${file} contains a password`).to.equal(false);
      expect(/authorization":\s*"Basic/i.test(text), `${file} contains an Authorization header`).to.equal(false);
    }
  });
});
