/**
 * `flatline fault on|off|status|touched <tcp scenario> --kube --toxiproxy-api <url>`
 * against a real toxiproxy-server (2.5.0, as the chart's image) holding the
 * proxies the chart declares (the link names of mesh/): what a user gets
 * through `kubectl port-forward deploy/toxiproxy 8474`, without a cluster.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DB_LINKS, DEVICE_LINK, tcpScenario, toxicName } from '@flatline/mesh';
import { freePort, REPO_ROOT, startToxiproxy, tempDir, type RunningToxiproxy } from '@flatline/stack';

const run = promisify(execFile);

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

describe('flatline fault <tcp scenario> --kube (a real Toxiproxy behind --toxiproxy-api)', function () {
  this.timeout(120000);
  const dir = tempDir('kube-tcp');
  const state = join(dir.path, 'state');
  let toxiproxy: RunningToxiproxy;
  let api: string;
  const flatline = (...args: string[]): Promise<Ran> =>
    run(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', 'fault', ...args], { cwd: REPO_ROOT }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
    );
  const toxicsOn = async (): Promise<Record<string, string[]>> =>
    Object.fromEntries(Object.values(await toxiproxy.client.listProxies()).map((p) => [p.name, p.toxics.map((t) => t.name)]));

  before(async () => {
    toxiproxy = await startToxiproxy({ logFile: join(dir.path, 'toxiproxy.log') });
    api = `http://${toxiproxy.address}`;
    // The cluster's proxies (cdk8s/src/toxiproxy.ts): every link but ingestion-storage; upstreams need not answer here.
    const upstream = `127.0.0.1:${await freePort('127.0.0.1')}`;
    await toxiproxy.client.populate([...DB_LINKS, DEVICE_LINK].map((name) => ({ name, upstream })));
  });

  after(async () => {
    await toxiproxy?.process.stop();
    dir.cleanup();
  });

  it('on db-reset adds a reset_peer toxic to each database link\'s proxy, status and touched read them back, off removes them', async () => {
    const on = await flatline('on', 'db-reset', '--percent', '50', '--kube', '--toxiproxy-api', api, '--state-dir', state);
    expect(on.code, on.stderr).to.equal(0);
    const faults = tcpScenario('db-reset')!.build({ percent: 50 });
    for (const link of DB_LINKS) {
      const fault = faults.find((f) => f.link === link)!;
      const toxics = await toxiproxy.client.listToxics(link);
      expect(toxics, link).to.deep.equal([{ name: toxicName(fault, fault.toxics[0]!), type: 'reset_peer', stream: 'downstream', toxicity: 0.5, attributes: { timeout: 0 } }]);
      expect(on.stdout).to.contain(`db-reset-${link} on (link ${link})`);
    }
    expect((await toxicsOn())[DEVICE_LINK], 'the device link is not a database link').to.deep.equal([]);

    // status --kube lists the VirtualServices too: a stand-in kubectl with an empty cluster.
    const kubectl = join(REPO_ROOT, 'test', 'support', 'fake-kubectl.mjs');
    const status = await run(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', 'fault', 'status', '--json', '--kube', '--kubectl', kubectl, '--toxiproxy-api', api], {
      cwd: REPO_ROOT,
      env: { ...process.env, FAKE_KUBE_STATE: join(dir.path, 'cluster.json') },
    });
    const rows = JSON.parse(status.stdout) as Array<{ name: string; link?: string }>;
    expect(rows.map((r) => r.link).sort()).to.deep.equal([...DB_LINKS].sort());

    // touched: the toxics are on, but nothing went through the links yet (no service here): exit 1, each link named.
    const touched = await flatline('touched', 'db-reset', '--kube', '--toxiproxy-api', api, '--state-dir', state);
    expect(touched.code, touched.stderr).to.equal(1);
    for (const link of DB_LINKS) expect(touched.stdout).to.match(new RegExp(`db-reset ${link}: db-reset-${link}-reset_peer-downstream; 0 bytes received`));
    expect(existsSync(join(state, 'tcp-faults-kube.json')), 'the cluster\'s baseline is kept apart from the local stack\'s').to.equal(true);

    const off = await flatline('off', 'db-reset', '--kube', '--toxiproxy-api', api, '--state-dir', state);
    expect(off.code, off.stderr).to.equal(0);
    expect(off.stdout).to.contain('db-reset off (3 toxic(s) removed)');
    expect(Object.values(await toxicsOn()).flat()).to.deep.equal([]);
    const events = readFileSync(join(state, 'events.jsonl'), 'utf8');
    expect(events).to.contain('"action":"inject","target":"db-reset"');
    expect(events).to.contain('"action":"remove","target":"db-reset","detail":"cluster"');
  });

  it('off --all --kube with --toxiproxy-api resets every toxic (and restores the baseline routes)', async () => {
    expect((await flatline('on', 'db-slow', '--kube', '--toxiproxy-api', api, '--state-dir', state)).code).to.equal(0);
    expect((await flatline('on', 'devices-tcp-slow', '--delay', '5s', '--kube', '--toxiproxy-api', api, '--state-dir', state)).code).to.equal(0);
    expect(Object.values(await toxicsOn()).flat()).to.have.length(4);
    const kubectl = join(REPO_ROOT, 'test', 'support', 'fake-kubectl.mjs');
    const off = await run(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', 'fault', 'off', '--all', '--kube', '--kubectl', kubectl, '--toxiproxy-api', api, '--state-dir', state], {
      cwd: REPO_ROOT,
      env: { ...process.env, FAKE_KUBE_STATE: join(dir.path, 'cluster.json') },
    });
    expect(off.stdout).to.contain('every TCP fault off');
    expect(Object.values(await toxicsOn()).flat()).to.deep.equal([]);
  });

  it('refuses per-flat toxics on a cluster, naming the options, before anything is added', async () => {
    for (const args of [['--flats', '7'], ['--per-flat', '7=30s'], ['--share', '10']]) {
      const res = await flatline('on', 'devices-tcp-slow', ...args, '--kube', '--toxiproxy-api', api, '--state-dir', state);
      expect(res.code, args.join(' ')).to.equal(2);
      expect(res.stderr, args.join(' ')).to.match(args[0] === '--share' ? /--share gives each flat a proxy of its own, which only the local stack has/ : /with --flats, --share or --per-flat gives each flat a proxy of its own.*device-links\.json/);
    }
    expect(Object.values(await toxicsOn()).flat()).to.deep.equal([]);
  });

  it('refuses a scenario whose link has no proxy on the cluster (ingestion-storage), naming it', async () => {
    const res = await flatline('on', 'storage-link-reset', '--kube', '--toxiproxy-api', api, '--state-dir', state);
    expect(res.code).to.equal(2);
    expect(res.stderr).to.contain(`the cluster's Toxiproxy (${api}) has no proxy ingestion-storage for storage-link-reset`);
    expect(Object.values(await toxicsOn()).flat()).to.deep.equal([]);
  });

  it('fails loudly when the API does not answer (the URL and the port-forward named), and when --toxiproxy-api is missing', async () => {
    const nobody = `http://127.0.0.1:${await freePort('127.0.0.1')}`;
    for (const verb of ['on', 'off', 'touched']) {
      const res = await flatline(verb, 'db-reset', '--kube', '--toxiproxy-api', nobody, '--state-dir', state);
      expect(res.code, verb).to.equal(2);
      expect(res.stderr, verb).to.contain(`the cluster's Toxiproxy API does not answer at ${nobody}`);
      expect(res.stderr, verb).to.contain('kubectl -n flatline port-forward deploy/toxiproxy 8474');
    }
    const missing = await flatline('on', 'db-reset', '--kube', '--state-dir', state);
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.contain('db-reset is a TCP fault: on a cluster give --toxiproxy-api <url>');
    const help = await flatline('on', '--help');
    expect(help.stdout.replace(/\s+/g, ' ')).to.contain('port-forward deploy/toxiproxy 8474');
  });
});
