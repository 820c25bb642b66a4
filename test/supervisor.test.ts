/**
 * `flatline up` supervises its processes as a kubelet does: a process that
 * dies on its own (kill -9 from another terminal) is restarted with back-off
 * on the same ports and state, shown in `flatline status` with its restart
 * count and last exit, while everything else keeps running and serving; and
 * nothing is lost. A node failed on purpose (`flatline node crash`) stays down
 * until it is restored. Real processes: `flatline up` as a user starts it.
 */
import { expect } from 'chai';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, readStackFile, type StackFile, fetchSyncz, freshness, eventually, holdFor, tempDir } from '@flatline/stack';

const run = promisify(execFile);
const FLATS = 24;
const CLI = ['--import', 'tsx', join(REPO_ROOT, 'cli', 'src', 'main.ts')];

/** One row of `flatline status --json`. */
interface StatusRow {
  component: string;
  health: string;
  pid?: number;
  state?: string;
  restarts?: number;
  lastExit?: { code: string };
}

describe('flatline up restarts a process that dies, and keeps the rest running', function () {
  this.timeout(300000);
  const dir = tempDir('supervisor');
  const out = join(dir.path, 'up.out');
  let up: ChildProcess;
  let upExit: number | string | null = null;

  /** The real flatline command against this stack; resolves with its exit code and output, whatever the code. */
  const flatline = (...args: string[]) =>
    run(process.execPath, [...CLI, ...args, '--state-dir', dir.path], { cwd: REPO_ROOT, timeout: 90000 }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
    );
  const upOutput = (): string => readFileSync(out, 'utf8').split('\n').slice(-15).join('\n');
  const upAlive = (): void => {
    if (upExit !== null) throw new Error(`flatline up exited (${upExit}); its last output:\n${upOutput()}`);
  };
  const stackFile = (): StackFile => {
    const f = readStackFile(dir.path);
    if (f === undefined) throw new Error('no stack.json');
    return f;
  };
  const status = async (): Promise<StatusRow[]> => {
    const r = await flatline('status', '--json');
    try {
      return JSON.parse(r.stdout) as StatusRow[];
    } catch {
      throw new Error(`flatline status --json exited ${r.code}: ${r.stdout}${r.stderr}`);
    }
  };
  const row = (rows: StatusRow[], name: string): StatusRow => {
    const r = rows.find((x) => x.component === name);
    if (r === undefined) throw new Error(`flatline status shows no ${name}: ${rows.map((x) => x.component).join(', ')}`);
    return r;
  };
  /** The pid of every process of the stack, by name, from stack.json (what another terminal can read). */
  const pids = async (): Promise<Record<string, number | undefined>> => {
    const f = JSON.parse(readFileSync(join(dir.path, 'stack.json'), 'utf8')) as StackFile & { components?: Array<{ name: string; pid?: number }> };
    return {
      ferretdb: f.databasePid,
      ...Object.fromEntries((f.replicas ?? []).map((r) => [r.name, r.pid])),
      ...Object.fromEntries((f.components ?? []).map((c) => [c.name, c.pid])),
    };
  };
  /** Freshness read through the stable query address (HAProxy). */
  const queryAnswers = async (): Promise<boolean> => {
    const f = await freshness(stackFile().query);
    return f.flatCount === FLATS;
  };

  before(async () => {
    const fd = openSync(out, 'a');
    // Its own process group, as in a terminal of its own; its children share it.
    up = spawn(process.execPath, [...CLI, 'up', '--free-ports', '--state-dir', dir.path, '--flats', String(FLATS), '--interval', '1s', '--replicas', '2', '--nodes', '2'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    closeSync(fd);
    up.once('exit', (code, signal) => (upExit = code ?? signal ?? 'unknown'));
    await eventually(
      'flatline up to start and every component to answer SERVING',
      async () => {
        upAlive();
        const r = await flatline('status');
        if (r.code !== 0) throw new Error(`flatline status exited ${r.code}: ${r.stdout}${r.stderr}`);
        return true;
      },
      120000,
      1000,
    );
    // A failed wait names what freshness last said (which flats, how old) and what up last printed.
    const serving = Date.now();
    await eventually(
      'every flat fetched and fresher than 20 s',
      async () => {
        upAlive();
        const r = await flatline('freshness', '--max-age', '20');
        if (r.code !== 0) throw new Error(`flatline freshness exited ${r.code}: ${r.stdout}${r.stderr}\nflatline up's last output:\n${upOutput()}`);
        return true;
      },
      60000,
      1000,
    );
    console.log(`      every flat fresh ${((Date.now() - serving) / 1000).toFixed(1)} s after every component answered SERVING`);
  });

  after(async () => {
    if (up !== undefined && upExit === null) {
      up.kill('SIGTERM');
      const gone = await eventually('flatline up to stop its stack', async () => upExit !== null, 60000, 200).then(
        () => true,
        () => false,
      );
      if (!gone) process.kill(-up.pid!, 'SIGKILL');
    }
    dir.cleanup();
  });

  it('keeps its control socket private (0600 in a 0700 folder)', () => {
    const socket = stackFile().control!;
    expect((statSync(socket).mode & 0o777).toString(8), 'socket').to.equal('600');
    expect((statSync(dirname(socket)).mode & 0o777).toString(8), 'folder').to.equal('700');
  });

  it("runs Istio's control plane by default (no --mesh): istiod in stack.json, and both ingestion replicas take storage's routes from it", async () => {
    const f = stackFile();
    expect(f.istiod, 'stack.json names istiod').to.not.equal(undefined);
    await eventually(
      'ingestion-0 and ingestion-1 to be xDS clients of istiod',
      async () => {
        const clients = (await fetchSyncz(f.istiod!.debug)).map((c) => c.proxy);
        if (!['ingestion-0', 'ingestion-1'].every((n) => clients.includes(`${n}.flatline`))) throw new Error(`syncz lists ${clients.join(', ') || 'no client'}`);
        return true;
      },
      30000,
      500,
    );
  });

  const victims: Array<[string, string]> = [
    ['ingestion-0', 'an ingestion replica'],
    ['storage-1', 'a storage replica'],
    ['query-0', 'a query replica'],
    ['devices', 'the device simulator'],
    ['ferretdb', 'FerretDB'],
    ['haproxy', 'HAProxy'],
    ['toxiproxy', 'Toxiproxy (every link: it comes back with its proxies on the same ports)'],
    ['istiod', "Istio's control plane (its clients keep their routes meanwhile, and it comes back on the same ports)"],
  ];
  for (const [name, what] of victims) {
    it(`restarts ${what} killed with SIGKILL (${name}): restart count 1 in flatline status, nothing else restarted, still serving`, async () => {
      const before = await pids();
      const pid = before[name];
      expect(pid, `${name} has a pid in flatline status`).to.be.a('number');
      process.kill(pid!, 'SIGKILL');
      // Without the database, the balancer or the links, query cannot answer through its stable address; with any other process gone it must, at once.
      if (name !== 'ferretdb' && name !== 'haproxy' && name !== 'toxiproxy') await eventually(`query to answer through its stable address while ${name} is down`, queryAnswers, 5000, 200);
      await eventually(
        `${name} to run again with restart count 1 and a new pid`,
        async () => {
          upAlive();
          const r = row(await status(), name);
          if (r.restarts !== 1 || r.pid === pid || r.state !== 'running') throw new Error(`${name}: ${JSON.stringify(r)}`);
          return true;
        },
        45000,
        500,
      );
      upAlive();
      const r = row(await status(), name);
      expect(r.lastExit?.code, 'its last exit').to.equal('SIGKILL');
      const after = await pids();
      for (const [other, otherPid] of Object.entries(before)) if (other !== name) expect(after[other], `${other} kept running (not restarted)`).to.equal(otherPid);
      await eventually(`query to answer through its stable address after ${name} came back`, queryAnswers, 30000, 500);
    });
  }

  it('restarts a replica that keeps dying less and less often (crash-loop back-off), shown in stack.json and flatline status', async () => {
    type Supervised = { name: string; state: string; pid?: number; restarts: number; lastExit?: { code: string; at: string }; nextStartAt?: string };
    const supervised = (): Supervised => {
      const f = JSON.parse(readFileSync(join(dir.path, 'stack.json'), 'utf8')) as { components?: Supervised[] };
      const c = (f.components ?? []).find((x) => x.name === 'ingestion-1');
      if (c === undefined) throw new Error('no ingestion-1 in stack.json components');
      return c;
    };
    const delays: number[] = [];
    for (let n = 1; n <= 3; n++) {
      const pid = supervised().pid!;
      process.kill(pid, 'SIGKILL');
      let waiting: Supervised | undefined;
      await eventually(`ingestion-1 in back-off after crash ${n}`, async () => {
        const c = supervised();
        if (c.state !== 'back-off' || c.nextStartAt === undefined) throw new Error(JSON.stringify(c));
        waiting = c;
        return true;
      }, 5000, 20);
      delays.push(Date.parse(waiting!.nextStartAt!) - Date.parse(waiting!.lastExit!.at));
      await eventually(`ingestion-1 running again after crash ${n}`, async () => {
        const c = supervised();
        if (c.state !== 'running' || c.restarts !== n) throw new Error(JSON.stringify(c));
        return true;
      }, 30000, 100);
    }
    // The first delay of flatline up is 1 s, doubling, with half jitter: [0.5, 1), [1, 2), [2, 4) s.
    expect(delays[0], delays.join(', ')).to.be.within(500, 1000);
    expect(delays[1], delays.join(', ')).to.be.within(1000, 2000);
    expect(delays[2], delays.join(', ')).to.be.within(2000, 4000);
    const r = row(await status(), 'ingestion-1');
    expect(r).to.deep.include({ state: 'running', restarts: 3 });
    expect(r.lastExit?.code).to.equal('SIGKILL');
    upAlive();
  });

  it('loses nothing across the kills: outboxes drained, zero gaps (flatline gaps), every flat fresh, every component SERVING', async () => {
    upAlive();
    const drained = await flatline('drained', '--timeout', '60s');
    expect(drained.code, drained.stdout + drained.stderr).to.equal(0);
    const gaps = await flatline('gaps');
    expect(gaps.code, gaps.stdout + gaps.stderr).to.equal(0);
    expect(gaps.stdout).to.match(/; 0 missing in 0 device\(s\)/);
    await eventually('every flat fresher than 20 s', async () => (await flatline('freshness', '--max-age', '20')).code === 0, 30000, 1000);
    // Its last answer is in the error when it times out: which component was not SERVING.
    await eventually('flatline status to exit 0', async () => {
      const s = await flatline('status');
      if (s.code !== 0) throw new Error(`exit ${s.code}:\n${s.stdout}${s.stderr}`);
      return true;
    }, 60000, 1000);
    const text = (await flatline('status')).stdout;
    for (const [name] of victims) expect(text, text).to.match(new RegExp(`^${name} .* SERVING +1 +SIGKILL \\d+ s ago`, 'm'));
    // The Tiltfile's readiness probe counts one line per ingestion replica.
    expect(text.split('\n').filter((l) => l.startsWith('ingestion-')), text).to.have.length(2);
  });

  it('leaves a node crashed with flatline node crash down (no restart) until flatline node restore', async () => {
    const before = await status();
    const members = ['storage-1', 'query-1', 'ingestion-1'];
    const crash = await flatline('node', 'crash', 'node-b');
    expect(crash.stdout + crash.stderr).to.include('node-b: crashed');
    // Longer than several first back-offs: a supervisor that restarted them would have by now.
    await holdFor(5000, 'node-b stays down: no restart');
    const down = await flatline('node', 'down', 'node-b');
    expect(down.code, down.stdout).to.equal(0);
    const rows = await status();
    for (const m of members) {
      expect(row(rows, m).state, `${m} stays stopped`).to.equal('stopped');
      expect(row(rows, m).restarts, `${m} was not restarted`).to.equal(row(before, m).restarts);
    }
    await eventually('query to answer through node-a while node-b is down', queryAnswers, 30000, 500);
    const restore = await flatline('node', 'restore', 'node-b');
    expect(restore.stdout + restore.stderr).to.include('node-b: ready');
    await eventually('flatline status to exit 0 after the restore', async () => (await flatline('status')).code === 0, 60000, 1000);
    const restored = await status();
    for (const m of members) expect(row(restored, m).restarts, `${m}: a restore is no restart`).to.equal(row(before, m).restarts);
    upAlive();
  });
});
