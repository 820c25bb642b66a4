import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { createPublicKey, verify, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DestinationRule } from '@kubernetes-models/istio/networking.istio.io/v1beta1/DestinationRule';
import { Gateway } from '@kubernetes-models/istio/networking.istio.io/v1beta1/Gateway';
import { VirtualService } from '@kubernetes-models/istio/networking.istio.io/v1beta1/VirtualService';
import { AuthorizationPolicy } from '@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy';
import { RequestAuthentication } from '@kubernetes-models/istio/security.istio.io/v1/RequestAuthentication';
import { PeerAuthentication } from '@kubernetes-models/istio/security.istio.io/v1beta1/PeerAuthentication';
import { loadConfig as devicesConfig, ensureTlsMaterial } from '@flatline/devices';
import { loadConfig as ingestionConfig } from '@flatline/ingestion';
import { loadCredentials, createMongoClient } from '@flatline/platform';
import { loadConfig as queryConfig } from '@flatline/query';
import { loadConfig as storageConfig } from '@flatline/storage';
import { buildApp, SYSTEM_CHARTS } from '../src/app.ts';
import { devJwtIssuer, devToken, DEV_JWT_ISSUER } from '../src/secrets.ts';
import { DEV_SETTINGS, PORTS, principalOf, withSettings } from '../src/settings.ts';
import { devicePathProblems, faultRouteProblems, gatewayAuthProblems, secretLeakProblems, secretValues, servicePortProblems, workloadProblems, type K8sObject } from './manifest-checks.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const GRPC_PORTS = new Set<number>([PORTS.storage.grpc, PORTS.query.grpc, PORTS.ingestion.grpc]);

