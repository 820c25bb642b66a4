import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, TOOLS_BIN } from '@flatline/cli/paths.js';
import type { LocalStack } from '@flatline/cli/stack/stack.js';
import { flatIds, loadCredentials } from '@flatline/platform/credentials.js';
import { freshness, metric, seqGaps } from './support/checks.ts';
import { eventually, startTestStack, tempDir } from './support/stack.ts';

const run = promisify(execFile);
const FLATS = 24;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

  after(async () => {
    await stack?.stop();
    dir.cleanup();
  });

  it('reaches freshness under 20 s for every flat, read with grpcurl', async () => {
    const ok = await eventually(async () => {
      const f = await worstAgeByGrpcurl(stack.queryAddress);
      return f.count === FLATS && f.never === 0 && f.worst < 20;
    }, 30000, 500);
    expect(ok, JSON.stringify(await worstAgeByGrpcurl(stack.queryAddress))).to.equal(true);
  });

  it('splits the flats between the replicas without overlap', async () => {
    const held = async () => Promise.all(stack.ingestion.map((r) => metric(r!.metrics, 'flatline_ingestion_flats_held')));
    // The first replica holds everything until it sees the second; they settle within a few lease rounds.
    const settled = await eventually(async () => {
      const h = await held();
      return h.reduce((a, b) => a + b, 0) === FLATS && Math.min(...h) > 0;
    }, 10000, 250);
    expect(settled, `flats held: ${(await held()).join(', ')}`).to.equal(true);
  });

  it('stores every device reading with no gap in any sequence', async () => {
    await sleep(3000);
    const report = await seqGaps(stack.db.uri);
    expect(report.devices).to.equal(FLATS * 3);
    expect(report.gaps).to.deep.equal([]);
  });

  it('loses nothing when an ingestion replica is SIGKILLed mid-run and restarted', async () => {
    stack.ingestion[0]!.process.signal('SIGKILL');
    await stack.ingestion[0]!.process.exited;
    await sleep(2500);
    await stack.startIngestion(0);
    await sleep(4000);
    expect(await eventually(async () => (await outboxTotal(stack)) === 0, 20000)).to.equal(true);
    const report = await seqGaps(stack.db.uri);
    expect(report.gaps).to.deep.equal([]);
    expect((await freshness(stack.queryAddress)).worstAgeSeconds).to.be.below(20);
  });

  it('counts malformed and failing device answers and keeps the other flats fresh', async () => {
    const broken: Record<string, string> = { '1': 'http-500', '2': 'malformed-json', '3': 'wrong-types', '4': 'truncated-body', '5': 'slow-body', '6': 'http-503' };
    const before = { malformed: await pollOutcomes(stack, 'malformed'), http: await pollOutcomes(stack, 'http_error'), timeout: await pollOutcomes(stack, 'timeout') };
    for (const [flat, mode] of Object.entries(broken)) await control(stack, 'PUT', `/behaviours/${flat}`, { mode, delay_ms: 30000 });
    try {
      await sleep(6000);
      const after = { malformed: await pollOutcomes(stack, 'malformed'), http: await pollOutcomes(stack, 'http_error'), timeout: await pollOutcomes(stack, 'timeout') };
      expect(after.malformed - before.malformed, 'malformed').to.be.at.least(3);
      expect(after.http - before.http, 'http errors').to.be.at.least(2);
      expect(after.timeout - before.timeout, 'timeouts').to.be.at.least(1);
      const healthy = await freshness(stack.queryAddress, { excludeFlatIds: Object.keys(broken) });
      expect(healthy.flatCount).to.equal(FLATS - 6);
      expect(healthy.worstAgeSeconds).to.be.below(20);
      for (const r of stack.ingestion) expect(r!.process.running, `${r!.process.name} still runs`).to.equal(true);
    } finally {
      await control(stack, 'DELETE', '/behaviours');
    }
    expect(await eventually(async () => (await freshness(stack.queryAddress)).worstAgeSeconds < 20, 30000, 500)).to.equal(true);
  });

  it('loses nothing while FerretDB is stopped for 20 s: the outboxes grow, then drain to empty', async () => {
    await stack.db.process.stop();
    await sleep(20000);
    expect(await outboxTotal(stack), 'outbox grew while the database was away').to.be.greaterThan(0);
    await stack.startDb();
    expect(await eventually(async () => (await outboxTotal(stack)) === 0, 60000, 500), 'outbox drained').to.equal(true);
    const report = await seqGaps(stack.db.uri);
    expect(report.gaps).to.deep.equal([]);
    expect(await eventually(async () => (await freshness(stack.queryAddress)).worstAgeSeconds < 20, 30000, 500)).to.equal(true);
  });

  // After the zero-gap checks: a flat held off longer than the devices' window loses readings, by design.
  it('flatline fault on devices-slow makes one flat stale while the others stay fresh; off --all brings it back', async () => {
    const on = await flatline('fault', 'on', 'devices-slow', '--flats', '7', '--delay', '30s');
    expect(on.stdout).to.contain('devices-slow on (flats 7)');
    try {
      await sleep(7000);
      const seven = await freshness(stack.queryAddress, { flatIds: ['7'] });
      expect(seven.worstAgeSeconds, 'flat 7 is stale').to.be.at.least(5);
      const others = await freshness(stack.queryAddress, { excludeFlatIds: ['7'] });
      expect(others.flatCount).to.equal(FLATS - 1);
      expect(others.worstAgeSeconds, 'the other flats stay fresh').to.be.below(5);
      const status = JSON.parse((await flatline('fault', 'status', '--json')).stdout) as Array<{ name: string; delayedLastMinute: number }>;
      expect(status.map((f) => f.name)).to.deep.equal(['devices-slow']);
      expect(status[0]!.delayedLastMinute, 'requests touched').to.be.greaterThan(0);
    } finally {
      await flatline('fault', 'off', '--all');
    }
    expect(await eventually(async () => (await freshness(stack.queryAddress, { flatIds: ['7'] })).worstAgeSeconds < 5, 30000, 500), 'flat 7 fresh again').to.equal(true);
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
    const timedFreshness = async () => {
      const t = Date.now();
      await flatline('freshness', '--json');
      return Date.now() - t;
    };
    const before = await timedFreshness();
    await flatline('fault', 'on', 'query-slow', '--delay', '2s');
    try {
      expect(await timedFreshness()).to.be.at.least(before + 1500);
    } finally {
      await flatline('fault', 'off', '--all');
    }
    expect(await timedFreshness()).to.be.below(before + 1500);
  });

  it('polls a dead replica\'s flats again within the takeover time', async () => {
    const killedAt = Date.now();
    stack.ingestion[1]!.process.signal('SIGKILL');
    await stack.ingestion[1]!.process.exited;
    // Every flat fetched after the kill, within 15 s.
    const ok = await eventually(async () => {
      const f = await freshness(stack.queryAddress);
      return f.stalest.length === FLATS && f.stalest.every((s) => (s.lastFetchAt?.getTime() ?? 0) > killedAt + 1000);
    }, 15000, 250);
    expect(ok, `took over within 15 s (${(Date.now() - killedAt) / 1000} s)`).to.equal(true);
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
    expect(await eventually(async () => (await metric(intruder.metrics, 'flatline_ingestion_polls_total', 'outcome="auth_failed"')) >= 3, 15000)).to.equal(true);
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
