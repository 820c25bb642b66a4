/**
 * Istio's control plane on this machine (tools/install-istiod.sh): starting
 * istiod (pilot-discovery) without Kubernetes, configured from a folder of
 * Istio objects, serving plaintext xDS to proxyless gRPC clients
 * (@grpc/grpc-js-xds); writing objects into that folder; and the xDS bootstrap
 * such a client needs.
 *
 * Traps this module works around:
 * - istiod's /ready stays 503 without Kubernetes (no injector or validation
 *   webhook): readiness is its "starting gRPC discovery service at" line (the
 *   listener is bound) and /debug/syncz answering.
 * - istiod rereads the whole folder on every change, and one file it cannot
 *   parse (a half-written one too) makes it keep its previous state for the
 *   whole folder: objects are written under a name it ignores and renamed.
 * - istiod does not validate what it reads from the folder: a fault without a
 *   percentage is pushed, and grpc-js-xds NACKs the route (or applies it to
 *   0 %). Check declarations before they are written; a NACK shows in syncz().
 */
import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { TOOLS_BIN } from './paths.ts';
import { spawnReady, type ManagedProcess } from './processes.ts';

/** The binary tools/install-istiod.sh links (part of TOOLS_FOR.up: `flatline up` runs the Istio plane by default). */
export const PILOT_DISCOVERY = join(TOOLS_BIN, 'pilot-discovery');

/** Something istiod or its config folder refused; the message says what was expected and what was got. */
export class IstiodError extends Error {
  override name = 'IstiodError';
}

/** How to start istiod. Ports default to 0: the kernel picks free ones, and istiod's log says which. */
export interface IstiodOptions {
  /** The folder of Istio objects (*.yaml, *.yml) istiod watches; it must exist. */
  readonly configDir: string;
  /** Where its listeners bind (default 127.0.0.1). */
  readonly host?: string;
  /** Plaintext xDS (gRPC) port. */
  readonly grpcPort?: number;
  /** HTTP port: /debug/syncz, /debug/configz, /debug/config_dump. */
  readonly httpPort?: number;
  /** Prometheus metrics port. */
  readonly monitoringPort?: number;
  /** Where istiod's stdout and stderr go (appended). */
  readonly logFile: string;
  /** Default: PILOT_DISCOVERY. */
  readonly binary?: string;
  /** More environment for istiod, such as PILOT_DEBOUNCE_AFTER=10ms. */
  readonly env?: Readonly<Record<string, string>>;
  /** Default 30 s. */
  readonly readyTimeoutMs?: number;
  /** In its own process group (see SpawnSpec.detached). */
  readonly detached?: boolean;
}

/** A running istiod. */
export interface RunningIstiod {
  /** host:port of its plaintext xDS server, for xdsBootstrap(). */
  readonly xdsAddress: string;
  /** http://host:port/debug, its debug endpoints (syncz, configz, config_dump?proxyID=…). */
  readonly debugUrl: string;
  readonly process: ManagedProcess;
  /** What istiod last sent each connected xDS client, and whether the client ACKed or NACKed it. */
  syncz(): Promise<SyncStatus[]>;
  /** SIGTERM, then SIGKILL after graceMs (default 5 s). */
  stop(graceMs?: number): Promise<number | string>;
}

/** One xDS client (connection) as /debug/syncz reports it: Istio's SyncStatus, fields it leaves empty absent. */
export interface SyncStatus {
  /** "<workload>.<namespace>", from the client's node id. */
  readonly proxy: string;
  readonly proxy_type?: string;
  readonly istio_version?: string;
  /** Per xDS type URL: the version (nonce) istiod last sent, the last one the client ACKed, and the client's reason when it NACKed one. */
  readonly resources?: Readonly<Record<string, XdsTypeStatus | undefined>>;
  readonly [field: string]: unknown;
}

/** What one client did with one xDS type (syncz's resources entry). */
export interface XdsTypeStatus {
  readonly sent?: string;
  readonly acked?: string;
  readonly sentTime?: string;
  /** The client's error detail of its last NACK; gone once it ACKs a later version (seen with istiod 1.30). */
  readonly lastError?: string;
}

/** The RouteConfiguration type URL: where VirtualService faults, routes and their NACKs show. */
export const ROUTE_CONFIGURATION = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';

