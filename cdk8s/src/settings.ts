/**
 * The one settings object every chart takes: where flatline runs on the
 * cluster, which image, how many flats, and the seed every generated secret
 * is derived from (synth never draws a random number, so two runs write the
 * same bytes). DEFAULT_SETTINGS runs on a local cluster (kind, k3d) with Istio.
 */
import { DEFAULT_MESH, type MeshSettings } from '@flatline/mesh/istio.js';

/** CPU and memory of one container (Kubernetes quantities). */
export interface Resources {
  readonly requests: { readonly cpu: string; readonly memory: string };
  readonly limits: { readonly cpu: string; readonly memory: string };
}

/** The flatline services that run from the one image. */
export const SERVICES = ['storage', 'query', 'ingestion', 'devices'] as const;
/** One of the flatline services. */
export type Service = (typeof SERVICES)[number];

/** Everything the charts need to know. */
export interface Settings {
  readonly namespace: string;
  /** Replicas of every flatline workload (at least 2, so a drained node never takes a service away). */
  readonly replicas: number;
  /**
   * The one image of every service: `<registry>/<repository>:<tag>`, built
   * from the repository's Dockerfile. A Tiltfile's
   * `docker_build('localhost:5001/flatline', '.')` matches the default.
   */
  readonly image: { readonly registry: string; readonly repository: string; readonly tag: string; readonly pullPolicy: 'IfNotPresent' | 'Always' | 'Never' };
  /** Numeric user and group the services run as; the Dockerfile's USER is the same. */
  readonly uid: number;
  /** Flats simulated and polled (ids "1" … flats), as the local stack does. */
  readonly flats: number;
  readonly devicesPerFlat: number;
  /** Milliseconds between two readings of a device (fixed: both simulator replicas share one timeline). */
  readonly devicesPeriodMs: number;
  /**
   * Start of the simulator's timeline. Both simulator replicas number their
   * readings from it, so whichever replica answers a poll, seq agrees.
   */
  readonly devicesEpoch: string;
  /** Validity start of the device CA made at synth time (fixed, so synth is repeatable). */
  readonly devicesCaNotBefore: string;
  readonly pollIntervalMs: number;
  readonly pollTimeoutMs: number;
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /**
   * Every password, key file and CA key is derived from this seed (HMAC per
   * purpose): the same seed gives the same Secrets. Anyone who knows the
   * seed knows the secrets: give each real cluster its own (`--seed`).
   */
  readonly seed: string;
  readonly mongo: {
    readonly image: string;
    /** The mongo image's own user (mongod runs as 999 in the official image). */
    readonly uid: number;
    readonly replicas: number;
    readonly replicaSet: string;
    readonly database: string;
    readonly storage: string;
    readonly resources: Resources;
  };
  /** Size of each ingestion replica's outbox volume. */
  readonly ingestionStorage: string;
  /** StorageClass of the volume claims (undefined: the cluster's default). */
  readonly storageClass: string | undefined;
  readonly resources: Readonly<Record<Service, Resources>>;
  readonly gateway: {
    /** Host grpcurl names (`-authority`) when it calls query through the ingress gateway. */
    readonly host: string;
    readonly port: number;
    /** Labels of the ingress gateway pods the Gateway binds to. */
    readonly selector: Readonly<Record<string, string>>;
    /** SPIFFE principal of the ingress gateway, the one outside caller query admits. */
    readonly principal: string;
  };
  /** Service account whose pods (a debug pod with grpcurl) may call query from inside the mesh. */
  readonly operatorsServiceAccount: string;
  readonly trustDomain: string;
  /** Namespace whose workloads may scrape /metrics (Prometheus). */
  readonly monitoringNamespace: string;
}

const small: Resources = { requests: { cpu: '100m', memory: '192Mi' }, limits: { cpu: '1', memory: '512Mi' } };

