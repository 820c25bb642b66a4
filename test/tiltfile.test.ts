/**
 * The root Tiltfile, run by the real Tilt v0.37.7 (.tools/bin/tilt, built by
 * tools/install-tilt.sh); there is no cluster here, and none is needed: Tilt's
 * own loader checks cluster mode too.
 *
 * With the real Tilt:
 * - `tilt ci -- --local` runs local mode to the end: the `stack` serve_cmd
 *   until its readiness probe passes (every component SERVING, every ingestion
 *   replica listed), then `freshness`, which must find every one of the 100
 *   flats fetched less than 20 s ago; Tilt must exit 0, and the stack it
 *   started must be gone afterwards (whatever happens, nothing is left running);
 * - `tilt alpha tiltfile-result` loads both modes as Tilt's engine would
 *   (local mode's resources and trigger modes; cluster mode against the real
 *   synth output: a resource per workload, the one image, query's gRPC
 *   forwarded to 7102), and refuses broken Tiltfiles.
 *
 */
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { REPO_ROOT, TOOLS_BIN, stackWarningLines, tempDir } from '@flatline/stack';
import { SCENARIOS, TCP_SCENARIOS } from '@flatline/mesh';

const tilt = join(TOOLS_BIN, 'tilt');
const TILT_VERSION = 'v0.37.7';
const tiltfile = join(REPO_ROOT, 'Tiltfile');

/** What `tilt alpha tiltfile-result` prints: Tilt's own model of the Tiltfile (the fields used here). */
interface TiltManifest {
  Name: string;
  /** pkg/model/trigger_mode.go: 0 auto, 1 manual with auto init, 2 manual, 3 auto with manual init. */
  TriggerMode: number;
  ResourceDependencies: string[] | null;
  Labels: Record<string, string> | null;
  ImageTargets: Array<{ selector: string; LiveUpdateSpec?: { syncs?: Array<{ localPath: string; containerPath: string }> | null; stopPaths?: string[] | null } }> | null;
  DeployTarget: {
    yaml?: string;
    portForwardTemplateSpec?: { forwards: Array<{ localPort: number; containerPort: number }> };
    ServeCmd?: { Argv: string[] | null };
    UpdateCmdSpec?: { args: string[] } | null;
    ReadinessProbe?: { exec?: { command: string[] } } | null;
  } | null;
}
interface TiltResult {
  Manifests: TiltManifest[];
  EnabledManifests: string[] | null;
  Error: unknown;
}
const AUTO = 0;
const MANUAL_WITH_AUTO_INIT = 1;
const MANUAL = 2;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { cwd?: string; timeout?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: opts.cwd ?? REPO_ROOT, timeout: opts.timeout ?? 120000, env: opts.env ?? process.env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

/** Whether pid runs (a zombie waiting to be reaped does not count). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Processes whose command line mentions text (the stack's components name its state folder). */
function mentioning(text: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(text)) pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TCP port nobody listens on right now (for Tilt's own web server). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** The ports `flatline up` takes by default (stack/src/stack.ts DEFAULT_PORTS; two ingestion replicas). */
const STACK_PORTS = [7100, 27117, 7101, 7102, 8443, 8444, 9104, 7110, 7111, 9110, 9111];

interface Recorded {
  name: string;
  pid: number;
  marker: string;
}

/** The processes a stack in state recorded (<state>/processes.json) that still run, checked by their marker. */
function recordedAlive(state: string): Recorded[] {
  const file = join(state, 'processes.json');
  if (!existsSync(file)) return [];
  let entries: Recorded[];
  try {
    entries = JSON.parse(readFileSync(file, 'utf8')) as Recorded[];
  } catch {
    return []; // torn while being written: the next look reads it whole
  }
  return entries.filter((e) => {
    try {
      return alive(e.pid) && readFileSync(`/proc/${e.pid}/cmdline`, 'utf8').includes(e.marker);
    } catch {
      return false;
    }
  });
}

/** What of the stack in state still runs: recorded processes, and any whose command line names the folder. */
function stackLeft(state: string): number[] {
  return [...new Set([...recordedAlive(state).map((e) => e.pid), ...mentioning(state).filter(alive)])];
}

/**
 * Waits up to waitMs for the stack in state to stop by itself (Tilt sends its process group SIGTERM and does
 * not wait), then stops what is left: SIGTERM, SIGKILL after 10 s. Returns what had to be stopped.
 */
async function stopStack(state: string, waitMs: number): Promise<string[]> {
  const end = Date.now() + waitMs;
  while (stackLeft(state).length > 0 && Date.now() < end) await sleep(200);
  const found = stackLeft(state);
  const names = found.map(who);
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // gone meanwhile
    }
  };
  for (const pid of found) {
    signal(pid, 'SIGTERM');
    signal(pid, 'SIGCONT'); // a frozen node hears SIGTERM only once it runs
  }
  const killAt = Date.now() + 10000;
  while (stackLeft(state).length > 0 && Date.now() < killAt) await sleep(100);
  for (const pid of stackLeft(state)) signal(pid, 'SIGKILL');
  return names;
}

