/**
 * The supervisor's read-only probes over loopback HTTP: GET /freshness,
 * /fetched, /gaps, /drained and /status answer JSON with a status code a Chaos Toolkit
 * http probe can hold a tolerance against (200: the steady state holds; 409
 * or 503: it does not), refuse bad parameters with 400 and a message, and
 * stay bounded in time. Against a real stack (the harness), and against
 * probes that hang, for the bounds.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, callSupervisor, eventually, holdFor, readStackFile, serveProbes, startTestStack, tempDir, type LocalStack, type SupervisorProbes } from '@flatline/stack';

const run = promisify(execFile);
const FLATS = 12;

/** GET url with the Host header given (node:http: fetch will not send a foreign one). */
function rawGet(url: string, host: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host }, timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the supervisor answers probes over loopback HTTP', function () {
  this.timeout(180000);
  const dir = tempDir('supervisor-http');
  let stack: LocalStack;
  let url: string;
  const get = async (path: string, params: Record<string, string> = {}, timeoutMs = 20000) => {
    const started = Date.now();
    const answer = await callSupervisor(url, path, params, timeoutMs);
    return { ...answer, ms: Date.now() - started };
  };
  /** The real flatline command against this stack; resolves with its exit code and output, whatever the code. */
  const flatline = (...args: string[]) =>
    run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'cli', 'src', 'main.ts'), ...args, '--state-dir', dir.path], { cwd: REPO_ROOT, timeout: 60000 }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
    );

  before(async () => {
    stack = await startTestStack(dir.path, FLATS, { ingestion: { FLATLINE_POLL_TIMEOUT_MS: '600', FLATLINE_BACKOFF_MAX_MS: '2000' } });
    url = stack.supervisorUrl!;
    await eventually('every flat fetched and fresher than 20 s', async () => (await get('/freshness', { max_age: '20' })).status === 200, 60000, 500);
  });

  after(async () => {
    await stack?.stop();
    dir.cleanup();
  });

  it('listens on 127.0.0.1 only, and stack.json names it', () => {
    expect(url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(readStackFile(dir.path)?.supervisor).to.equal(url);
  });

  it('GET /freshness: 200 with the report while every flat is fresh; 409 for a flat never fetched', async () => {
    const fresh = await get('/freshness', { max_age: '20', limit: '3' });
    expect(fresh.status).to.equal(200);
    const report = fresh.body as { flatCount: number; worstAgeSeconds: number; stalest: unknown[] };
    expect(report.flatCount).to.equal(FLATS);
    expect(report.worstAgeSeconds).to.be.below(20);
    expect(report.stalest).to.have.length(3);
    const never = await get('/freshness', { flats: '9999', max_age: '20' });
    expect(never.status).to.equal(409);
    expect(never.body).to.deep.include({ neverFetchedCount: 1, neverFetchedFlatIds: ['9999'] });
    // Without max_age it only reports.
    expect((await get('/freshness', { flats: '9999' })).status).to.equal(200);
  });

  it('GET /freshness: 409 once a flat goes stale, while the others still answer 200', async () => {
    const control = `http://${stack.devices.addresses['control']}`;
    await fetch(`${control}/behaviours/3`, { method: 'PUT', body: JSON.stringify({ mode: 'http-503' }) });
    try {
      await eventually('flat 3 older than 3 s', async () => (await get('/freshness', { flats: '3', max_age: '3' })).status === 409, 30000, 500);
      const stale = await get('/freshness', { flats: '3', max_age: '3' });
      expect((stale.body as { worstAgeSeconds: number }).worstAgeSeconds).to.be.above(3);
      expect((await get('/freshness', { exclude: '3', max_age: '20' })).status).to.equal(200);
      // The CLI reads the same endpoint: exit 1 on 409, 0 on 200.
      expect((await flatline('freshness', '--flats', '3', '--max-age', '3')).code).to.equal(1);
      expect((await flatline('freshness', '--exclude', '3', '--max-age', '20')).code).to.equal(0);
    } finally {
      await fetch(`${control}/behaviours`, { method: 'DELETE' });
    }
    await eventually('flat 3 fresh again', async () => (await get('/freshness', { flats: '3', max_age: '5' })).status === 200, 30000, 500);
  });

  it('GET /fetched: ingestion\'s own freshness goes on while the database is frozen (query\'s goes stale), and goes stale with a failing device', async () => {
    const fetched = await get('/fetched', { max_age: '20', limit: '2' });
    expect(fetched.status, JSON.stringify(fetched.body)).to.equal(200);
    const body = fetched.body as { flatCount?: number; neverFetchedCount?: number };
    expect(body.flatCount).to.equal(FLATS);
    expect(body.neverFetchedCount ?? 0, 'proto JSON leaves a zero out').to.equal(0);
    expect((await get('/fetched', { flats: '9999', max_age: '20' })).status, 'a flat never fetched').to.equal(409);
    const pid = readStackFile(dir.path)?.databasePid;
    expect(pid, 'the database pid in stack.json').to.be.a('number');
    process.kill(pid!, 'SIGSTOP');
    try {
      // Query cannot read the last fetches, or reads them ever older: stale or unanswered.
      await eventually('query\'s freshness stale or unanswered', async () => (await get('/freshness', { max_age: '4' }, 12000)).status !== 200, 30000, 500);
      // Ingestion kept fetching into its outbox all along.
      const during = await get('/fetched', { max_age: '4' });
      expect(during.status, JSON.stringify(during.body)).to.equal(200);
      // The CLI reads the same: exit 0 from the outboxes while query's answer is stale or missing.
      const cli = await flatline('freshness', '--from', 'outboxes', '--max-age', '4');
      expect(cli.code, cli.stdout + cli.stderr).to.equal(0);
    } finally {
      process.kill(pid!, 'SIGCONT');
    }
    const control = `http://${stack.devices.addresses['control']}`;
    await fetch(`${control}/behaviours/5`, { method: 'PUT', body: JSON.stringify({ mode: 'http-503' }) });
    try {
      await eventually('flat 5 not fetched for 3 s', async () => (await get('/fetched', { flats: '5', max_age: '3' })).status === 409, 30000, 500);
      expect((await flatline('freshness', '--from', 'outboxes', '--flats', '5', '--max-age', '3')).code).to.equal(1);
      const remote = await flatline('freshness', '--from', 'outboxes', '--query', '127.0.0.1:1');
      expect(remote.code).to.equal(2);
      expect(remote.stderr).to.match(/--from outboxes reads a local stack's outboxes, and --query names a remote query service/);
      expect((await get('/fetched', { exclude: '5', max_age: '20' })).status).to.equal(200);
    } finally {
      await fetch(`${control}/behaviours`, { method: 'DELETE' });
    }
    await eventually('flat 5 fetched again', async () => (await get('/fetched', { flats: '5', max_age: '5' })).status === 200, 30000, 500);
    await eventually('query fresh again', async () => (await get('/freshness', { max_age: '20' })).status === 200, 60000, 500);
  });

  it('refuses bad parameters with 400 and says what was expected', async () => {
    const cases: Array<[string, Record<string, string>, string]> = [
      ['/freshness', { max_age: 'abc' }, 'max_age: expected a number of seconds'],
      ['/freshness', { max_age: '-1' }, 'max_age: expected a number of seconds'],
      ['/freshness', { limit: '5000' }, 'limit: expected a whole number from 0 to 1000'],
      ['/freshness', { maxage: '20' }, 'unknown parameter "maxage"'],
      ['/freshness', { flats: 'a b' }, 'flats: a flat ID is'],
      ['/gaps', { since: 'yesterday' }, 'since: expected an ISO time'],
      ['/drained', { timeout: '10h' }, 'timeout: expected a duration'],
      ['/drained', { timeout: '601s' }, 'timeout: at most 600 s'],
      ['/status', { verbose: '1' }, 'unknown parameter "verbose"'],
    ];
    for (const [path, params, message] of cases) {
      const a = await get(path, params);
      expect(a.status, `${path} ${JSON.stringify(params)}`).to.equal(400);
      expect((a.body as { error: string }).error, `${path} ${JSON.stringify(params)}`).to.include(message);
    }
    const twice = await fetch(`${url}/freshness?limit=1&limit=2`);
    expect(twice.status).to.equal(400);
    expect(((await twice.json()) as { error: string }).error).to.include('limit given 2 times');
  });

  it('answers GET only, no node action, and only for a loopback Host', async () => {
    const post = await fetch(`${url}/status`, { method: 'POST' });
    expect([post.status, post.headers.get('allow')]).to.deep.equal([405, 'GET']);
    // What changes the stack stays on the 0600 control socket.
    expect((await fetch(`${url}/nodes/node-a/crash`, { method: 'POST' })).status).to.equal(404);
    expect((await get('/nodes')).status).to.equal(404);
    expect((await rawGet(`${url}/status`, 'evil.example:80')).status, 'a foreign Host (DNS rebinding)').to.equal(403);
    expect((await rawGet(`${url}/freshness`, `localhost:${new URL(url).port}`)).status).to.equal(200);
  });

  it('GET /gaps: 200 and zero missing in what is stored; readings since a time only', async () => {
    const all = await get('/gaps');
    expect(all.status).to.equal(200);
    expect(all.body).to.deep.include({ gaps: [], missing: 0 });
    expect((all.body as { readings: number }).readings).to.be.above(0);
    const future = await get('/gaps', { since: new Date(Date.now() + 3600000).toISOString() });
    expect([future.status, (future.body as { readings: number }).readings]).to.deep.equal([200, 0]);
    const cli = await flatline('gaps', '--json');
    expect(cli.code).to.equal(0);
    expect(JSON.parse(cli.stdout)).to.have.keys(['devices', 'readings', 'gaps', 'missing', 'held']);
  });

  it('GET /drained: 409 while storage refuses (the outboxes hold readings), 200 once they drained, waiting up to its timeout', async () => {
    expect((await flatline('fault', 'on', 'storage-unavailable')).code).to.equal(0);
    try {
      // Acting first: a 409 seen before ingestion read the fault file may be a fetch on its way, gone a moment later (seen in CI under load).
      await eventually('the fault to abort an Append', async () => (await flatline('fault', 'touched', 'storage-unavailable')).code === 0, 30000, 500);
      await eventually('readings waiting in the outboxes', async () => (await get('/drained', { timeout: '0s' })).status === 409, 30000, 500);
      const waited = await get('/drained', { timeout: '2s' });
      expect(waited.status).to.equal(409);
      expect(waited.ms, 'it waited its timeout').to.be.within(1900, 6000);
      expect((waited.body as { waiting: number }).waiting).to.be.above(0);
      expect((await flatline('drained', '--timeout', '1s')).code, 'flatline drained exits 1').to.equal(1);
    } finally {
      expect((await flatline('fault', 'off', '--all')).code).to.equal(0);
    }
    const drained = await get('/drained', { timeout: '60s' }, 70000);
    expect(drained.status, JSON.stringify(drained.body)).to.equal(200);
    expect(drained.body).to.deep.include({ empty: true, waiting: 0, unanswered: [] });
    expect((await flatline('drained', '--timeout', '30s')).stdout).to.equal('every outbox is empty\n');
  });

  it('GET /status: what flatline status --json shows; 503 within its bound while the database is frozen', async () => {
    const ok = await get('/status');
    expect(ok.status).to.equal(200);
    const names = (ok.body as Array<{ component: string; health: string }>).map((r) => r.component);
    expect(names).to.include.members(['ferretdb', 'devices', 'storage', 'query', 'ingestion-0', 'ingestion-1']);
    const cli = await flatline('status', '--json');
    expect(cli.code).to.equal(0);
    expect((JSON.parse(cli.stdout) as Array<{ component: string }>).map((r) => r.component)).to.deep.equal(names);
    stack.db.process.signal('SIGSTOP');
    try {
      const frozen = await get('/status');
      expect(frozen.status).to.equal(503);
      expect(frozen.ms, 'bounded although the database hangs').to.be.below(11000);
      expect((frozen.body as Array<{ component: string; health: string }>).find((r) => r.component === 'ferretdb')?.health).to.equal('NOT_SERVING');
    } finally {
      stack.db.process.signal('SIGCONT');
    }
    await eventually('status 200 again after the thaw', async () => (await get('/status')).status === 200, 30000, 1000);
  });
});

