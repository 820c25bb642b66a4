/**
 * What the local stack keeps in istiod's config folder (the Istio plane,
 * `flatline up --mesh istio`): for storage and query, a ServiceEntry naming
 * the service's cluster host (storage.flatline.svc.cluster.local, port 7101;
 * query …, 7102) with one endpoint per replica that may take calls now (its
 * node ready, its process up), the baseline VirtualService mesh/ renders for
 * the cluster, and the DestinationRule of the same traffic policy (outlier
 * detection, connection pool) without mTLS: no CA issues certificates here,
 * and proxyless clients dial plaintext.
 *
 * A client dials xds:///<host>:<port> with the bootstrap the stack writes
 * (stack/src/istiod.ts, xdsBootstrap); istiod's EDS follows the replicas as
 * the ServiceEntries are rewritten. Only the files whose content changed are
 * written (each atomically), so a rewrite pushes nothing when nothing moved.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { baselineVirtualService, DEFAULT_MESH, grpcDestinationRule, hostName, type MeshSettings } from '@flatline/mesh';
import { fetchConfigz, fetchSyncz, ROUTE_CONFIGURATION, writeIstioObject, type IstioObject, type SyncStatus } from './istiod.ts';

/** The services proxyless clients reach through the plane. */
export const PLANE_SERVICES = ['storage', 'query'] as const;
export type PlaneService = (typeof PLANE_SERVICES)[number];

/**
 * The hosts whose routes (and faults) the plane holds: storage and query, and
 * devices, whose routes ingestion asks for as a sidecar of its identity
 * (services/ingestion/src/devices/istio-routes.ts) and applies in its HTTP
 * fault interceptor: the device hop is HTTP/1.1, which no proxyless gRPC
 * client carries.
 */
export const PLANE_HOSTS = ['storage', 'query', 'devices'] as const;
export type PlaneHost = (typeof PLANE_HOSTS)[number];

/** The ServiceEntry of the device gateway (HTTP: TLS is originated below the routes, as the cluster's DestinationRule does), at the simulator's address. */
export function devicesServiceEntry(address: string, s: MeshSettings = DEFAULT_MESH): IstioObject {
  const { host, port } = split(address);
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'devices', namespace: s.namespace, labels: { 'app.kubernetes.io/part-of': 'flatline', 'flatline.dev/plane': 'local-istio' } },
    spec: {
      hosts: [s.devicesHost],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [{ number: s.devicesPort, name: 'http-devices', protocol: 'HTTP' }],
      endpoints: [{ address: host, ports: { 'http-devices': port } }],
    },
  };
}

/** The service ports clients dial (xds:///<host>:<port>): the cluster's (cdk8s/src/settings.ts PORTS). */
export const PLANE_PORTS: Readonly<Record<PlaneService, number>> = { storage: 7101, query: 7102 };

/** One replica that takes calls now. */
export interface PlaneEndpoint {
  readonly replica: string;
  readonly node: string;
  /** host:port where its gRPC server listens. */
  readonly address: string;
}

/** The xDS target of a service on the plane. */
export function planeTarget(service: PlaneService, s: MeshSettings = DEFAULT_MESH): string {
  return `xds:///${hostName(service, s)}:${PLANE_PORTS[service]}`;
}

/** The ServiceEntry that makes service's host and port known to istiod, with these endpoints (none: calls fail fast, UNAVAILABLE). */
export function serviceEntry(service: PlaneService, endpoints: readonly PlaneEndpoint[], s: MeshSettings = DEFAULT_MESH): IstioObject {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: service, namespace: s.namespace, labels: { 'app.kubernetes.io/part-of': 'flatline', 'flatline.dev/plane': 'local-istio' } },
    spec: {
      hosts: [hostName(service, s)],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [{ number: PLANE_PORTS[service], name: `grpc-${service}`, protocol: 'GRPC' }],
      endpoints: [...endpoints]
        .sort((a, b) => a.replica.localeCompare(b.replica))
        .map((e) => {
          const { host, port } = split(e.address);
          return { address: host, ports: { [`grpc-${service}`]: port }, labels: { replica: e.replica, node: e.node } };
        }),
    },
  };
}