/** pid and command line, for messages. */
function who(pid: number): string {
  try {
    return `${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()}`;
  } catch {
    return `${pid}: (gone meanwhile)`;
  }
}

describe(`Tiltfile run by the real Tilt ${TILT_VERSION} (.tools/bin/tilt)`, function () {
  this.timeout(600000);
  // FLATLINE_KEEP_TEST_STATE=1 keeps it: the stack's logs are in state/logs/.
  const { path: tmp, cleanup } = tempDir('tilt');
  // Tilt keeps its API server's config and token in TILT_DEV_DIR (default ~/.tilt-dev): one per run here.
  const env = { ...process.env, TILT_DISABLE_ANALYTICS: '1', TILT_DEV_DIR: join(tmp, 'tilt-dev') };
  after(cleanup);

  before(async () => {
    if (!existsSync(tilt)) throw new Error(`${tilt} is missing: run tools/install.sh (npm test does) or tools/install-tilt.sh`);
    const v = await run(tilt, ['version'], { env });
    expect(v.stdout, v.stderr).to.match(new RegExp(`^${TILT_VERSION.replace(/\./g, '\\.')},`));
  });

  /** `tilt alpha tiltfile-result`: Tilt loads the Tiltfile as `tilt up` would and prints its model; nothing runs. */
  async function tiltfileResult(file: string, args: string[] = []): Promise<{ res: Result; result?: TiltResult }> {
    const res = await run(tilt, ['alpha', 'tiltfile-result', '--file', file, '--', ...args], { timeout: 180000, env });
    return res.code === 0 ? { res, result: JSON.parse(res.stdout) as TiltResult } : { res };
  }

  describe('local mode', () => {
    const state = join(tmp, 'state');

    it('loads: the stack (serve_cmd, readiness probe) and freshness start by themselves, every button is manual', async () => {
      const { res, result } = await tiltfileResult(tiltfile, ['--local', '--state-dir', state]);
      expect(result, res.stderr).to.not.equal(undefined);
      const r = result!;
      expect(r.Error).to.equal(null);
      const m = (name: string) => r.Manifests.find((x) => x.Name === name);
      expect(r.Manifests.filter((x) => x.DeployTarget?.yaml !== undefined || (x.ImageTargets ?? []).length > 0).map((x) => x.Name), 'nothing for a cluster').to.deep.equal([]);
      const stack = m('stack')!;
      expect(stack.TriggerMode).to.equal(AUTO);
      expect(stack.DeployTarget!.ServeCmd!.Argv!.join(' ')).to.contain(` up --state-dir ${state} `);
      expect(stack.DeployTarget!.ReadinessProbe?.exec?.command, 'stack has no exec readiness probe').to.include(state);
      const fresh = m('freshness')!;
      expect(fresh.TriggerMode).to.equal(AUTO);
      expect(fresh.ResourceDependencies).to.deep.equal(['stack']);
      expect(fresh.DeployTarget!.UpdateCmdSpec!.args.join(' ')).to.contain('freshness --max-age 20');
      const auto = r.Manifests.filter((x) => x.TriggerMode === AUTO || x.TriggerMode === MANUAL_WITH_AUTO_INIT).map((x) => x.Name);
      expect(auto, 'what `tilt ci` starts by itself').to.deep.equal(['stack', 'freshness']);
      for (const s of SCENARIOS) expect(m(`fault-${s.name}`)?.TriggerMode, `fault-${s.name}`).to.equal(MANUAL);
      expect(m('faults-off')?.TriggerMode).to.equal(MANUAL);
      // Tilt's listdir lists files only: the buttons come from chaos/*/experiment.json.
      const experiments = readdirSync(join(REPO_ROOT, 'chaos')).filter((d) => existsSync(join(REPO_ROOT, 'chaos', d, 'experiment.json')));
      expect(experiments.length, 'no chaos experiment').to.be.above(0);
      expect(r.Manifests.filter((x) => x.Name.startsWith('chaos-')).map((x) => x.Name).sort()).to.deep.equal(experiments.map((e) => `chaos-${e}`).sort());
      for (const e of experiments) {
        expect(m(`chaos-${e}`)!.TriggerMode, `chaos-${e}`).to.equal(MANUAL);
        expect(m(`chaos-${e}`)!.DeployTarget!.UpdateCmdSpec!.args.join(' ')).to.contain(`chaos run ${e} --state-dir "${state}"`);
      }
    });

    describe('tilt ci -- --local', () => {
      let tiltPid: number | undefined;
      let tiltExited = true;

      after(async function () {
        this.timeout(120000);
        // Tilt first (its own process group): on SIGTERM it stops the stack as it does on success.
        if (tiltPid !== undefined && !tiltExited) {
          try {
            process.kill(-tiltPid, 'SIGTERM');
          } catch {
            // gone meanwhile
          }
          for (let i = 0; i < 400 && !tiltExited; i++) await sleep(100);
          if (!tiltExited) {
            try {
              process.kill(-tiltPid, 'SIGKILL');
            } catch {
              // gone meanwhile
            }
          }
        }
        // The stack runs in a session of its own (Tilt starts serve_cmd with setsid): give it the time it
        // takes to stop on Tilt's SIGTERM, then stop what is left of it.
        const left = await stopStack(state, 30000);
        expect(left, `processes of the stack in ${state} still running 30 s after Tilt exited (now stopped)`).to.deep.equal([]);
      });

      it('exits 0 once the stack is ready and all 100 flats are fresh, and the stack it started stops', async function () {
        const busy: number[] = [];
        for (const port of STACK_PORTS) if (!(await portFree(port))) busy.push(port);
        if (busy.length > 0) {
          throw new Error(`port(s) ${busy.join(', ')} in use (another flatline stack, or \`tilt up -- --local\`?): local mode runs the stack on the default ports; stop it and retry`);
        }
        const port = await freePort();
        const args = ['ci', '--file', tiltfile, '--port', String(port), '--web-mode=prod', '--timeout', '4m', '--', '--local', '--state-dir', state];
        const child = spawn(tilt, args, { cwd: REPO_ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
        tiltPid = child.pid;
        tiltExited = false;
        let log = '';
        const keep = (d: Buffer) => {
          log += d.toString();
          if (log.length > 4_000_000) log = log.slice(-2_000_000);
        };
        child.stdout!.on('data', keep);
        child.stderr!.on('data', keep);
        const started = Date.now();
        const code = await new Promise<number | string>((resolve) => {
          // Tilt's own --timeout ends it first; this only guards against a hung Tilt.
          const guard = setTimeout(() => {
            try {
              process.kill(-child.pid!, 'SIGTERM');
            } catch {
              // gone meanwhile
            }
          }, 300000);
          child.once('exit', (c, sig) => {
            clearTimeout(guard);
            tiltExited = true;
            resolve(c ?? sig ?? 'unknown');
          });
        });
        const tail = log.split('\n').slice(-80).join('\n');
        const logs = join(state, 'logs');
        const why = code === 0 ? '' : `\n${stackWarningLines(logs)}`;
        expect(code, `tilt ${args.join(' ')} failed after ${Math.round((Date.now() - started) / 1000)} s (the stack's logs: ${logs}, kept with FLATLINE_KEEP_TEST_STATE=1):\n${tail}${why}`).to.equal(0);
        expect(log).to.contain('SUCCESS. All workloads are healthy.');
        // The stack was whole when Tilt called it ready, and freshness covered every flat.
        expect(log).to.match(/stack\s+│ flatline is up: 100 flats polled every 5 s by 2 ingestion replica\(s\)/);
        expect(log).to.match(/freshness\s+│ 100 flats fetched, 0 never fetched/);
        expect(existsSync(join(state, 'stack.json')), 'the stack wrote no stack.json').to.equal(true);

        // Tilt exits without waiting for serve_cmd: the stack stops on the SIGTERM Tilt sent its process
        // group. Ports too: a node process whose main thread is gone (a zombie) may still hold its sockets.
        const taken = async () => (await Promise.all(STACK_PORTS.map(async (p) => ((await portFree(p)) ? [] : [p])))).flat();
        const end = Date.now() + 30000;
        while ((stackLeft(state).length > 0 || (await taken()).length > 0) && Date.now() < end) await sleep(200);
        expect(stackLeft(state).map(who), 'still running 30 s after tilt ci exited').to.deep.equal([]);
        expect(await taken(), 'ports still taken 30 s after tilt ci exited').to.deep.equal([]);
      });
    });
  });

  describe('cluster mode', () => {
    it(existsSync(join(REPO_ROOT, 'Dockerfile')) ? 'loads against the synth output: a resource per workload on the one image, query forwarded to 7102' : 'refuses to load without the Dockerfile', async () => {
      const { res, result } = await tiltfileResult(tiltfile);
      if (!existsSync(join(REPO_ROOT, 'Dockerfile'))) {
        expect(res.code).to.not.equal(0);
        expect(res.stderr).to.contain('Dockerfile, which is missing');
        return;
      }
      expect(result, res.stderr).to.not.equal(undefined);
      const r = result!;
      expect(r.Error).to.equal(null);
      const m = (name: string) => r.Manifests.find((x) => x.Name === name);
      const images = new Set(r.Manifests.flatMap((x) => (x.ImageTargets ?? []).map((i) => i.selector)));
      expect([...images], 'one image for every service').to.have.length(1);
      for (const name of ['storage', 'query', 'ingestion', 'devices']) {
        const w = m(name);
        expect(w, `no resource for ${name}`).to.not.equal(undefined);
        expect(w!.DeployTarget?.yaml, `${name} deploys no YAML`).to.match(/kind: (Deployment|StatefulSet)/);
        expect(w!.ImageTargets?.map((i) => i.selector), `${name} does not run the image`).to.deep.equal([...images]);
        expect(w!.ResourceDependencies).to.deep.equal(['cluster-config']);
        // No live update: the pods' root filesystem is read-only and not theirs, so synced files could not land.
        expect(w!.ImageTargets![0]!.LiveUpdateSpec?.syncs ?? []).to.deep.equal([]);
      }
      expect(m('cluster-config')?.DeployTarget?.yaml).to.contain('kind: Namespace');
      expect(m('query')!.DeployTarget!.portForwardTemplateSpec?.forwards.map((f) => f.localPort)).to.deep.equal([7102]);
      for (const s of SCENARIOS) {
        const b = m(`fault-${s.name}`);
        expect(b?.TriggerMode, `fault-${s.name}`).to.equal(MANUAL);
        expect(b!.DeployTarget!.UpdateCmdSpec!.args.join(' ')).to.contain(`fault on ${s.name} --kube`);
      }
      expect(r.Manifests.filter((x) => (x.DeployTarget?.UpdateCmdSpec ?? undefined) !== undefined && x.TriggerMode !== MANUAL).map((x) => x.Name), 'local commands that run by themselves').to.deep.equal([]);
      // Without Toxiproxy on the cluster, a TCP fault has nothing to act on: no button.
      for (const s of TCP_SCENARIOS) expect(m(`fault-${s.name}`), `fault-${s.name} without --toxiproxy`).to.equal(undefined);
      expect(m('toxiproxy'), 'no Toxiproxy without --toxiproxy').to.equal(undefined);
    });

    it('-- --toxiproxy: Toxiproxy deployed, its API forwarded to 8474, a button per TCP fault through it, and faults-off removing toxics too', async function () {
      if (!existsSync(join(REPO_ROOT, 'Dockerfile'))) this.skip();
      const { res, result } = await tiltfileResult(tiltfile, ['--toxiproxy']);
      expect(result, res.stderr).to.not.equal(undefined);
      const r = result!;
      expect(r.Error).to.equal(null);
      const m = (name: string) => r.Manifests.find((x) => x.Name === name);
      const toxiproxy = m('toxiproxy');
      expect(toxiproxy?.DeployTarget?.yaml, 'the toxiproxy workload').to.match(/kind: Deployment/);
      expect(toxiproxy!.DeployTarget!.portForwardTemplateSpec?.forwards.map((f) => [f.localPort, f.containerPort])).to.deep.equal([[8474, 8474]]);
      for (const s of TCP_SCENARIOS) {
        const b = m(`fault-${s.name}`);
        expect(b?.TriggerMode, `fault-${s.name}`).to.equal(MANUAL);
        expect(b!.DeployTarget!.UpdateCmdSpec!.args.join(' ')).to.contain(`fault on ${s.name} --kube --namespace flatline --toxiproxy-api http://127.0.0.1:8474`);
      }
      for (const s of SCENARIOS) expect(m(`fault-${s.name}`)!.DeployTarget!.UpdateCmdSpec!.args.join(' '), 'HTTP and gRPC faults need no Toxiproxy').to.not.contain('--toxiproxy-api');
      expect(m('faults-off')!.DeployTarget!.UpdateCmdSpec!.args.join(' ')).to.contain('fault off --all --kube --namespace flatline --toxiproxy-api http://127.0.0.1:8474');
    });
  });

  it("loads no extension (load('ext://…') would fetch from the internet, which this machine and CI cannot reach)", () => {
    const extLoad = /^\s*load\(\s*['"]ext:\/\//m;
    expect(extLoad.test("load('ext://restart_process', 'docker_build_with_restart')\n"), 'the check finds one').to.equal(true);
    expect(extLoad.test(readFileSync(tiltfile, 'utf8')), 'the Tiltfile loads an extension').to.equal(false);
  });

  describe('negative controls: Tilt refuses broken Tiltfiles', () => {
    const write = (name: string, text: string) => {
      const f = join(tmp, name);
      writeFileSync(f, text);
      return f;
    };

    it('a typo in a builtin of the real Tiltfile', async () => {
      const text = readFileSync(tiltfile, 'utf8');
      const broken = text.replace('local_resource(', 'local_resorce(');
      expect(broken).to.not.equal(text);
      const { res } = await tiltfileResult(write('typo.Tiltfile', broken), ['--local']);
      expect(res.code).to.not.equal(0);
      expect(res.stderr).to.contain('undefined: local_resorce');
    });

    it('an unknown flag after --', async () => {
      const { res } = await tiltfileResult(tiltfile, ['--lokal']);
      expect(res.code).to.not.equal(0);
      expect(res.stderr).to.contain('unknown flag: --lokal');
    });

    it('a misspelled keyword, and loads the same resource spelled right', async () => {
      const good = await tiltfileResult(write('good.Tiltfile', "local_resource('x', cmd = 'true', trigger_mode = TRIGGER_MODE_MANUAL, auto_init = False)\n"));
      expect(good.res.code, good.res.stderr).to.equal(0);
      expect(good.result!.Manifests.map((x) => [x.Name, x.TriggerMode])).to.deep.equal([['x', MANUAL]]);
      const { res } = await tiltfileResult(write('kwarg.Tiltfile', "local_resource('x', cmd = 'true', triger_mode = TRIGGER_MODE_MANUAL)\n"));
      expect(res.code).to.not.equal(0);
      expect(res.stderr).to.contain('unexpected keyword argument "triger_mode"');
    });

    it('k8s_resource for a workload that is not in the YAML', async () => {
      const yaml = write('d.yaml', 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: query}\nspec: {template: {spec: {containers: [{name: q, image: flatline}]}}}\n');
      const { res } = await tiltfileResult(write('workload.Tiltfile', `k8s_yaml('${yaml}')\nk8s_resource('qeury', port_forwards = 7102)\n`));
      expect(res.code).to.not.equal(0);
      expect(res.stderr).to.contain('unknown resource "qeury"');
    });
  });
});
