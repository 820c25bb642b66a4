/**
 * `npm run synth -- --toxiproxy`: Toxiproxy in front of MongoDB and the
 * device simulator on a cluster, for mesh/'s TCP faults. Off (the default)
 * nothing changes; on, the Deployment, Service and ConfigMap of proxies
 * exist, every link of mesh's LINKS is proxied or says why not, the
 * services' addresses lead through the proxies, real toxiproxy-server takes
 * the ConfigMap as its -config, and the output passes the same validators
 * as the rest (kubeconform -strict, istioctl validate and analyze).
 */
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LINKS } from '@flatline/mesh';
import { loadConfig as ingestionConfig } from '@flatline/ingestion';
import { loadConfig as queryConfig } from '@flatline/query';
import { freePort, ToxiproxyClient } from '@flatline/stack';
import { loadConfig as storageConfig } from '@flatline/storage';
import { buildApp } from '../src/app.ts';
import { loadSynthOptions } from '../src/config.ts';
import { DEV_SETTINGS, meshOf, PORTS, serviceHost, withSettings } from '../src/settings.ts';
import { CLUSTER_LINKS, DB_CLUSTER_LINKS, TOXIPROXY, UNPROXIED_LINKS } from '../src/toxiproxy.ts';
import { devicePathProblems, secretLeakProblems, servicePortProblems, toxiproxyWiringProblems, workloadProblems, type K8sObject } from './manifest-checks.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TOOLS = join(ROOT, '.tools', 'bin');
const run = promisify(execFile);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

const clone = <T>(x: T): T => structuredClone(x);

async function objectsOf(toxiproxy: boolean): Promise<K8sObject[]> {
  const app = await buildApp(withSettings({ toxiproxy }));
  return app.charts.flatMap((c) => c.toJson() as K8sObject[]);
}

function find(objects: readonly K8sObject[], kind: string, name: string): Any {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (o === undefined) throw new Error(`no ${kind}/${name}`);
  return o;
}

const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;

const WIRING = {
  host: serviceHost(TOXIPROXY.name, DEV_SETTINGS),
  links: CLUSTER_LINKS.map((l) => ({ link: l.link, port: l.port, client: l.client, database: DB_CLUSTER_LINKS.includes(l) })),
  devicesHost: meshOf(DEV_SETTINGS).devicesHost,
  devicesPort: meshOf(DEV_SETTINGS).devicesPort,
};

/** The environment a container sees, Secret keys resolved. */
function envOf(objects: readonly K8sObject[], kind: string, name: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of find(objects, kind, name).spec.template.spec.containers[0].env) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.secretKeyRef) env[e.name] = Buffer.from(find(objects, 'Secret', e.valueFrom.secretKeyRef.name).data[e.valueFrom.secretKeyRef.key], 'base64').toString('utf8');
    else if (e.valueFrom?.fieldRef) env[e.name] = `${name}-0`;
  }
  return env;
}