function split(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const port = Number(address.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`expected host:port, got ${JSON.stringify(address)}`);
  return { host: address.slice(0, i), port };
}

/** Every object of the plane, by file name, for these endpoints (and the device simulator's address, when it runs). */
export function planeObjects(endpoints: Readonly<Record<PlaneService, readonly PlaneEndpoint[]>>, s: MeshSettings = DEFAULT_MESH, devices?: string): Map<string, IstioObject> {
  const out = new Map<string, IstioObject>();
  for (const service of PLANE_SERVICES) {
    out.set(`serviceentry-${service}.yaml`, serviceEntry(service, endpoints[service], s));
    out.set(virtualServiceFile(service), baselineVirtualService(service, s).toJSON() as unknown as IstioObject);
    out.set(`destinationrule-${service}.yaml`, grpcDestinationRule(service, s, 'DISABLE').toJSON() as unknown as IstioObject);
  }
  if (devices !== undefined) {
    out.set('serviceentry-devices.yaml', devicesServiceEntry(devices, s));
    out.set(virtualServiceFile('devices'), baselineVirtualService('devices', s).toJSON() as unknown as IstioObject);
  }
  return out;
}

/**
 * Writes the plane's objects into configDir, only those whose content
 * changed; returns the files written. A VirtualService is written only where
 * there is none: once there, it is the fault toggles' (a fault's route
 * replaces the baseline of the same name, as `fault on --kube` does).
 */
export function syncPlane(configDir: string, endpoints: Readonly<Record<PlaneService, readonly PlaneEndpoint[]>>, s: MeshSettings = DEFAULT_MESH, devices?: string): string[] {
  mkdirSync(configDir, { recursive: true });
  const written: string[] = [];
  for (const [file, object] of planeObjects(endpoints, s, devices)) {
    const path = join(configDir, file);
    const text = `${JSON.stringify(object, null, 2)}\n`;
    if (existsSync(path) && (object.kind === 'VirtualService' || readFileSync(path, 'utf8') === text)) continue;
    writeIstioObject(configDir, file, object);
    written.push(file);
  }
  return written;
}

/** The stack's Istio plane, as stack.json names it: istiod's config folder and debug URL. */
export interface PlaneHandle {
  readonly config: string;
  readonly debug: string;
}

/** What the plane did with a route change: the xDS clients istiod pushed the new routes to, each of which ACKed them. */
export interface PlaneApplied {
  readonly ackedBy: readonly string[];
  readonly waitedMs: number;
}

/** The plane did not apply a route change (istiod away or not taking it, a client NACKing it, or not answering): the previous routes were put back. */
export class PlaneRouteError extends Error {
  override name = 'PlaneRouteError';
}

/** The annotation that tells one write of a VirtualService from another in istiod's configz. */
export const APPLIED_ANNOTATION = 'flatline.dev/applied';

/** The VirtualService file of a host on the plane. */
export function virtualServiceFile(service: PlaneHost): string {
  return `virtualservice-${service}.yaml`;
}

/** The VirtualService of service now in the plane's folder (undefined when there is none). */
export function planeVirtualService(configDir: string, service: PlaneHost): IstioObject | undefined {
  const path = join(configDir, virtualServiceFile(service));
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as IstioObject) : undefined;
}

const routesOf = (c: SyncStatus | undefined) => c?.resources?.[ROUTE_CONFIGURATION];

/**
 * Replaces service's VirtualService on the plane, as `kubectl apply` does on a
 * cluster, and waits (at most timeoutMs) until the plane applied it: istiod
 * holds it (its configz shows this write's stamp), every xDS client it then
 * sent new routes ACKed them, and each client of `expect` (the ones that dial
 * the service, such as ingestion-0.flatline) is among them. A client NACKing
 * the routes, istiod not answering or not taking the file, or an expected
 * client not getting them is a PlaneRouteError, and the previous file is put
 * back: a fault the plane did not apply must never look applied.
 */
