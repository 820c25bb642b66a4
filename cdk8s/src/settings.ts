/**
 * The one settings object every chart takes: where flatline runs on the
 * cluster, which image, how many flats, the profile, and the seed every
 * generated secret is derived from (synth never draws a random number, so
 * two runs write the same bytes). DEV_SETTINGS runs on a throwaway local
 * cluster (kind, k3d) with Istio; its seed is public. A production profile
 * must be given a seed of the operator's own and the JWT issuer of the
 * callers from outside the mesh (withSettings refuses it otherwise).
 */
import { DEFAULT_MESH, type MeshSettings } from '@flatline/mesh';

/** CPU and memory of one container (Kubernetes quantities). */
export interface Resources {
  readonly requests: { readonly cpu: string; readonly memory: string };
  readonly limits: { readonly cpu: string; readonly memory: string };
}

/** The flatline services that run from the one image. */
export const SERVICES = ['storage', 'query', 'ingestion', 'devices'] as const;
/** One of the flatline services. */
export type Service = (typeof SERVICES)[number];

/**
 * production: every secret comes from a seed the operator gives and keeps
 * out of the repository. dev: a fixed, public seed (DEV_SEED) so Tilt and
 * the tests need none; every object made from it says so
 * (flatline.dev/profile: dev) and synth warns.
 */
export type Profile = 'production' | 'dev';

/** The profiles, for messages and option parsing. */
export const PROFILES: readonly Profile[] = ['production', 'dev'];

/** The dev profile's seed. It is in this file, so every secret derived from it is public. */
export const DEV_SEED = 'flatline-dev';

/**
 * The shortest seed a production synth takes. The seed is an HMAC key, and a
 * flat's device password leaves the cluster (a meter holds it): a short seed
 * could be searched offline from one such password, and with it every other
 * secret (MongoDB's root password, the device CA key) recomputed.
 */
export const MIN_PRODUCTION_SEED_LENGTH = 32;

/**
 * The issuer whose JSON Web Tokens callers from outside the mesh present
 * (Istio RequestAuthentication jwtRules). Exactly one of jwksUri and jwks.
 */
export interface JwtIssuer {
  /** The tokens' `iss`; a caller is admitted as the request principal `<issuer>/<sub>`. */
  readonly issuer: string;
  /** Where istiod fetches the issuer's public keys (https:// in production). */
  readonly jwksUri?: string;
  /** The issuer's public keys inline (a JWKS document): how the dev profile's own issuer is given. */
  readonly jwks?: string;
  /** `aud` values a token must carry one of (empty: not checked). */
  readonly audiences: readonly string[];
}

/** Everything the charts need to know. */
export interface Settings {
  /** See Profile. */
  readonly profile: Profile;
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
   * seed knows the secrets: a production profile takes the operator's own
   * (`--seed` or FLATLINE_SECRET_SEED), never DEV_SEED.
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
    /** SPIFFE principal of the ingress gateway, through which outside callers reach query. */
    readonly principal: string;
    /**
     * Callers through the gateway must present a token of this issuer.
     * Undefined: the dev profile's own issuer, derived from the seed
     * (secrets.ts devJwtIssuer); a production profile must give one.
     */
    readonly jwt: JwtIssuer | undefined;
  };
  /** Service account whose pods (a debug pod with grpcurl) may call query from inside the mesh. */
  readonly operatorsServiceAccount: string;
  readonly trustDomain: string;
  /** Namespace whose workloads may scrape /metrics (Prometheus). */
  readonly monitoringNamespace: string;
  /**
   * A Toxiproxy Deployment in front of MongoDB and the device gateway, for
   * the TCP faults of mesh/ (`flatline fault on <tcp scenario> --kube`):
   * the services' database and device links go through its proxies
   * (toxiproxy.ts). Off by default: the manifests are then as without it.
   */
  readonly toxiproxy: boolean;
}

const small: Resources = { requests: { cpu: '100m', memory: '192Mi' }, limits: { cpu: '1', memory: '512Mi' } };

/**
 * The dev profile's settings (what `npm run synth -- --profile dev` writes),
 * and the base a production synth overrides: its seed and JWT issuer with the
 * operator's own, its profile with production.
 */
export const DEV_SETTINGS: Settings = {
  profile: 'dev',
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
  seed: DEV_SEED,
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
    jwt: undefined,
  },
  operatorsServiceAccount: 'operators',
  trustDomain: 'cluster.local',
  monitoringNamespace: 'monitoring',
  toxiproxy: false,
};