/** Every object of every chart, in-process. */
async function synthObjects(): Promise<{ byChart: Map<string, K8sObject[]>; all: K8sObject[] }> {
  const app = await buildApp(DEV_SETTINGS);
  const byChart = new Map(app.charts.map((c) => [c.node.id, c.toJson() as K8sObject[]]));
  return { byChart, all: [...byChart.values()].flat() };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function find(objects: readonly K8sObject[], kind: string, name: string): any {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (o === undefined) throw new Error(`no ${kind}/${name}`);
  return o;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

const clone = <T>(x: T): T => structuredClone(x);

/** The environment a container would see: literals, Secret keys resolved, the pod name for fieldRefs. */
function envOf(container: Any, objects: readonly K8sObject[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.secretKeyRef) {
      const secret = find(objects, 'Secret', e.valueFrom.secretKeyRef.name) as Any;
      env[e.name] = Buffer.from(secret.data[e.valueFrom.secretKeyRef.key], 'base64').toString('utf8');
    } else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = `${container.name}-0`;
  }
  return env;
}

function containerOf(objects: readonly K8sObject[], kind: string, name: string): Any {
  return (find(objects, kind, name) as Any).spec.template.spec.containers[0];
}

describe('cdk8s: the whole system', function () {
  this.timeout(120_000);
  let all: K8sObject[];
  let byChart: Map<string, K8sObject[]>;

  before(async () => {
    ({ all, byChart } = await synthObjects());
  });

  it('has one chart per system part, the mesh baseline and a chart per fault scenario', () => {
    expect([...byChart.keys()].filter((id) => id.startsWith('flatline-'))).to.deep.equal([...SYSTEM_CHARTS]);
    expect(byChart.has('mesh-baseline')).to.equal(true);
    expect([...byChart.keys()].filter((id) => id.startsWith('fault-')).length).to.be.greaterThan(0);
    const ns = find(all, 'Namespace', DEV_SETTINGS.namespace);
    expect(ns.metadata.labels?.['istio-injection']).to.equal('enabled');
  });

  it('runs storage, query and the simulator as Deployments, ingestion and MongoDB as StatefulSets', () => {
    expect(all.filter((o) => o.kind === 'Deployment').map((o) => o.metadata.name)).to.deep.equal(['storage', 'query', 'devices']);
    expect(all.filter((o) => o.kind === 'StatefulSet').map((o) => o.metadata.name)).to.deep.equal(['mongo', 'ingestion']);
    expect((find(all, 'StatefulSet', 'mongo') as Any).spec.replicas).to.equal(3);
    const claims = (find(all, 'StatefulSet', 'ingestion') as Any).spec.volumeClaimTemplates;
    expect(claims.map((c: Any) => c.metadata.name)).to.deep.equal(['outbox']);
    expect(containerOf(all, 'StatefulSet', 'ingestion').volumeMounts.find((m: Any) => m.name === 'outbox').mountPath).to.equal(envOf(containerOf(all, 'StatefulSet', 'ingestion'), all)['FLATLINE_INGESTION_STATE_DIR']);
  });

  it('every Deployment and StatefulSet: ≥2 replicas, a budget, spread over nodes, probes, resources, hardened security context', () => {
    expect(workloadProblems(all)).to.deep.equal([]);
  });

  it('the workload check catches a single replica, a missing budget, a missing probe and a writable root', () => {
    const broken = clone(all) as Any[];
    find(broken, 'Deployment', 'storage').spec.replicas = 1;
    broken.splice(broken.indexOf(find(broken, 'PodDisruptionBudget', 'query')), 1);
    delete containerOf(broken, 'StatefulSet', 'ingestion').livenessProbe;
    containerOf(broken, 'Deployment', 'devices').securityContext.readOnlyRootFilesystem = false;
    expect(workloadProblems(broken)).to.have.members([
      'Deployment/storage: replicas 1, want at least 2',
      'Deployment/query: no PodDisruptionBudget selects its pods',
      'Deployment/devices container devices: readOnlyRootFilesystem is not true',
      'StatefulSet/ingestion container ingestion: no livenessProbe',
    ]);
  });

  it('the gRPC services are probed with native gRPC readiness on their gRPC port', () => {
    for (const [kind, name] of [['Deployment', 'storage'], ['Deployment', 'query'], ['StatefulSet', 'ingestion']] as const) {
      const c = containerOf(all, kind, name);
      expect(c.readinessProbe.grpc.port, name).to.equal(PORTS[name].grpc);
    }
  });

  it('every gRPC Service port is named grpc-… with appProtocol grpc', () => {
    expect(servicePortProblems(all, GRPC_PORTS)).to.deep.equal([]);
    const broken = clone(all) as Any[];
    find(broken, 'Service', 'storage').spec.ports[0].name = 'storage';
    delete find(broken, 'Service', 'query').spec.ports[0].appProtocol;
    expect(servicePortProblems(broken, GRPC_PORTS)).to.deep.equal([
      'Service/storage port 7101: gRPC port named "storage", not grpc-…',
      'Service/query port 7102: gRPC port without appProtocol grpc',
    ]);
  });

  it('every fault route has an explicit percentage and no timeout or retries', () => {
    const faults = [...byChart].filter(([id]) => id.startsWith('fault-')).flatMap(([, objects]) => objects);
    expect(faults.length).to.be.greaterThan(0);
    expect(faultRouteProblems(all)).to.deep.equal([]);
    const broken = clone(faults) as Any[];
    delete broken[0].spec.http[0].fault[Object.keys(broken[0].spec.http[0].fault)[0]!].percentage;
    broken[1].spec.http[0].timeout = '3s';
    expect(faultRouteProblems(broken)).to.have.length(2);
  });

  it('the device path can be faulted: http:// to the sidecar, an http-… Service port, TLS originated by one DestinationRule, faults on the same host and port', () => {
    expect(devicePathProblems(all)).to.deep.equal([]);
    // What the fault VirtualServices target is what ingestion calls.
    const url = new URL(envOf(containerOf(all, 'StatefulSet', 'ingestion'), all)['FLATLINE_DEVICES_URL']!);
    const faulted = all.filter((o) => o.kind === 'VirtualService' && (o as Any).metadata.labels?.['flatline.dev/route'] === 'fault' && o.metadata.name === 'devices') as Any[];
    expect(faulted.length).to.be.greaterThan(0);
    for (const vs of faulted) expect(vs.spec.http[0].route[0].destination).to.deep.equal({ host: url.hostname, port: { number: Number(url.port) } });
  });

  it('the device path check catches an https:// URL, an https Service port, a missing or second DestinationRule, a faulted route elsewhere', () => {
    const https = clone(all) as Any[];
    containerOf(https, 'StatefulSet', 'ingestion').env.find((e: Any) => e.name === 'FLATLINE_DEVICES_URL').value = 'https://devices.flatline.svc.cluster.local:8443';
    expect(devicePathProblems(https)).to.deep.equal([
      'ingestion: FLATLINE_DEVICES_URL is https://devices.flatline.svc.cluster.local:8443: its sidecar sees opaque TLS and cannot fault it (want http://, TLS originated by a DestinationRule)',
    ]);
    const port = clone(all) as Any[];
    Object.assign(find(port, 'Service', 'devices').spec.ports[0], { name: 'https-devices', appProtocol: 'https' });
    expect(devicePathProblems(port)).to.have.members([
      'Service/devices port 8443: named "https-devices", want http-… (Istio must see HTTP to fault it)',
      'Service/devices port 8443: appProtocol https, want http',
    ]);
    const noRule = (clone(all) as Any[]).filter((o) => !(o.kind === 'DestinationRule' && o.metadata.name === 'devices'));
    expect(devicePathProblems(noRule)).to.deep.equal(['0 DestinationRules for devices.flatline.svc.cluster.local, want exactly one']);
    const clash = clone(all) as Any[];
    clash.push({ ...clone(find(clash, 'DestinationRule', 'devices')), metadata: { name: 'devices-egress', namespace: 'flatline' } });
    clash.push({ apiVersion: 'networking.istio.io/v1beta1', kind: 'ServiceEntry', metadata: { name: 'devices', namespace: 'flatline' }, spec: { hosts: ['devices.flatline.svc.cluster.local'] } });
    expect(devicePathProblems(clash)).to.have.members(['2 DestinationRules for devices.flatline.svc.cluster.local, want exactly one', 'ServiceEntry/devices also claims devices.flatline.svc.cluster.local']);
    const open = clone(all) as Any[];
    delete find(open, 'Deployment', 'devices').spec.template.metadata.annotations['traffic.sidecar.istio.io/excludeInboundPorts'];
    find(open, 'NetworkPolicy', 'devices').spec.ingress[0].from = [];
    expect(devicePathProblems(open)).to.have.members([
      'devices: its sidecar intercepts port 8443 and would expect mTLS (want traffic.sidecar.istio.io/excludeInboundPorts)',
      'devices: a NetworkPolicy rule admits others than ingestion to port 8443',
    ]);
    const elsewhere = clone(all) as Any[];
    const vs = elsewhere.find((o) => o.kind === 'VirtualService' && o.metadata.name === 'devices' && o.metadata.labels['flatline.dev/route'] === 'fault');
    vs.spec.http[0].route[0].destination.port.number = 9104;
    expect(devicePathProblems(elsewhere)).to.deep.equal([`VirtualService/devices route ${vs.spec.http[0].name}: goes to devices.flatline.svc.cluster.local:9104, not devices.flatline.svc.cluster.local:8443`]);
  });

  it('no Secret value appears in any other object', () => {
    const values = secretValues(all);
    // The credentials of every flat, the CA key, the MongoDB passwords, URI and key file.
    expect(values.size).to.be.greaterThan(DEV_SETTINGS.flats);
    expect(secretLeakProblems(all)).to.deep.equal([]);
  });

  it('the leak check catches a password copied into an env var and a base64 value in a ConfigMap', () => {
    const broken = clone(all) as Any[];
    const app = find(broken, 'Secret', 'mongo-app') as Any;
    containerOf(broken, 'Deployment', 'query').env.push({ name: 'LEAK', value: Buffer.from(app.data.password, 'base64').toString('utf8') });
    find(broken, 'ConfigMap', 'devices-epoch').data.extra = app.data.uri;
    expect(secretLeakProblems(broken)).to.have.members(['Deployment/query holds the value of Secret/mongo-app password', 'ConfigMap/devices-epoch holds the value of Secret/mongo-app uri']);
  });

  it('each service accepts the environment the manifests give it (its own config.ts)', () => {
    const storage = storageConfig(envOf(containerOf(all, 'Deployment', 'storage'), all));
    expect(storage.listen).to.equal(`0.0.0.0:${PORTS.storage.grpc}`);
    expect(storage.mongoUri).to.match(/replicaSet=rs0/);
    expect(queryConfig(envOf(containerOf(all, 'Deployment', 'query'), all)).listen).to.equal(`0.0.0.0:${PORTS.query.grpc}`);
    const ingestion = ingestionConfig(envOf(containerOf(all, 'StatefulSet', 'ingestion'), all));
    expect(ingestion.storageAddr).to.equal(`storage.flatline.svc.cluster.local:${PORTS.storage.grpc}`);
    expect(ingestion.devicesUrl).to.equal('http://devices.flatline.svc.cluster.local:8443');
    expect(ingestion.devicesCa, 'plain HTTP to the sidecar: no CA file for the app').to.equal(undefined);
    expect(ingestion.poll.intervalMs).to.equal(DEV_SETTINGS.pollIntervalMs);
    const devices = devicesConfig(envOf(containerOf(all, 'Deployment', 'devices'), all));
    expect(devices.tlsNames).to.include('devices.flatline.svc.cluster.local');
    expect(devices.controlListen.startsWith('127.0.0.1:')).to.equal(true);
  });

  it('the charts give the services what a cluster needs: a page-token key from a Secret, the ingestion replica count, an outbox bound below its volume', () => {
    const query = containerOf(all, 'Deployment', 'query');
    expect(query.env.find((e: Any) => e.name === 'FLATLINE_QUERY_PAGE_TOKEN_KEY')?.valueFrom?.secretKeyRef).to.deep.equal({ name: 'query-page-token', key: 'key' });
    expect(queryConfig(envOf(query, all)).pageTokenKeyIsDev, 'query signs page tokens with the public dev key').to.equal(false);
    const ingestion = ingestionConfig(envOf(containerOf(all, 'StatefulSet', 'ingestion'), all));
    expect(ingestion.replicas).to.equal(DEV_SETTINGS.replicas);
    const claim = (find(all, 'StatefulSet', 'ingestion') as Any).spec.volumeClaimTemplates[0];
    const [, amount, unit] = /^(\d+)(Ki|Mi|Gi|Ti)$/.exec(claim.spec.resources.requests.storage)!;
    const volumeBytes = Number(amount) * 1024 ** (['Ki', 'Mi', 'Gi', 'Ti'].indexOf(unit!) + 1);
    // SQLite's WAL and the free pages of deleted rows live on the same volume: room is left for them.
    expect(ingestion.outboxMaxBytes).to.be.at.most(volumeBytes * 0.75);
  });

  it('the credentials Secret is a credentials file with every flat; the simulator accepts the seeded CA and signs with it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flatline-cdk8s-'));
    try {
      const secret = (name: string, key: string) => Buffer.from((find(all, 'Secret', name) as Any).data[key], 'base64').toString('utf8');
      writeFileSync(join(dir, 'credentials.json'), secret('devices-credentials', 'credentials.json'));
      expect(loadCredentials(join(dir, 'credentials.json')).size).to.equal(DEV_SETTINGS.flats);
      // What the devices init container copies into the state folder.
      const caPem = (find(all, 'ConfigMap', 'devices-ca') as Any).data['ca.pem'] as string;
      writeFileSync(join(dir, 'ca.pem'), caPem);
      writeFileSync(join(dir, 'ca-key.pem'), secret('devices-ca-key', 'ca-key.pem'), { mode: 0o600 });
      const tls = await ensureTlsMaterial(dir, ['devices.flatline.svc.cluster.local']);
      expect(tls.created.ca).to.equal(false);
      expect(tls.caPem).to.equal(caPem);
      const server = new X509Certificate(tls.certPem);
      expect(server.checkIssued(new X509Certificate(caPem))).to.equal(true);
      expect(server.checkHost('devices.flatline.svc.cluster.local')).to.equal('devices.flatline.svc.cluster.local');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('authorization: only ingestion calls storage (and, by NetworkPolicy, the simulator); only the gateway and operators call query', () => {
    const principals = (name: string, port: number) =>
      ((find(all, 'AuthorizationPolicy', name) as Any).spec.rules as Any[]).filter((r) => r.to[0].operation.ports.includes(String(port))).flatMap((r) => r.from[0].source.principals);
    expect(principals('storage', PORTS.storage.grpc)).to.deep.equal([principalOf('ingestion', DEV_SETTINGS)]);
    // The simulator's sidecar does not intercept the device API: no AuthorizationPolicy could see it, the NetworkPolicy guards it.
    expect(principals('devices', PORTS.devices.https)).to.deep.equal([]);
    const np = find(all, 'NetworkPolicy', 'devices') as Any;
    expect(np.spec.ingress.filter((r: Any) => r.ports.some((p: Any) => p.port === PORTS.devices.https))).to.deep.equal([
      { from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'ingestion' } } }], ports: [{ protocol: 'TCP', port: PORTS.devices.https }] },
    ]);
    expect(principals('query', PORTS.query.grpc)).to.deep.equal([DEV_SETTINGS.gateway.principal, principalOf('operators', DEV_SETTINGS)]);
    expect((find(all, 'PeerAuthentication', 'default') as Any).spec.mtls.mode).to.equal('STRICT');
    for (const name of ['storage', 'query', 'ingestion', 'devices', 'operators']) expect(find(all, 'ServiceAccount', name).kind).to.equal('ServiceAccount');
  });

  it('query admits callers through the gateway only with a JWT of the configured issuer; in-mesh operators need none', () => {
    expect(gatewayAuthProblems(all, DEV_SETTINGS.gateway.principal)).to.deep.equal([]);
    const ra = find(all, 'RequestAuthentication', 'query') as Any;
    expect(ra.spec.selector.matchLabels).to.deep.equal({ 'app.kubernetes.io/name': 'query' });
    const rules = ((find(all, 'AuthorizationPolicy', 'query') as Any).spec.rules as Any[]).filter((r) => r.to[0].operation.ports.includes(String(PORTS.query.grpc)));
    const issuer = ra.spec.jwtRules[0].issuer as string;
    expect(rules.map((r) => r.from[0].source)).to.deep.equal([
      { principals: [DEV_SETTINGS.gateway.principal], requestPrincipals: [`${issuer}/*`] },
      { principals: [principalOf('operators', DEV_SETTINGS)] },
    ]);
  });

  it('the gateway auth check catches a missing RequestAuthentication, a gateway rule without a request principal, an open rule and a foreign issuer', () => {
    const principal = DEV_SETTINGS.gateway.principal;
    const noRa = (clone(all) as Any[]).filter((o) => o.kind !== 'RequestAuthentication');
    expect(gatewayAuthProblems(noRa, principal)).to.deep.equal([
      'VirtualService/query-gateway route query to query.flatline.svc.cluster.local:7102: no RequestAuthentication with JWT rules selects Deployment/query',
      'AuthorizationPolicy/query rule 0: request principal flatline-dev-issuer/* is of no issuer a RequestAuthentication accepts',
    ]);
    const noJwt = clone(all) as Any[];
    for (const r of find(noJwt, 'AuthorizationPolicy', 'query').spec.rules) for (const f of r.from) delete f.source.requestPrincipals;
    expect(gatewayAuthProblems(noJwt, principal)).to.deep.equal([`AuthorizationPolicy/query rule 0: admits the ingress gateway (${principal}) on port 7102 without a request principal (a JWT)`]);
    const open = clone(all) as Any[];
    find(open, 'AuthorizationPolicy', 'query').spec.rules.push({ to: [{ operation: { ports: ['7102'] } }] });
    expect(gatewayAuthProblems(open, principal)).to.have.length(1);
    const foreign = clone(all) as Any[];
    find(foreign, 'AuthorizationPolicy', 'query').spec.rules[0].from[0].source.requestPrincipals = ['https://elsewhere.example/*'];
    expect(gatewayAuthProblems(foreign, principal)).to.deep.equal(['AuthorizationPolicy/query rule 0: request principal https://elsewhere.example/* is of no issuer a RequestAuthentication accepts']);
  });

  it('the dev profile\'s issuer: a public key inline (no private part), and the tokens synth prints verify against it', () => {
    const rule = (find(all, 'RequestAuthentication', 'query') as Any).spec.jwtRules[0];
    expect(rule.issuer).to.equal(DEV_JWT_ISSUER);
    expect(rule.jwksUri).to.equal(undefined);
    expect(rule.fromHeaders).to.deep.equal([{ name: 'authorization', prefix: 'Bearer ' }]);
    const [jwk, ...more] = JSON.parse(rule.jwks).keys as Any[];
    expect(more).to.deep.equal([]);
    expect(Object.keys(jwk).sort()).to.deep.equal(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    const token = devToken(DEV_SETTINGS, { subject: 'alice', nowMs: Date.UTC(2026, 0, 1), ttlSeconds: 60 });
    const [header, payload, signature] = token.split('.') as [string, string, string];
    expect(JSON.parse(Buffer.from(header, 'base64url').toString())).to.deep.equal({ alg: 'ES256', typ: 'JWT', kid: jwk.kid });
    expect(JSON.parse(Buffer.from(payload, 'base64url').toString())).to.deep.equal({ iss: DEV_JWT_ISSUER, sub: 'alice', iat: 1767225600, exp: 1767225660 });
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    expect(verify('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'))).to.equal(true);
    // Another seed, another key: the token of one dev cluster does not open another.
    const other = devJwtIssuer(withSettings({ seed: 'another-dev-seed' }));
    expect(JSON.parse(other.jwks!).keys[0].x).to.not.equal(jwk.x);
  });

  it('a production synth: the configured issuer and its JWKS URI and audiences, required as the request principal of gateway callers', async () => {
    const jwt = { issuer: 'https://login.example.org/realms/flatline', jwksUri: 'https://login.example.org/realms/flatline/certs', audiences: ['flatline-query'] };
    const s = withSettings({ profile: 'production', seed: 'x'.repeat(32), gateway: { ...DEV_SETTINGS.gateway, jwt } });
    const app = await buildApp(s);
    const objects = app.charts.flatMap((c) => c.toJson() as K8sObject[]);
    expect(gatewayAuthProblems(objects, s.gateway.principal)).to.deep.equal([]);
    const ra = find(objects, 'RequestAuthentication', 'query') as Any;
    expect(ra.spec.jwtRules).to.deep.equal([{ ...jwt, fromHeaders: [{ name: 'authorization', prefix: 'Bearer ' }], forwardOriginalToken: false }]);
    expect(ra.metadata.labels['flatline.dev/profile']).to.equal(undefined);
    const rules = (find(objects, 'AuthorizationPolicy', 'query') as Any).spec.rules as Any[];
    expect(rules[0].from[0].source.requestPrincipals).to.deep.equal(['https://login.example.org/realms/flatline/*']);
    expect(() => devToken(s)).to.throw(/only in the dev profile/);
  });

  it('settings refuse a production profile with the dev seed, a short seed, no issuer, or a JWKS URI that is not https', () => {
    const jwt = { issuer: 'https://issuer.example', jwksUri: 'https://issuer.example/jwks', audiences: [] };
    const gateway = { ...DEV_SETTINGS.gateway, jwt };
    expect(() => withSettings({ profile: 'production', gateway })).to.throw(/refuses the public development seed "flatline-dev"/);
    expect(() => withSettings({ profile: 'production', gateway, seed: 'only-twenty-characters' })).to.throw(/at least 32 characters/);
    expect(() => withSettings({ profile: 'production', seed: 'y'.repeat(40) })).to.throw(/needs the JWT issuer/);
    expect(() => withSettings({ profile: 'production', seed: 'y'.repeat(40), gateway: { ...gateway, jwt: { ...jwt, jwksUri: 'http://issuer.example/jwks' } } })).to.throw(/JWKS URI must be https/);
    // buildApp checks too: settings put together by hand do not bypass the check.
    return buildApp({ ...DEV_SETTINGS, profile: 'production' }).then(
      () => expect.fail('buildApp accepted a production profile with the dev seed'),
      (err: Error) => expect(err.message).to.match(/public development seed/),
    );
  });

  it('the services\' MongoDB URI asks for majority-acknowledged, journaled writes and majority reads, as the driver reads it', async () => {
    for (const [kind, name] of [['Deployment', 'storage'], ['Deployment', 'query'], ['StatefulSet', 'ingestion']] as const) {
      const uri = envOf(containerOf(all, kind, name), all)['FLATLINE_MONGODB_URI']!;
      // A multi-host URI is no WHATWG URL: read its query string alone.
      const query = new URLSearchParams(uri.slice(uri.indexOf('?') + 1));
      expect({ w: query.get('w'), journal: query.get('journal'), readConcernLevel: query.get('readConcernLevel') }, name).to.deep.equal({ w: 'majority', journal: 'true', readConcernLevel: 'majority' });
      // The client the services build (createMongoClient) must keep what the URI asks for.
      const client = createMongoClient(uri, 1000);
      try {
        expect({ w: client.options.writeConcern?.w, journal: client.options.writeConcern?.journal }, name).to.deep.equal({ w: 'majority', journal: true });
        expect(client.options.readConcern?.level, name).to.equal('majority');
      } finally {
        await client.close();
      }
    }
  });

  it('the gateway route is bound to the Gateway and does not clash with the in-mesh route of query', () => {
    const gatewayVs = find(all, 'VirtualService', 'query-gateway') as Any;
    expect(gatewayVs.spec.gateways).to.deep.equal(['flatline/query']);
    const meshVs = all.filter((o) => o.kind === 'VirtualService' && o.metadata.name === 'query') as Any[];
    for (const vs of meshVs) {
      expect(vs.spec.gateways).to.equal(undefined);
      expect(vs.spec.hosts).to.not.include(gatewayVs.spec.hosts[0]);
    }
  });

  it('every Istio object passes its schema', () => {
    const models: Record<string, new (x: Any) => { validate(): void }> = { VirtualService, DestinationRule, Gateway, AuthorizationPolicy, PeerAuthentication, RequestAuthentication };
    const istio = all.filter((o) => o.apiVersion.includes('istio.io'));
    expect(istio.length).to.be.greaterThan(10);
    for (const o of istio) {
      const Model = models[o.kind];
      expect(Model, o.kind).to.not.equal(undefined);
      expect(() => new Model!(o).validate(), `${o.kind}/${o.metadata.name}`).to.not.throw();
    }
  });

  it('npm run synth -- --outdir writes the same bytes twice (production profile, seed from FLATLINE_SECRET_SEED)', () => {
    const dirs = [mkdtempSync(join(tmpdir(), 'flatline-synth-')), mkdtempSync(join(tmpdir(), 'flatline-synth-'))];
    const env = { ...process.env, FLATLINE_SECRET_SEED: 'c2FtZS1ieXRlcy10d2ljZS1zZWVkLWZvci10aGUtdGVzdA', FLATLINE_JWT_ISSUER: 'https://issuer.example', FLATLINE_JWKS_URI: 'https://issuer.example/jwks.json' };
    try {
      for (const dir of dirs) {
        const run = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'cdk8s/src/main.ts'), '--outdir', dir], { cwd: ROOT, encoding: 'utf8', env });
        expect(run.status, run.stderr).to.equal(0);
        expect(run.stdout).to.match(/wrote .*flatline-3-services\.k8s\.yaml \(\d+ bytes\)/);
      }
      const [a, b] = dirs.map((d) => readdirSync(d).sort());
      expect(a).to.deep.equal(b);
      expect(a).to.include.members([...SYSTEM_CHARTS.map((c) => `${c}.k8s.yaml`), 'mesh-baseline.k8s.yaml', 'fault-devices-slow.k8s.yaml']);
      for (const file of a!) expect(readFileSync(join(dirs[1]!, file)).equals(readFileSync(join(dirs[0]!, file))), file).to.equal(true);
    } finally {
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }
  });
});