export async function applyPlaneRoute(plane: PlaneHandle, service: PlaneHost, object: IstioObject, expect: readonly string[], timeoutMs = 15000): Promise<PlaneApplied> {
  const started = Date.now();
  const file = virtualServiceFile(service);
  const path = join(plane.config, file);
  let before: SyncStatus[];
  try {
    before = await fetchSyncz(plane.debug);
  } catch (err) {
    throw new PlaneRouteError(`istiod does not answer at ${plane.debug} (${(err as Error).message}): nothing was applied; is the stack up (flatline status)?`, { cause: err });
  }
  const sentBefore = new Map(before.map((c) => [c.proxy, routesOf(c)?.sent]));
  const previous = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  const stamp = `${new Date().toISOString()} ${randomBytes(4).toString('hex')}`;
  const metadata = object.metadata as IstioObject['metadata'] & { annotations?: Record<string, string> };
  writeIstioObject(plane.config, file, { ...object, metadata: { ...metadata, annotations: { ...(metadata.annotations ?? {}), [APPLIED_ANNOTATION]: stamp } } });
  const restore = (): void => {
    if (previous === undefined) return rmSync(path, { force: true });
    const tmp = join(plane.config, `.${file}.${process.pid}.restore.tmp`);
    writeFileSync(tmp, previous);
    renameSync(tmp, path);
  };
  const fail = (message: string, cause?: unknown): never => {
    restore();
    throw new PlaneRouteError(`${message}; the previous routes of ${service} are back`, cause === undefined ? undefined : { cause });
  };
  const deadline = started + timeoutMs;
  let held = false;
  let waiting = 'istiod to take the file';
  // Once everything looks applied, look again after a quiet moment: a push for another reason may have come first.
  let settledOnce = false;
  while (Date.now() < deadline) {
    try {
      if (!held) {
        held = (await fetchConfigz(plane.debug)).some(
          (o) => o.kind === 'VirtualService' && o.metadata.name === object.metadata.name && o.metadata.namespace === object.metadata.namespace && (o.metadata['annotations'] as Record<string, string> | undefined)?.[APPLIED_ANNOTATION] === stamp,
        );
      }
      if (held) {
        const now = await fetchSyncz(plane.debug);
        const pushed = now.filter((c) => routesOf(c)?.sent !== undefined && routesOf(c)?.sent !== sentBefore.get(c.proxy));
        const nacked = pushed.find((c) => routesOf(c)!.sent !== routesOf(c)!.acked && routesOf(c)!.lastError !== undefined);
        if (nacked !== undefined) fail(`${nacked.proxy} rejected (NACKed) the routes istiod pushed: ${routesOf(nacked)!.lastError}`);
        const pending = pushed.filter((c) => routesOf(c)!.sent !== routesOf(c)!.acked).map((c) => c.proxy);
        const missing = expect.filter((name) => !pushed.some((c) => c.proxy === name));
        waiting = pending.length > 0 ? `${pending.join(', ')} to answer the routes istiod pushed` : `istiod to push the routes to ${missing.join(', ')}`;
        if (pending.length === 0 && missing.length === 0) {
          if (settledOnce) return { ackedBy: pushed.map((c) => c.proxy).sort(), waitedMs: Date.now() - started };
          settledOnce = true;
          await sleep(300);
          continue;
        }
      }
    } catch (err) {
      if (err instanceof PlaneRouteError) throw err;
      fail(`istiod stopped answering at ${plane.debug} (${err instanceof Error ? err.message : String(err)})`, err);
    }
    settledOnce = false;
    await sleep(50);
  }
  return fail(`the plane did not apply the routes in ${Math.round(timeoutMs / 1000)} s: still waiting for ${waiting}`);
}
