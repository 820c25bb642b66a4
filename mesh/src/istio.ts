/**
 * The Istio plane: a fault declaration rendered as Istio would need it — a
 * VirtualService with the same name as the baseline route it replaces
 * (Bookinfo's pattern), the faulted routes first (each with an explicit
 * percentage and no timeout or retries, which Istio ignores on a faulted
 * route), the baseline route last unless a fault already takes every
 * request. planOf() reads a rendered VirtualService back into declarations,
 * so tests can hold both planes equal.
 *
 * Device traffic: Istio can fault only the HTTP it reads, so on the cluster
 * the poller speaks plain HTTP to its sidecar (the devices Service port is
 * named http-…) and one DestinationRule (devicesDestinationRule) makes that
 * sidecar originate TLS to the simulator's own HTTPS port, verified with the
 * device CA. The simulator's sidecar does not intercept that port (it would
 * expect mTLS), so no ServiceEntry is needed: the host is the in-mesh Service.
 */
import { DestinationRule } from '@kubernetes-models/istio/networking.istio.io/v1beta1/DestinationRule';
import { VirtualService } from '@kubernetes-models/istio/networking.istio.io/v1beta1/VirtualService';
import { declareFault, HOSTS, type Fault, type Host } from './fault.ts';

/** Where the services live on the cluster. */
export interface MeshSettings {
  readonly namespace: string;
  /**
   * The device gateway's host name and port: the simulator's Service, whose
   * port is HTTP to the client sidecar and HTTPS on the wire.
   */
  readonly devicesHost: string;
  readonly devicesPort: number;
  /**
   * The CA file the ingestion sidecar trusts when it originates TLS to the
   * device gateway: a path inside the istio-proxy container (the pod mounts
   * it there with the sidecar.istio.io/userVolumeMount annotation).
   */
  readonly devicesCaFile: string;
}

/** Defaults of the flatline charts. */
export const DEFAULT_MESH: MeshSettings = {
  namespace: 'flatline',
  devicesHost: 'devices.flatline.svc.cluster.local',
  devicesPort: 8443,
  devicesCaFile: '/etc/flatline/devices-ca/ca.pem',
};

/**
 * The RDS name a client of Istio's grpc generator asks for the routes of the
 * devices host (`outbound|<port>||<host>`): istiod answers it with the
 * virtual hosts an Envoy sidecar of the same identity gets for that port.
 */
export function devicesRouteName(s: MeshSettings = DEFAULT_MESH): string {
  return `outbound|${s.devicesPort}||${s.devicesHost}`;
}

/** The DNS name a host's VirtualService routes. */
export function hostName(host: Host, s: MeshSettings): string {
  return host === 'devices' ? s.devicesHost : `${host}.${s.namespace}.svc.cluster.local`;
}

/** Labels of every flatline route and rule. */
const LABELS = { 'app.kubernetes.io/part-of': 'flatline' } as const;

/** Where a host's routes go (the devices Service has more than one port: name the device API's). */
function destinationOf(host: Host, s: MeshSettings) {
  return [{ destination: { host: hostName(host, s), ...(host === 'devices' ? { port: { number: s.devicesPort } } : {}) } }];
}

/**
 * The route every request takes when no fault applies. Retries are off:
 * each caller retries in the application where it is safe (the forwarder's
 * Append with backoff, the poller on its next turn, STYLE rule 6), and
 * Istio's default retry policy would multiply those attempts.
 */
function baselineHttpRoute(host: Host, s: MeshSettings) {
  return { name: 'baseline', route: destinationOf(host, s), retries: { attempts: 0 } };
}

/** The baseline VirtualService of a host (what `fault off --kube` restores). */
export function baselineVirtualService(host: Host, s: MeshSettings): VirtualService {
  return new VirtualService({
    metadata: { name: host, namespace: s.namespace, labels: { ...LABELS, 'flatline.dev/route': 'baseline' } },
    spec: { hosts: [hostName(host, s)], http: [baselineHttpRoute(host, s)] },
  });
}

/**
 * The VirtualService that replaces host's baseline while faults (all for
 * that host) are on. A fault without a match takes every request: the
 * baseline route would then never be used (istioctl: IST0130), so it is
 * left out and the faulted route is the last, catch-all one. Fault routes
 * keep their declared order, as the local injector applies the first fault
 * that matches; a fault listed after a catch-all one stays declared (so
 * `fault off` of the first can restore it) but, in both planes alike, takes
 * no request while the first is on.
 */
