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
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { baselineVirtualService, DEFAULT_MESH, grpcDestinationRule, hostName, type MeshSettings } from '@flatline/mesh';
import { writeIstioObject, type IstioObject } from './istiod.ts';

/** The services proxyless clients reach through the plane. */
export const PLANE_SERVICES = ['storage', 'query'] as const;
export type PlaneService = (typeof PLANE_SERVICES)[number];

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

/** Every object of the plane, by file name, for these endpoints. */
export function planeObjects(endpoints: Readonly<Record<PlaneService, readonly PlaneEndpoint[]>>, s: MeshSettings = DEFAULT_MESH): Map<string, IstioObject> {
  const out = new Map<string, IstioObject>();
  for (const service of PLANE_SERVICES) {
    out.set(`serviceentry-${service}.yaml`, serviceEntry(service, endpoints[service], s));
    out.set(`virtualservice-${service}.yaml`, baselineVirtualService(service, s).toJSON() as unknown as IstioObject);
    out.set(`destinationrule-${service}.yaml`, grpcDestinationRule(service, s, 'DISABLE').toJSON() as unknown as IstioObject);
  }
  return out;
}

/**
 * Writes the plane's objects into configDir, only those whose content
 * changed; returns the files written. A VirtualService is written only where
 * there is none: once there, it is the fault toggles' (a fault's route
 * replaces the baseline of the same name, as `fault on --kube` does).
 */
export function syncPlane(configDir: string, endpoints: Readonly<Record<PlaneService, readonly PlaneEndpoint[]>>, s: MeshSettings = DEFAULT_MESH): string[] {
  mkdirSync(configDir, { recursive: true });
  const written: string[] = [];
  for (const [file, object] of planeObjects(endpoints, s)) {
    const path = join(configDir, file);
    const text = `${JSON.stringify(object, null, 2)}\n`;
    if (existsSync(path) && (object.kind === 'VirtualService' || readFileSync(path, 'utf8') === text)) continue;
    writeIstioObject(configDir, file, object);
    written.push(file);
  }
  return written;
}