/** Ports of the services (the same as the local stack's defaults). */
export const PORTS = {
  storage: { grpc: 7101, metrics: 9101 },
  query: { grpc: 7102, metrics: 9102 },
  ingestion: { grpc: 7103, metrics: 9103 },
  devices: { https: 8443, control: 8444, metrics: 9104 },
  mongo: 27017,
} as const;

/** Settings with some fields replaced; throws when the result cannot run (see checkSettings). */
export function withSettings(overrides: Partial<Settings>, base: Settings = DEV_SETTINGS): Settings {
  const s = { ...base, ...overrides };
  checkSettings(s);
  return s;
}

/** Throws when s cannot run, or is a production profile with a public or weak seed or no JWT issuer. */
export function checkSettings(s: Settings): void {
  if (!PROFILES.includes(s.profile)) throw new Error(`profile must be ${PROFILES.join(' or ')}, got ${JSON.stringify(s.profile)}`);
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(s.namespace)) throw new Error(`namespace must be a DNS label, got ${JSON.stringify(s.namespace)}`);
  if (!Number.isInteger(s.replicas) || s.replicas < 2) throw new Error(`replicas must be an integer of at least 2 (one node may go away), got ${s.replicas}`);
  if (!Number.isInteger(s.flats) || s.flats < 1 || s.flats > 100_000) throw new Error(`flats must be an integer from 1 to 100000, got ${s.flats}`);
  if (!Number.isInteger(s.pollIntervalMs) || s.pollIntervalMs < 100) throw new Error(`poll interval must be at least 100 ms, got ${s.pollIntervalMs}`);
  if (s.pollTimeoutMs >= s.pollIntervalMs) throw new Error(`poll timeout (${s.pollTimeoutMs} ms) must be shorter than the poll interval (${s.pollIntervalMs} ms)`);
  if (s.seed.length < 8) throw new Error('seed must have at least 8 characters');
  if (s.profile === 'production') {
    if (s.seed === DEV_SEED) throw new Error(`the production profile refuses the public development seed ${JSON.stringify(DEV_SEED)}: give a seed of your own (--seed or FLATLINE_SECRET_SEED), or use --profile dev`);
    if (s.seed.length < MIN_PRODUCTION_SEED_LENGTH) throw new Error(`a production seed must have at least ${MIN_PRODUCTION_SEED_LENGTH} characters (e.g. openssl rand -base64 32), got ${s.seed.length}`);
    if (s.gateway.jwt === undefined) throw new Error('the production profile needs the JWT issuer of the callers through the gateway (--jwt-issuer and --jwks-uri, or FLATLINE_JWT_ISSUER and FLATLINE_JWKS_URI)');
  }
  if (s.gateway.jwt !== undefined) checkJwtIssuer(s.gateway.jwt, s.profile);
  if (!/^[a-z0-9.-]+(:\d+)?(\/[a-z0-9._-]+)*$/.test(s.image.registry) && s.image.registry !== '') throw new Error(`bad image registry ${JSON.stringify(s.image.registry)}`);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(s.image.tag)) throw new Error(`bad image tag ${JSON.stringify(s.image.tag)}`);
}

function checkJwtIssuer(j: JwtIssuer, profile: Profile): void {
  // No `*` either: the AuthorizationPolicy matches `<issuer>/*`, and Istio allows one wildcard only.
  if (j.issuer.trim() === '' || /[\s*]/.test(j.issuer)) throw new Error(`JWT issuer must be non-empty text without spaces or *, got ${JSON.stringify(j.issuer)}`);
  if ((j.jwksUri === undefined) === (j.jwks === undefined)) throw new Error(`JWT issuer ${j.issuer}: give exactly one of a JWKS URI and inline JWKS`);
  if (j.jwksUri !== undefined) {
    let url: URL;
    try {
      url = new URL(j.jwksUri);
    } catch {
      throw new Error(`JWKS URI is not a URL: ${JSON.stringify(j.jwksUri)}`);
    }
    // Whoever can change the keys istiod fetches can sign tokens: in production only over TLS.
    const schemes = profile === 'production' ? ['https:'] : ['https:', 'http:'];
    if (!schemes.includes(url.protocol)) throw new Error(`JWKS URI must be ${schemes.map((x) => x.slice(0, -1)).join(' or ')}, got ${JSON.stringify(j.jwksUri)}`);
  }
  for (const a of j.audiences) if (a.trim() === '') throw new Error('a JWT audience must not be empty');
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