export function faultVirtualService(host: Host, faults: readonly Fault[], s: MeshSettings): VirtualService {
  if (faults.some((f) => f.host !== host)) throw new Error(`every fault must target ${host}`);
  const catchAll = faults.some((f) => f.match.length === 0);
  return new VirtualService({
    metadata: { name: host, namespace: s.namespace, labels: { ...LABELS, 'flatline.dev/route': 'fault' } },
    spec: {
      hosts: [hostName(host, s)],
      http: [
        // No timeout and no retries here: Istio ignores both on a faulted route.
        ...faults.map((f) => ({
          name: `fault-${f.name}`,
          ...(f.match.length > 0 ? { match: f.match.map((m) => ({ ...(m.uri ? { uri: m.uri } : {}), ...(m.headers ? { headers: m.headers } : {}) })) } : {}),
          fault: f.fault,
          route: destinationOf(host, s),
        })),
        ...(catchAll ? [] : [baselineHttpRoute(host, s)]),
      ],
    },
  });
}

/**
 * The one DestinationRule of the device host: on the device API's port the
 * client sidecar originates TLS (SIMPLE) to the simulator, presenting the
 * host as SNI and accepting only a certificate for that name signed by the
 * device CA. Its other ports keep Istio's automatic mTLS. Exported to this
 * namespace only: the CA file exists in the ingestion sidecar alone.
 */
export function devicesDestinationRule(s: MeshSettings): DestinationRule {
  return new DestinationRule({
    metadata: { name: 'devices', namespace: s.namespace, labels: { ...LABELS, 'app.kubernetes.io/name': 'devices', 'app.kubernetes.io/component': 'devices' } },
    spec: {
      host: s.devicesHost,
      exportTo: ['.'],
      trafficPolicy: {
        portLevelSettings: [
          {
            port: { number: s.devicesPort },
            tls: { mode: 'SIMPLE', caCertificates: s.devicesCaFile, sni: s.devicesHost, subjectAltNames: [s.devicesHost] },
          },
        ],
      },
    },
  });
}

/**
 * The traffic policy of a gRPC service's callers, both planes alike:
 * connection pool and outlier detection. At most half the endpoints are
 * ejected: when MongoDB is away every storage replica answers UNAVAILABLE,
 * and ejecting them all would only add "no healthy upstream" to an outage
 * the callers already handle. tls: ISTIO_MUTUAL on a cluster (the sidecars'
 * mTLS); DISABLE on the local Istio plane, where no CA issues certificates
 * and proxyless clients dial plaintext.
 */
export function grpcDestinationRule(host: 'storage' | 'query', s: MeshSettings, tls: 'ISTIO_MUTUAL' | 'DISABLE', labels: Record<string, string> = {}): DestinationRule {
  return new DestinationRule({
    metadata: { name: host, namespace: s.namespace, labels: { ...labels, ...LABELS } },
    spec: {
      host: hostName(host, s),
      trafficPolicy: {
        tls: { mode: tls },
        connectionPool: {
          tcp: { maxConnections: 100, connectTimeout: '2s' },
          // gRPC multiplexes calls on few HTTP/2 connections: bound requests, not connections.
          http: { http2MaxRequests: 1000, http1MaxPendingRequests: 256, maxRequestsPerConnection: 0 },
        },
        outlierDetection: { consecutive5xxErrors: 5, interval: '5s', baseEjectionTime: '30s', maxEjectionPercent: 50 },
      },
    },
  });
}

/** The host a VirtualService is for (by its name). */
function hostOf(vs: VirtualService): Host {
  const name = vs.metadata?.name;
  const host = HOSTS.find((h) => h === name);
  if (host === undefined) throw new Error(`VirtualService ${name} is not a flatline route`);
  return host;
}

/** Reads the faults a rendered VirtualService applies back into checked declarations. */
export function planOf(vs: VirtualService | Record<string, unknown>): Fault[] {
  const v = vs instanceof VirtualService ? vs : new VirtualService(vs as ConstructorParameters<typeof VirtualService>[0]);
  const host = hostOf(v);
  return (v.spec?.http ?? [])
    .filter((r) => r.fault !== undefined)
    .map((r) =>
      declareFault({
        name: (r.name ?? '').replace(/^fault-/, ''),
        host,
        match: (r.match ?? []).map((m) => ({ ...(m.uri ? { uri: m.uri } : {}), ...(m.headers ? { headers: m.headers } : {}) })),
        fault: r.fault,
      }),
    );
}
