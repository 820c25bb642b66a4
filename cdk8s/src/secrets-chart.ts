/**
 * The namespace, and every Secret and ConfigMap flatline's workloads read:
 * the device credentials (the simulator checks them, ingestion polls with
 * them), the device CA (its key is a Secret; its certificate, which is
 * public, a ConfigMap), the simulator's timeline, MongoDB's credentials
 * and key file, and the key that signs query's page tokens. Every secret value is derived from the settings' seed; the
 * other objects only name a Secret and a key, never a value. Each object
 * made from the seed carries its profile (seedMarks): a dev profile's is
 * labelled flatline.dev/profile: dev, its seed public.
 */
import { Chart, type App } from 'cdk8s';
import { addObject, meta, seedMarks } from './k8s.ts';
import { derivePassword, deviceCredentialsFile, devicesEpochFile, mongoKeyFile, pageTokenKey, type DeviceCa } from './secrets.ts';
import { mongoMembers, type Settings } from './settings.ts';
import { DB_CLUSTER_LINKS, viaToxiproxy, type ClusterLink } from './toxiproxy.ts';

/** Names of the Secrets and ConfigMaps, and the keys in them. */
export const CONFIG = {
  deviceCredentials: { secret: 'devices-credentials', key: 'credentials.json' },
  deviceCaKey: { secret: 'devices-ca-key', key: 'ca-key.pem' },
  deviceCa: { configMap: 'devices-ca', key: 'ca.pem' },
  devicesEpoch: { configMap: 'devices-epoch', key: 'epoch.json' },
  mongoRoot: { secret: 'mongo-root', username: 'username', password: 'password' },
  mongoApp: { secret: 'mongo-app', username: 'username', password: 'password', uri: 'uri' },
  mongoKeyFile: { secret: 'mongo-keyfile', key: 'keyfile' },
  queryPageToken: { secret: 'query-page-token', key: 'key' },
} as const;

/** The MongoDB users: root (for the replica-set Job) and the services' own user, limited to the flatline database. */
export const MONGO_USERS = { root: 'flatline-root', app: 'flatline-app' } as const;

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

function secret(name: string, component: string, s: Settings, data: Record<string, string>) {
  return { apiVersion: 'v1', kind: 'Secret', metadata: meta(name, component, s, seedMarks(s)), type: 'Opaque', data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])) };
}

function configMap(name: string, component: string, s: Settings, data: Record<string, string>, fromSeed = false) {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(name, component, s, fromSeed ? seedMarks(s) : {}), data };
}

/**
 * Write and read concerns of the services, explicit rather than the
 * server's defaults: a write counts once a majority of the replica set has
 * it in its journal (storage acknowledges only such writes, so a failover
 * cannot roll back a reading ingestion already deleted from its outbox, nor
 * a lease two replicas then both hold), and reads see only majority-committed
 * data (query never shows a reading a failover would take back).
 */
export const MONGO_CONCERNS = 'w=majority&journal=true&readConcernLevel=majority';

/** The connection string the services use: every member, the replica set, the app user, the concerns. */
export function mongoAppUri(s: Settings): string {
  return appUri(s, mongoMembers(s).join(','), `replicaSet=${s.mongo.replicaSet}`);
}

/**
 * The connection string of a service whose database link goes through
 * Toxiproxy: its proxy alone, directConnection (see toxiproxy.ts), the same
 * user and concerns.
 */
export function mongoAppUriVia(s: Settings, link: ClusterLink): string {
  return appUri(s, viaToxiproxy(link, s), 'directConnection=true');
}

/** The Secret key of the connection string through link's proxy. */
export function mongoUriKey(link: ClusterLink): string {
  return `${CONFIG.mongoApp.uri}-${link.link}`;
}

function appUri(s: Settings, hosts: string, topology: string): string {
  const password = derivePassword(s, 'mongo/app');
  return `mongodb://${MONGO_USERS.app}:${password}@${hosts}/${s.mongo.database}?${topology}&authSource=${s.mongo.database}&${MONGO_CONCERNS}`;
}

/** The namespace, with Istio sidecar injection on. */
export class NamespaceChart extends Chart {
  constructor(scope: App, id: string, s: Settings) {
    super(scope, id, { disableResourceNameHashes: true });
    addObject(this, {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: s.namespace, labels: { 'istio-injection': 'enabled', 'app.kubernetes.io/part-of': 'flatline' } },
    });
  }
}

/** Secrets and ConfigMaps (see the module comment). */
export class SecretsChart extends Chart {
  constructor(scope: App, id: string, s: Settings, ca: DeviceCa) {
    super(scope, id, { disableResourceNameHashes: true });
    const c = CONFIG;
    addObject(this, secret(c.deviceCredentials.secret, 'devices', s, { [c.deviceCredentials.key]: deviceCredentialsFile(s) }));
    addObject(this, secret(c.deviceCaKey.secret, 'devices', s, { [c.deviceCaKey.key]: ca.keyPem }));
    // Public, but it names the key the seed made: a dev CA is marked as one.
    addObject(this, configMap(c.deviceCa.configMap, 'devices', s, { [c.deviceCa.key]: ca.certPem }, true));
    addObject(this, configMap(c.devicesEpoch.configMap, 'devices', s, { [c.devicesEpoch.key]: devicesEpochFile(s) }));
    addObject(this, secret(c.mongoRoot.secret, 'database', s, { [c.mongoRoot.username]: MONGO_USERS.root, [c.mongoRoot.password]: derivePassword(s, 'mongo/root') }));
    addObject(
      this,
      secret(c.mongoApp.secret, 'database', s, {
        [c.mongoApp.username]: MONGO_USERS.app,
        [c.mongoApp.password]: derivePassword(s, 'mongo/app'),
        [c.mongoApp.uri]: mongoAppUri(s),
        // With Toxiproxy, each service's own link (the same user: only the address differs).
        ...(s.toxiproxy ? Object.fromEntries(DB_CLUSTER_LINKS.map((l) => [mongoUriKey(l), mongoAppUriVia(s, l)])) : {}),
      }),
    );
    addObject(this, secret(c.mongoKeyFile.secret, 'database', s, { [c.mongoKeyFile.key]: mongoKeyFile(s) }));
    // One key for every query replica: a page token from one replica is continued by another.
    addObject(this, secret(c.queryPageToken.secret, 'query', s, { [c.queryPageToken.key]: pageTokenKey(s) }));
  }
}
