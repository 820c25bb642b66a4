/**
 * The Istio plane: a fault declaration rendered as Istio would need it — a
 * VirtualService with the same name as the baseline route it replaces
 * (Bookinfo's pattern), the faulted routes first (each with an explicit
 * percentage and no timeout or retries, which Istio ignores on a faulted
 * route), the baseline route last. Device traffic also needs a ServiceEntry
 * and a DestinationRule that originate TLS, so that the client sidecar sees
 * the plain HTTP it has to fault. planOf() reads a rendered VirtualService
 * back into declarations, so tests can hold both planes equal.
 */
import { DestinationRule } from '@kubernetes-models/istio/networking.istio.io/v1beta1/DestinationRule';
import { ServiceEntry } from '@kubernetes-models/istio/networking.istio.io/v1beta1/ServiceEntry';
import { VirtualService } from '@kubernetes-models/istio/networking.istio.io/v1beta1/VirtualService';
import { declareFault, HOSTS, type Fault, type Host } from './fault.ts';

/** Where the services live on the cluster. */
export interface MeshSettings {
  readonly namespace: string;
  /** The device gateway's host name and port (a third party: outside the mesh). */
  readonly devicesHost: string;
  readonly devicesPort: number;
  /** The CA file the sidecar trusts when it originates TLS to the device gateway. */
  readonly devicesCaFile: string;
}

/** Defaults of the flatline charts. */
export const DEFAULT_MESH: MeshSettings = {
  namespace: 'flatline',
  devicesHost: 'devices.flatline.svc.cluster.local',
  devicesPort: 8443,
  devicesCaFile: '/etc/flatline/devices-ca/ca.pem',
};

/** The DNS name a host's VirtualService routes. */
export function hostName(host: Host, s: MeshSettings): string {
  return host === 'devices' ? s.devicesHost : `${host}.${s.namespace}.svc.cluster.local`;
}

function baselineHttpRoute(host: Host, s: MeshSettings) {
  return { name: 'baseline', route: [{ destination: { host: hostName(host, s), ...(host === 'devices' ? { port: { number: s.devicesPort } } : {}) } }] };
}

/** The baseline VirtualService of a host (what `fault off --kube` restores). */
export function baselineVirtualService(host: Host, s: MeshSettings): VirtualService {
  return new VirtualService({
    metadata: { name: host, namespace: s.namespace, labels: { 'app.kubernetes.io/part-of': 'flatline', 'flatline.dev/route': 'baseline' } },
    spec: { hosts: [hostName(host, s)], http: [baselineHttpRoute(host, s)] },
  });
}

/** The VirtualService that replaces host's baseline while faults (all for that host) are on. */
export function faultVirtualService(host: Host, faults: readonly Fault[], s: MeshSettings): VirtualService {
  if (faults.some((f) => f.host !== host)) throw new Error(`every fault must target ${host}`);
  const baseline = baselineHttpRoute(host, s);
  return new VirtualService({
    metadata: { name: host, namespace: s.namespace, labels: { 'app.kubernetes.io/part-of': 'flatline', 'flatline.dev/route': 'fault' } },
    spec: {
      hosts: [hostName(host, s)],
      http: [
        ...faults.map((f) => ({
          name: `fault-${f.name}`,
          ...(f.match.length > 0 ? { match: f.match.map((m) => ({ ...(m.uri ? { uri: m.uri } : {}), ...(m.headers ? { headers: m.headers } : {}) })) } : {}),
          fault: f.fault,
          route: baseline.route,
        })),
        baseline,
      ],
    },
  });
}

/** The ServiceEntry and DestinationRule that let the sidecar speak HTTP to the app and TLS to the device gateway. */
export function deviceEgress(s: MeshSettings): [ServiceEntry, DestinationRule] {
  const labels = { 'app.kubernetes.io/part-of': 'flatline' };
  return [
    new ServiceEntry({
      metadata: { name: 'devices', namespace: s.namespace, labels },
      spec: {
        hosts: [s.devicesHost],
        location: 'MESH_EXTERNAL',
        resolution: 'DNS',
        ports: [{ number: s.devicesPort, name: 'http-devices', protocol: 'HTTP' }],
      },
    }),
    new DestinationRule({
      metadata: { name: 'devices', namespace: s.namespace, labels },
      spec: {
        host: s.devicesHost,
        trafficPolicy: { portLevelSettings: [{ port: { number: s.devicesPort }, tls: { mode: 'SIMPLE', caCertificates: s.devicesCaFile, sni: s.devicesHost } }] },
      },
    }),
  ];
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