describe('the probe server stays bounded whatever its probes do', function () {
  this.timeout(30000);
  const never = <T>(): Promise<T> => new Promise<T>(() => {});
  const hanging: SupervisorProbes = { freshness: never, fetched: never, gaps: never, outbox: never, status: never };
  const deadlines = { freshness: 300, gaps: 300, status: 300, drained: 300 };

  it('answers 504 when a probe hangs past its deadline, 429 beyond the requests it takes at once, and 503 to what is under way when it stops', async () => {
    const server = await serveProbes(hanging, 0, deadlines);
    try {
      const started = Date.now();
      const a = await callSupervisor(server.url, '/freshness');
      expect(a.status).to.equal(504);
      expect(Date.now() - started).to.be.below(2000);
      expect((await callSupervisor(server.url, '/drained', { timeout: '0s' })).status).to.equal(504);
    } finally {
      await server.close();
    }
    const slow = await serveProbes(hanging, 0, { ...deadlines, status: 60000 });
    const underWay = Array.from({ length: 16 }, () => callSupervisor(slow.url, '/status'));
    await holdFor(300, 'the 16 calls to reach the server');
    const refused = await callSupervisor(slow.url, '/status');
    expect(refused.status).to.equal(429);
    const closing = Date.now();
    await slow.close();
    expect(Date.now() - closing, 'close() ends what is under way').to.be.below(2000);
    const answers = await Promise.allSettled(underWay);
    expect(answers.every((s) => s.status === 'rejected' || s.value.status === 503)).to.equal(true);
    await callSupervisor(slow.url, '/status', {}, 2000).then(
      () => expect.fail('a closed server answered'),
      (err: Error) => expect(err.message).to.include('cannot reach the supervisor'),
    );
  });

  it('answers 503 with the reason when a probe fails, and keeps serving', async () => {
    const failing: SupervisorProbes = {
      ...hanging,
      gaps: () => Promise.reject(new Error('connect ECONNREFUSED')),
      status: () => {
        throw new Error('thrown, not rejected');
      },
    };
    const server = await serveProbes(failing, 0, deadlines);
    try {
      const gaps = await callSupervisor(server.url, '/gaps');
      expect(gaps).to.deep.equal({ status: 503, body: { error: 'the database: connect ECONNREFUSED' } });
      expect((await callSupervisor(server.url, '/status')).status).to.equal(503);
      expect((await callSupervisor(server.url, '/gaps')).status, 'still serving').to.equal(503);
    } finally {
      await server.close();
    }
  });
});