describe('cdk8s: the Toxiproxy option (synth --toxiproxy)', function () {
  this.timeout(180_000);
  let off: K8sObject[];
  let on: K8sObject[];

  before(async () => {
    [off, on] = await Promise.all([objectsOf(false), objectsOf(true)]);
  });

  it('is off by default, and --toxiproxy turns it on', () => {
    expect(DEV_SETTINGS.toxiproxy).to.equal(false);
    expect(loadSynthOptions(['--profile', 'dev']).settings?.toxiproxy).to.equal(false);
    expect(loadSynthOptions(['--profile', 'dev', '--toxiproxy']).settings?.toxiproxy).to.equal(true);
  });

  it('off: no Toxiproxy object and no address through it; the default synth is exactly the toxiproxy: false one', async () => {
    expect(JSON.stringify(off)).to.not.contain('toxiproxy');
    expect(off.map(key)).to.not.include('Service/devices-direct');
    const app = await buildApp(DEV_SETTINGS);
    expect(JSON.stringify(app.charts.flatMap((c) => c.toJson()))).to.equal(JSON.stringify(off));
  });

  it('on: adds the Toxiproxy objects and devices-direct, and changes only the objects it rewires', () => {
    // The mesh charts hold VirtualServices of the same names: compare system objects, then the rest whole.
    const system = (objects: K8sObject[]) => objects.filter((o) => o.kind !== 'VirtualService' || o.metadata.labels?.['flatline.dev/route'] === 'gateway');
    expect(JSON.stringify(on.filter((o) => !system(on).includes(o)))).to.equal(JSON.stringify(off.filter((o) => !system(off).includes(o))));
    const before = new Map(system(off).map((o) => [key(o), JSON.stringify(o)]));
    const added = system(on).filter((o) => !before.has(key(o))).map(key);
    const changed = system(on).filter((o) => before.has(key(o)) && before.get(key(o)) !== JSON.stringify(o)).map(key);
    expect(added).to.have.members([
      'ServiceAccount/toxiproxy',
      'ConfigMap/toxiproxy',
      'Service/toxiproxy',
      'Deployment/toxiproxy',
      'PodDisruptionBudget/toxiproxy',
      'NetworkPolicy/toxiproxy',
      'AuthorizationPolicy/toxiproxy',
      'Service/devices-direct',
    ]);
    expect(changed).to.have.members([
      'Secret/mongo-app', // a URI per database link
      'Job/mongo-init', // the first member becomes the preferred primary
      'Deployment/storage',
      'Deployment/query',
      'StatefulSet/ingestion', // their URIs
      'Service/devices', // now the device link's proxy
      'NetworkPolicy/devices', // the simulator's API admits Toxiproxy, not ingestion
    ]);
    expect(off.map(key).filter((k) => !on.some((o) => key(o) === k))).to.deep.equal([]);
  });

  it('every link of mesh\'s LINKS has a proxy on a cluster, or a reason why not', () => {
    expect([...CLUSTER_LINKS.map((l) => l.link), ...UNPROXIED_LINKS.map((l) => l.link)].sort()).to.deep.equal([...LINKS].sort());
    expect(UNPROXIED_LINKS.map((l) => l.link)).to.deep.equal(['ingestion-storage']);
    for (const l of UNPROXIED_LINKS) expect(l.notOnACluster).to.match(/mutual TLS/);
    const proxies = JSON.parse(find(on, 'ConfigMap', 'toxiproxy').data[TOXIPROXY.configFile]) as Array<{ name: string; listen: string; upstream: string; enabled: boolean }>;
    expect(proxies.map((p) => p.name)).to.deep.equal(CLUSTER_LINKS.map((l) => l.link));
    expect(new Set(CLUSTER_LINKS.map((l) => l.port)).size, 'one port per link').to.equal(CLUSTER_LINKS.length);
    for (const p of proxies.filter((x) => x.name.endsWith('-db'))) expect(p.upstream, p.name).to.equal(`mongo-0.mongo.flatline.svc.cluster.local:${PORTS.mongo}`);
    expect(proxies.find((p) => p.name === 'ingestion-devices')?.upstream).to.equal(`devices-direct.flatline.svc.cluster.local:${PORTS.devices.https}`);
  });

  it('the Deployment runs the pinned image with -config from the ConfigMap, one replica, its API in no Service', () => {
    const d = find(on, 'Deployment', 'toxiproxy');
    const c = d.spec.template.spec.containers[0];
    expect(c.image).to.equal('ghcr.io/shopify/toxiproxy:2.5.0');
    expect(c.args).to.include(`-config=${TOXIPROXY.configDir}/${TOXIPROXY.configFile}`);
    expect(c.args).to.include('-proxy-metrics');
    expect(d.spec.replicas).to.equal(1);
    expect(d.spec.template.spec.volumes).to.deep.equal([{ name: 'config', configMap: { name: 'toxiproxy', defaultMode: 0o444 } }]);
    const servicePorts = on.filter((o) => o.kind === 'Service').flatMap((s: Any) => s.spec.ports.map((p: Any) => p.targetPort ?? p.port));
    expect(servicePorts).to.not.include(TOXIPROXY.apiPort);
    expect(find(on, 'Service', 'toxiproxy').spec.type).to.equal(undefined);
  });

  it('the wiring: each database client\'s URI names its own proxy (directConnection), devices leads to the device proxy, each port admits its client only', () => {
    expect(toxiproxyWiringProblems(on, WIRING)).to.deep.equal([]);
    // Off, the same check finds no Toxiproxy at all.
    expect(toxiproxyWiringProblems(off, WIRING)).to.deep.equal(['no Deployment, Service and ConfigMap toxiproxy in flatline']);
  });

  it('the wiring check catches a URI left on the replica set, a proxy missing, devices bypassing it, an open device port and an admitted API', () => {
    const direct = clone(on) as Any[];
    find(direct, 'Deployment', 'storage').spec.template.spec.containers[0].env.find((e: Any) => e.name === 'FLATLINE_MONGODB_URI').valueFrom.secretKeyRef.key = 'uri';
    expect(toxiproxyWiringProblems(direct, WIRING)).to.deep.equal([
      'storage: its MongoDB URI goes to mongo-0.mongo.flatline.svc.cluster.local:27017,mongo-1.mongo.flatline.svc.cluster.local:27017,mongo-2.mongo.flatline.svc.cluster.local:27017, not its proxy toxiproxy.flatline.svc.cluster.local:27101 (storage-db)',
    ]);
    const noProxy = clone(on) as Any[];
    const cm = find(noProxy, 'ConfigMap', 'toxiproxy');
    cm.data[TOXIPROXY.configFile] = JSON.stringify(JSON.parse(cm.data[TOXIPROXY.configFile]).filter((p: Any) => p.name !== 'query-db'));
    expect(toxiproxyWiringProblems(noProxy, WIRING)).to.deep.equal(['ConfigMap/toxiproxy: no proxy query-db']);
    const bypass = clone(on) as Any[];
    find(bypass, 'Service', 'devices').spec.selector = { 'app.kubernetes.io/name': 'devices' };
    expect(toxiproxyWiringProblems(bypass, WIRING)).to.deep.equal(['devices.flatline.svc.cluster.local:8443 does not lead to the ingestion-devices proxy (toxiproxy port 18443)']);
    const open = clone(on) as Any[];
    find(open, 'NetworkPolicy', 'toxiproxy').spec.ingress[0].from = [];
    find(open, 'AuthorizationPolicy', 'toxiproxy').spec.rules.push({ from: [{ source: { principals: ['cluster.local/ns/flatline/sa/operators'] } }], to: [{ operation: { ports: ['8474'] } }] });
    expect(toxiproxyWiringProblems(open, WIRING)).to.have.members(['port 18443 (ingestion-devices) is open to others than ingestion', 'AuthorizationPolicy/toxiproxy admits a port that is no link\'s (the API?)']);
  });

  it('each service accepts its rewired environment (its own config.ts), and ingestion still polls the in-mesh device host', () => {
    for (const [kind, name, load] of [
      ['Deployment', 'storage', storageConfig],
      ['Deployment', 'query', queryConfig],
      ['StatefulSet', 'ingestion', ingestionConfig],
    ] as const) {
      const config = load(envOf(on, kind, name)) as { mongoUri: string };
      expect(config.mongoUri, name).to.contain(`@toxiproxy.flatline.svc.cluster.local:${DB_CLUSTER_LINKS.find((l) => l.client === name)!.port}/flatline?directConnection=true&`);
    }
    expect(ingestionConfig(envOf(on, 'StatefulSet', 'ingestion')).devicesUrl).to.equal('http://devices.flatline.svc.cluster.local:8443');
  });

  it('the device path stays faultable through the proxy; the simulator admits Toxiproxy alone; the workload, port and leak checks pass', () => {
    expect(devicePathProblems(on)).to.deep.equal([]);
    const np = find(on, 'NetworkPolicy', 'devices');
    expect(np.spec.ingress[0]).to.deep.equal({ from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'toxiproxy' } } }], ports: [{ protocol: 'TCP', port: PORTS.devices.https }] });
    // One replica on purpose (toxics live in the one process the API serves): the only exception.
    expect(workloadProblems(on)).to.deep.equal(['Deployment/toxiproxy: replicas 1, want at least 2']);
    expect(servicePortProblems(on, new Set([PORTS.storage.grpc, PORTS.query.grpc, PORTS.ingestion.grpc]))).to.deep.equal([]);
    expect(secretLeakProblems(on)).to.deep.equal([]);
    expect(find(on, 'Job', 'mongo-init').spec.template.spec.containers[0].command.at(-1)).to.contain('replSetReconfig');
    expect(find(off, 'Job', 'mongo-init').spec.template.spec.containers[0].command.at(-1)).to.not.contain('replSetReconfig');
  });

  it('real toxiproxy-server 2.5.0 takes the ConfigMap as its -config and creates every proxy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flatline-toxiproxy-config-'));
    const proxies = JSON.parse(find(on, 'ConfigMap', 'toxiproxy').data[TOXIPROXY.configFile]) as Array<{ name: string; listen: string; upstream: string }>;
    // The pod's ports may be taken on this machine: the same file, each proxy on a free loopback port.
    writeFileSync(join(dir, 'proxies.json'), JSON.stringify(proxies.map((p) => ({ ...p, listen: '127.0.0.1:0' }))));
    const port = await freePort('127.0.0.1');
    const server = spawn(join(TOOLS, 'toxiproxy-server'), ['-host=127.0.0.1', `-port=${port}`, `-config=${join(dir, 'proxies.json')}`, '-proxy-metrics'], { stdio: 'ignore' });
    try {
      const client = new ToxiproxyClient(`http://127.0.0.1:${port}`, 1000);
      let made: Awaited<ReturnType<ToxiproxyClient['listProxies']>> | undefined;
      for (let i = 0; i < 100 && made === undefined; i++) {
        made = await client.listProxies().catch(() => undefined);
        if (made === undefined) await new Promise((r) => setTimeout(r, 100));
      }
      expect(await client.version()).to.equal('2.5.0');
      expect(Object.keys(made ?? {}).sort()).to.deep.equal(proxies.map((p) => p.name).sort());
      for (const p of proxies) expect(made![p.name], p.name).to.include({ upstream: p.upstream, enabled: true });
    } finally {
      server.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the synthesized files pass kubeconform -strict, istioctl validate and istioctl analyze (with each fault applied)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flatline-synth-toxiproxy-'));
    try {
      await run(process.execPath, ['--import', 'tsx', join(ROOT, 'cdk8s', 'src', 'main.ts'), '--profile', 'dev', '--toxiproxy', '--outdir', dir], { cwd: ROOT });
      const files = readdirSync(dir).sort().map((f) => join(dir, f));
      const schemas = join(ROOT, '.tools', 'kubeconform-schemas');
      const locations = [`${schemas}/{{.ResourceKind}}{{.KindSuffix}}.json`, `${schemas}/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json`].flatMap((l) => ['-schema-location', l]);
      const k = await run(join(TOOLS, 'kubeconform'), ['-strict', '-summary', '-output', 'json', ...locations, ...files]).catch((e: { stdout: string }) => e);
      const summary = JSON.parse(k.stdout).summary as { valid: number; invalid: number; errors: number; skipped: number };
      expect(summary.invalid + summary.errors + summary.skipped, k.stdout).to.equal(0);
      for (const f of files) {
        const v = await run(join(TOOLS, 'istioctl'), ['validate', '-f', f]);
        expect(`${v.stdout}${v.stderr}`, f).to.not.match(/has warnings/);
      }
      const base = files.filter((f) => !/\/fault-/.test(f));
      for (const set of [base, ...files.filter((f) => /\/fault-/.test(f)).map((f) => [...base, f])]) {
        const a = await run(join(TOOLS, 'istioctl'), ['analyze', '--use-kube=false', '-A', '-o', 'json', ...set]).catch((e: { stdout: string; stderr: string }) => e);
        const messages = JSON.parse(a.stdout.slice(a.stdout.indexOf('['), a.stdout.lastIndexOf(']') + 1)) as Array<{ level: string; code: string; message: string }>;
        expect(messages.filter((m) => m.level !== 'Info'), `${set.at(-1)}\n${a.stderr}`).to.deep.equal([]);
        expect(a.stderr).to.not.match(/could not be parsed|error processing/i);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