/** The defaults: what `npm run synth` writes without options. */
export const DEFAULT_SETTINGS: Settings = {
  namespace: DEFAULT_MESH.namespace,
  replicas: 2,
  image: { registry: 'localhost:5001', repository: 'flatline', tag: 'dev', pullPolicy: 'IfNotPresent' },
  uid: 10001,
  flats: 100,
  devicesPerFlat: 3,
  devicesPeriodMs: 1000,
  devicesEpoch: '2026-01-01T00:00:00.000Z',
  devicesCaNotBefore: '2026-01-01T00:00:00.000Z',
  pollIntervalMs: 5000,
  pollTimeoutMs: 2000,
  logLevel: 'info',
  seed: 'flatline-dev',
  mongo: {
    image: 'mongo:7.0.14',
    uid: 999,
    replicas: 3,
    replicaSet: 'rs0',
    database: 'flatline',
    storage: '2Gi',
    resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { cpu: '1', memory: '1Gi' } },
  },
  ingestionStorage: '1Gi',
  storageClass: undefined,
  resources: {
    storage: small,
    query: small,
    // 10,000 flats took 360 MB RSS in `npm run bench`.
    ingestion: { requests: { cpu: '200m', memory: '256Mi' }, limits: { cpu: '1', memory: '768Mi' } },
    devices: { requests: { cpu: '200m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } },
  },
  gateway: {
    host: 'query.flatline.local',
    port: 80,
    selector: { istio: 'ingressgateway' },
    principal: 'cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account',
  },
  operatorsServiceAccount: 'operators',
  trustDomain: 'cluster.local',
  monitoringNamespace: 'monitoring',
};

/** Ports of the services (the same as the local stack's defaults). */
export const PORTS = {
  storage: { grpc: 7101, metrics: 9101 },
  query: { grpc: 7102, metrics: 9102 },
  ingestion: { grpc: 7103, metrics: 9103 },
  devices: { https: 8443, control: 8444, metrics: 9104 },
  mongo: 27017,
} as const;

/** Settings with some fields replaced; throws when the result cannot run. */
export function withSettings(overrides: Partial<Settings>, base: Settings = DEFAULT_SETTINGS): Settings {
  const s = { ...base, ...overrides };
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(s.namespace)) throw new Error(`namespace must be a DNS label, got ${JSON.stringify(s.namespace)}`);
  if (!Number.isInteger(s.replicas) || s.replicas < 2) throw new Error(`replicas must be an integer of at least 2 (one node may go away), got ${s.replicas}`);
  if (!Number.isInteger(s.flats) || s.flats < 1 || s.flats > 100_000) throw new Error(`flats must be an integer from 1 to 100000, got ${s.flats}`);
  if (!Number.isInteger(s.pollIntervalMs) || s.pollIntervalMs < 100) throw new Error(`poll interval must be at least 100 ms, got ${s.pollIntervalMs}`);
  if (s.pollTimeoutMs >= s.pollIntervalMs) throw new Error(`poll timeout (${s.pollTimeoutMs} ms) must be shorter than the poll interval (${s.pollIntervalMs} ms)`);
  if (s.seed.length < 8) throw new Error('seed must have at least 8 characters');
  if (!/^[a-z0-9.-]+(:\d+)?(\/[a-z0-9._-]+)*$/.test(s.image.registry) && s.image.registry !== '') throw new Error(`bad image registry ${JSON.stringify(s.image.registry)}`);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(s.image.tag)) throw new Error(`bad image tag ${JSON.stringify(s.image.tag)}`);
  return s;
}

/** The image reference every flatline container runs. */
export function imageOf(s: Settings): string {
  return `${s.image.registry === '' ? '' : `${s.image.registry}/`}${s.image.repository}:${s.image.tag}`;
}

/** A service's cluster DNS name. */
export function serviceHost(name: string, s: Settings): string {
  return `${name}.${s.namespace}.svc.cluster.local`;
}

/** The mesh charts' settings for this namespace (the fault and baseline charts take these). */
export function meshOf(s: Settings): MeshSettings {
  return { ...DEFAULT_MESH, namespace: s.namespace, devicesHost: serviceHost('devices', s) };
}

/** The SPIFFE principal of a service account of flatline's namespace (what AuthorizationPolicies match). */
export function principalOf(serviceAccount: string, s: Settings): string {
  return `${s.trustDomain}/ns/${s.namespace}/sa/${serviceAccount}`;
}

/** Host names of the MongoDB members (StatefulSet pods behind the headless Service). */
export function mongoMembers(s: Settings): string[] {
  return Array.from({ length: s.mongo.replicas }, (_, i) => `mongo-${i}.mongo.${s.namespace}.svc.cluster.local:${PORTS.mongo}`);
}