/** Whether the client ACKed what istiod last sent it of this type (false while a push is unanswered or was NACKed). */
export function xdsInSync(status: SyncStatus | undefined, typeUrl: string): boolean {
  const t = status?.resources?.[typeUrl];
  return t?.sent !== undefined && t.sent === t.acked;
}

const GRPC_LINE = /starting gRPC discovery service at (\S+)/;
const HTTP_LINE = /starting HTTP service at (\S+)/;

/** Starts istiod on its config folder with no Kubernetes and no CA; ready once its xDS port is bound and /debug/syncz answers. */
export async function startIstiod(options: IstiodOptions): Promise<RunningIstiod> {
  const host = options.host ?? '127.0.0.1';
  const readyTimeoutMs = options.readyTimeoutMs ?? 30000;
  let httpAddress: string | undefined;
  let grpcAddress: string | undefined;
  const started = Date.now();
  const { process: child } = await spawnReady({
    name: 'istiod',
    command: options.binary ?? PILOT_DISCOVERY,
    args: [
      'discovery',
      // No service registry but the ServiceEntries of the folder; no Kubernetes at all.
      '--registries=',
      `--configDir=${options.configDir}`,
      `--grpcAddr=${host}:${options.grpcPort ?? 0}`,
      // No TLS listeners: there are no certificates without the CA.
      '--secureGRPCAddr=',
      '--httpsAddr=',
      `--httpAddr=${host}:${options.httpPort ?? 0}`,
      `--monitoringAddr=${host}:${options.monitoringPort ?? 0}`,
      `--ctrlz_address=${host}`,
      '--ctrlz_port=0',
    ],
    env: { ENABLE_CA_SERVER: 'false', ...options.env },
    logFile: options.logFile,
    readyTimeoutMs,
    detached: options.detached ?? false,
    ready: (line) => {
      httpAddress ??= HTTP_LINE.exec(line)?.[1];
      grpcAddress ??= GRPC_LINE.exec(line)?.[1];
      return httpAddress !== undefined && grpcAddress !== undefined ? grpcAddress : undefined;
    },
  });
  const xdsAddress = grpcAddress!;
  const debugUrl = `http://${httpAddress!}/debug`;
  const syncz = () => fetchSyncz(debugUrl);
  // The line comes right after the listener is bound; syncz answering shows the HTTP side serves too.
  for (let attempt = 1; ; attempt++) {
    try {
      await syncz();
      break;
    } catch (err) {
      if (!child.running || Date.now() - started > readyTimeoutMs) {
        await child.stop(1000);
        throw new IstiodError(`istiod: ${debugUrl}/syncz did not answer (${(err as Error).message}) after ${attempt} attempts; last output:\n${child.lastLines()}`, { cause: err });
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return { xdsAddress, debugUrl, process: child, syncz, stop: (graceMs = 5000) => child.stop(graceMs) };
}

/** GET <debug>/<path> of istiod, an endpoint that answers a JSON array. */
async function fetchDebugList(debugUrl: string, path: string): Promise<unknown[]> {
  const res = await fetch(`${debugUrl}/${path}`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (!res.ok) throw new IstiodError(`GET ${debugUrl}/${path}: expected 200, got ${res.status}: ${text.slice(0, 200)}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!Array.isArray(body)) throw new IstiodError(`GET ${debugUrl}/${path}: expected a JSON array, got ${text.slice(0, 200)}`);
  return body;
}

/** GET <debug>/syncz: what istiod last sent each connected xDS client, and what each ACKed or NACKed. */
export async function fetchSyncz(debugUrl: string): Promise<SyncStatus[]> {
  return (await fetchDebugList(debugUrl, 'syncz')) as SyncStatus[];
}

/** GET <debug>/configz: every object istiod holds now (as Kubernetes would show it: apiVersion, kind, metadata, spec). */
export async function fetchConfigz(debugUrl: string): Promise<IstioObject[]> {
  return (await fetchDebugList(debugUrl, 'configz')) as IstioObject[];
}

/** An Istio object as istiod reads it from its folder (networking.istio.io/v1 VirtualService, ServiceEntry, …). */
export interface IstioObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace: string; readonly [field: string]: unknown };
  readonly spec: unknown;
}

const OBJECT_FILE = /^[\w.-]+\.ya?ml$/;

/**
 * Writes one object into istiod's folder as fileName (*.yaml or *.yml, no
 * folders), replacing the file of that name atomically: written under a name
 * istiod skips, then renamed. JSON is YAML, so no YAML library is needed.
 * Checks only what istiod would otherwise take silently or choke on (the
 * name, a namespace); the fields of the spec are the caller's to check.
 */
export function writeIstioObject(configDir: string, fileName: string, object: IstioObject): string {
  if (!OBJECT_FILE.test(fileName) || basename(fileName) !== fileName) {
    throw new IstiodError(`istiod config: expected a file name like name.yaml (istiod reads only *.yaml and *.yml, no folders), got ${JSON.stringify(fileName)}`);
  }
  for (const field of ['apiVersion', 'kind'] as const) {
    if (typeof object[field] !== 'string' || object[field] === '') throw new IstiodError(`istiod config ${fileName}: expected ${field}, got ${JSON.stringify(object[field])}`);
  }
  const { name, namespace } = object.metadata ?? {};
  if (typeof name !== 'string' || name === '' || typeof namespace !== 'string' || namespace === '') {
    // Without Kubernetes nothing fills in a default namespace.
    throw new IstiodError(`istiod config ${fileName}: expected metadata.name and metadata.namespace, got ${JSON.stringify(object.metadata)}`);
  }
  const path = join(configDir, fileName);
  // Not *.yaml: istiod must never read the file half-written (it would keep its old state for the whole folder).
  const tmp = join(configDir, `.${fileName}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, `${JSON.stringify(object, null, 2)}\n`);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return path;
}

/** Removes one object's file from istiod's folder (nothing when it is not there). */
export function removeIstioObject(configDir: string, fileName: string): void {
  if (!OBJECT_FILE.test(fileName) || basename(fileName) !== fileName) throw new IstiodError(`istiod config: expected a file name like name.yaml, got ${JSON.stringify(fileName)}`);
  rmSync(join(configDir, fileName), { force: true });
}

/** Who a proxyless gRPC client is to istiod. */
export interface XdsClientIdentity {
  /** host:port of istiod's plaintext xDS server (RunningIstiod.xdsAddress). */
  readonly xdsAddress: string;
  /** The client's namespace: istiod applies the objects of its namespace, and the exported ones of others. */
  readonly namespace: string;
  /** The client's IP as istiod knows it (default 127.0.0.1). */
  readonly ip?: string;
  /** Its workload name, part of the node id (default "client"). */
  readonly workload?: string;
  /** The whole node id, overriding the one made of the fields above ("sidecar~<ip>~<workload>.<namespace>~<namespace>.svc.cluster.local"). */
  readonly nodeId?: string;
}

/**
 * The channel option of @grpc/grpc-js-xds that gives one channel its own
 * bootstrap (JSON text) instead of the process's GRPC_XDS_BOOTSTRAP: its only
 * per-channel way, for a process that is a client of more than one istiod
 * (the supervisor of a stack, in a test process that runs several stacks).
 */
export const XDS_BOOTSTRAP_OPTION = 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config';

/** The xDS bootstrap of @grpc/grpc-js-xds (the JSON of GRPC_XDS_BOOTSTRAP_CONFIG or of the file GRPC_XDS_BOOTSTRAP names). */
export interface XdsBootstrap {
  readonly xds_servers: ReadonlyArray<{ readonly server_uri: string; readonly channel_creds: ReadonlyArray<{ readonly type: string }>; readonly server_features: readonly string[] }>;
  readonly node: {
    readonly id: string;
    readonly locality: Readonly<Record<string, string>>;
    readonly metadata: Readonly<Record<string, string>>;
  };
}

/** The xDS bootstrap that makes a grpc-js-xds client an Istio proxyless client of this istiod. */
export function xdsBootstrap(identity: XdsClientIdentity): XdsBootstrap {
  const ip = identity.ip ?? '127.0.0.1';
  const workload = identity.workload ?? 'client';
  const { namespace } = identity;
  return {
    xds_servers: [{ server_uri: identity.xdsAddress, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: {
      id: identity.nodeId ?? `sidecar~${ip}~${workload}.${namespace}~${namespace}.svc.cluster.local`,
      // grpc-js-xds needs a locality, even an empty one.
      locality: {},
      // GENERATOR grpc: istiod answers with what proxyless gRPC understands, not Envoy's filters.
      metadata: { GENERATOR: 'grpc', NAMESPACE: namespace, CLUSTER_ID: 'Kubernetes', INSTANCE_IPS: ip, ISTIO_VERSION: '1.30.0' },
    },
  };
}
