/**
 * The Toxiproxy workload (`npm run synth -- --toxiproxy`): a ConfigMap with
 * the proxies of CLUSTER_LINKS, which toxiproxy-server creates at start
 * (-config), a Deployment of one replica, the Service the database links
 * dial, a budget and a NetworkPolicy. Its AuthorizationPolicy is in
 * mesh-policy-chart.ts, with the others.
 *
 * One replica, on purpose: toxics live in the process that serves the API,
 * so a second replica would carry half the connections with none of the
 * toxics `flatline fault on … --kube` added through a port-forward to one
 * pod. A restart loses the toxics (never the proxies: they come from the
 * ConfigMap).
 *
 * The pod is in the mesh. The database ports are mTLS from the clients'
 * sidecars and admitted per port to one service account each (storage-db
 * to storage, …). The device port carries the TLS that ingestion's sidecar
 * originates for the simulator: Toxiproxy's sidecar leaves that port alone
 * inbound (a NetworkPolicy admits ingestion only, as for the simulator) and
 * port 8443 outbound, so the bytes reach the simulator as they left
 * ingestion. The API port is in no Service and no ALLOW: only
 * `kubectl port-forward` (which needs pods/portforward in the namespace)
 * reaches it. /metrics shares that port, so Prometheus is not admitted.
 */
import { type Chart } from 'cdk8s';
import { addObject, containerSecurity, disruptionBudget, labelsOf, meta, podSecurity, selectorOf, serviceAccount, spreadOf, type Container, type Probe } from './k8s.ts';
import { MONGO_CLIENT_LABEL } from './mongo-chart.ts';
import { PORTS, type Settings } from './settings.ts';
import { CLUSTER_LINKS, clusterLink, DB_CLUSTER_LINKS, TOXIPROXY, toxiproxyConfig } from './toxiproxy.ts';

const NAME = TOXIPROXY.name;
const VERSION = TOXIPROXY.image.slice(TOXIPROXY.image.lastIndexOf(':') + 1);

/** The proxy port of the device link: outside the sidecar's interception, guarded by the NetworkPolicy. */
export function deviceLinkPort(): number {
  return clusterLink('ingestion-devices').port;
}

function apiProbe(failureThreshold: number): Probe {
  return { httpGet: { path: '/version', port: TOXIPROXY.apiPort }, periodSeconds: 5, timeoutSeconds: 2, failureThreshold };
}

function deployment(s: Settings) {
  const container: Container = {
    name: NAME,
    image: TOXIPROXY.image,
    imagePullPolicy: 'IfNotPresent',
    command: ['/toxiproxy'],
    // -proxy-metrics: bytes per proxy at /metrics, what `flatline fault touched --kube` reads.
    args: ['-host=0.0.0.0', `-port=${TOXIPROXY.apiPort}`, `-config=${TOXIPROXY.configDir}/${TOXIPROXY.configFile}`, '-proxy-metrics'],
    ports: [{ name: 'http-api', containerPort: TOXIPROXY.apiPort, protocol: 'TCP' }, ...CLUSTER_LINKS.map((l) => ({ name: `tcp-${l.port}`, containerPort: l.port, protocol: 'TCP' as const }))],
    readinessProbe: apiProbe(2),
    livenessProbe: apiProbe(6),
    resources: { requests: { cpu: '50m', memory: '32Mi' }, limits: { cpu: '1', memory: '256Mi' } },
    // The image is FROM scratch with a static binary: any user runs it, and it writes nothing.
    securityContext: containerSecurity(s.uid),
    volumeMounts: [{ name: 'config', mountPath: TOXIPROXY.configDir, readOnly: true }],
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(NAME, 'chaos', s),
    spec: {
      replicas: 1,
      selector: { matchLabels: selectorOf(NAME) },
      // One replica (see the module comment): the old pod goes before the new one starts.
      strategy: { type: 'Recreate' },
      template: {
        metadata: {
          labels: { ...labelsOf(NAME, 'chaos'), 'app.kubernetes.io/version': VERSION, ...MONGO_CLIENT_LABEL },
          annotations: {
            'proxy.istio.io/config': '{"holdApplicationUntilProxyStarts":true}',
            'traffic.sidecar.istio.io/excludeInboundPorts': String(deviceLinkPort()),
            'traffic.sidecar.istio.io/excludeOutboundPorts': String(PORTS.devices.https),
          },
        },
        spec: {
          serviceAccountName: NAME,
          automountServiceAccountToken: false,
          securityContext: podSecurity(s.uid),
          topologySpreadConstraints: spreadOf(NAME),
          containers: [container],
          volumes: [{ name: 'config', configMap: { name: NAME, defaultMode: 0o444 } }],
        },
      },
    },
  };
}

/**
 * Only ingestion reaches the device link's port (its sidecar does not see
 * it); every other port is admitted here and guarded by the mesh, as
 * devicesNetworkPolicy does for the simulator.
 */
function networkPolicy(s: Settings) {
  const port = deviceLinkPort();
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: meta(NAME, 'chaos', s),
    spec: {
      podSelector: { matchLabels: selectorOf(NAME) },
      policyTypes: ['Ingress'],
      ingress: [
        { from: [{ podSelector: { matchLabels: selectorOf(clusterLink('ingestion-devices').client) } }], ports: [{ protocol: 'TCP', port }] },
        {
          ports: [
            { protocol: 'TCP', port: 1, endPort: port - 1 },
            { protocol: 'TCP', port: port + 1, endPort: 65535 },
          ],
        },
      ],
    },
  };
}

/** Adds the Toxiproxy workload's objects to chart. */
export function addToxiproxy(chart: Chart, s: Settings): void {
  addObject(chart, serviceAccount(NAME, 'chaos', s));
  addObject(chart, { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(NAME, 'chaos', s), data: { [TOXIPROXY.configFile]: toxiproxyConfig(s) } });
  addObject(chart, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(NAME, 'chaos', s),
    spec: {
      selector: selectorOf(NAME),
      // The database links; the device link is reached as the Service devices, the API by port-forward only.
      ports: DB_CLUSTER_LINKS.map((l) => ({ name: `tcp-${l.link}`, port: l.port, targetPort: l.port, protocol: 'TCP' })),
    },
  });
  addObject(chart, deployment(s));
  addObject(chart, disruptionBudget(NAME, 'chaos', s));
  addObject(chart, networkPolicy(s));
}
