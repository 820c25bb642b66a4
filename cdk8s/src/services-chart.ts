/**
 * flatline's four services on the cluster, all from one image: storage and
 * query (Deployments), ingestion (a StatefulSet: see ingestionStatefulSet)
 * and the device simulator (a Deployment inside the mesh). Each has its
 * ServiceAccount, Service, PodDisruptionBudget, probes, resources and the
 * hardened security context; the environment carries the variables each
 * service's src/config.ts reads.
 */
import { Chart, type App } from 'cdk8s';
import { MONGO_CLIENT_LABEL } from './mongo-chart.ts';
import { CONFIG, mongoUriKey } from './secrets-chart.ts';
import {
  addObject,
  containerSecurity,
  disruptionBudget,
  emptyDir,
  labelsOf,
  meta,
  podSecurity,
  selectorOf,
  serviceAccount,
  spreadOf,
  type Container,
  type EnvVar,
  type Probe,
  type Volume,
} from './k8s.ts';
import { imageOf, meshOf, PORTS, serviceHost, type Service, type Settings } from './settings.ts';
import { clusterLink, dbLinkOf, DEVICES_DIRECT, TOXIPROXY } from './toxiproxy.ts';
import { addToxiproxy } from './toxiproxy-objects.ts';

/** Where the pods see their files. */
export const PATHS = {
  app: '/app',
  tmp: '/tmp',
  ingestionState: '/var/lib/flatline/ingestion',
  devicesState: '/var/lib/flatline/devices',
  credentials: '/etc/flatline/devices-credentials',
  caKey: '/etc/flatline/devices-ca-key',
  epoch: '/etc/flatline/devices-epoch',
} as const;

/** Annotations of every meshed pod. */
const MESHED_POD = {
  // The services dial MongoDB and each other at start: let the sidecar be ready first.
  'proxy.istio.io/config': '{"holdApplicationUntilProxyStarts":true}',
};

/** Seconds the kubelet waits after SIGTERM: the services' own grace (FLATLINE_SHUTDOWN_GRACE_MS) plus margin. */
const SHUTDOWN_GRACE_MS = 5000;
const TERMINATION_GRACE_SECONDS = 20;

/**
 * The folder the device CA ConfigMap is mounted at: where the mesh settings
 * say the CA file is (the TLS-originating DestinationRule reads that path
 * in ingestion's sidecar; the simulator's init container copies it).
 */
function caDirOf(s: Settings): string {
  const file = meshOf(s).devicesCaFile;
  const slash = file.lastIndexOf('/');
  if (file.slice(slash + 1) !== CONFIG.deviceCa.key) throw new Error(`the mesh's devicesCaFile must be named ${CONFIG.deviceCa.key}, got ${file}`);
  return file.slice(0, slash);
}

/** Bytes of a Kubernetes quantity in binary units (1Gi, 512Mi), the only ones the settings use. */
export function quantityBytes(quantity: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|Ti)$/.exec(quantity);
  if (m === null) throw new Error(`expected a quantity such as 1Gi or 512Mi, got ${JSON.stringify(quantity)}`);
  return Number(m[1]) * 1024 ** (['Ki', 'Mi', 'Gi', 'Ti'].indexOf(m[2]!) + 1);
}

/**
 * The outbox's bound: three quarters of its volume. The rest is for what
 * the bound does not count (SQLite's write-ahead log, free pages of deleted
 * rows), so the bound, and NOT_SERVING before it, comes before a full disk.
 */
function outboxMaxBytes(s: Settings): number {
  return Math.floor(quantityBytes(s.ingestionStorage) * 0.75);
}

function env(name: string, value: string | number): EnvVar {
  return { name, value: String(value) };
}

function fromSecret(name: string, secret: string, key: string): EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: secret, key } } };
}

/** The app user's connection string for service: every member, or with Toxiproxy its own link's proxy. */
function mongoUri(service: 'storage' | 'query' | 'ingestion', s: Settings): EnvVar {
  return fromSecret('FLATLINE_MONGODB_URI', CONFIG.mongoApp.secret, s.toxiproxy ? mongoUriKey(dbLinkOf(service)) : CONFIG.mongoApp.uri);
}

/** Ready only while the service's gRPC health says SERVING (storage and query: while MongoDB answers). */
function grpcReadiness(port: number): Probe {
  return { grpc: { port }, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 2 };
}

/**
 * Alive while the process answers /metrics. Not gRPC health: storage and
 * query report NOT_SERVING while MongoDB is away, and a liveness probe on
 * that would restart healthy pods in a loop during a database outage (H3).
 */
function metricsLiveness(port: number): Probe {
  return { httpGet: { path: '/metrics', port }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6 };
}

/** tsx compiles the TypeScript at start: give a slow node a minute before liveness counts. */
function metricsStartup(port: number): Probe {
  return { httpGet: { path: '/metrics', port }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 30 };
}

function serviceContainer(service: Service, s: Settings, extra: Pick<Container, 'env' | 'ports' | 'readinessProbe' | 'livenessProbe' | 'startupProbe' | 'volumeMounts'>): Container {
  return {
    name: service,
    image: imageOf(s),
    imagePullPolicy: s.image.pullPolicy,
    // How the local stack runs each service (stack/src/components.ts).
    command: ['node', '--import', 'tsx', `services/${service}/src/main.ts`],
    workingDir: PATHS.app,
    resources: s.resources[service],
    securityContext: containerSecurity(s.uid),
    ...extra,
    env: [env('FLATLINE_LOG_LEVEL', s.logLevel), env('FLATLINE_SHUTDOWN_GRACE_MS', SHUTDOWN_GRACE_MS), ...(extra.env ?? [])],
    // tsx keeps its compile cache in the temporary folder.
    volumeMounts: [{ name: 'tmp', mountPath: PATHS.tmp }, ...(extra.volumeMounts ?? [])],
  };
}

function podTemplate(
  name: string,
  component: string,
  s: Settings,
  containers: Container[],
  volumes: Volume[],
  options: { annotations?: Record<string, string>; labels?: Record<string, string>; initContainers?: Container[] } = {},
) {
  return {
    // app.kubernetes.io/name and /version are the labels Istio's telemetry reads.
    metadata: { labels: { ...labelsOf(name, component), 'app.kubernetes.io/version': s.image.tag, ...options.labels }, annotations: { ...MESHED_POD, ...options.annotations } },
    spec: {
      serviceAccountName: name,
      automountServiceAccountToken: false,
      securityContext: podSecurity(s.uid),
      terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
      topologySpreadConstraints: spreadOf(name),
      ...(options.initContainers ? { initContainers: options.initContainers } : {}),
      containers,
      volumes: [emptyDir('tmp', '256Mi'), ...volumes],
    },
  };
}

function deployment(name: string, component: string, s: Settings, template: ReturnType<typeof podTemplate>) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(name, component, s),
    spec: {
      replicas: s.replicas,
      selector: { matchLabels: selectorOf(name) },
      // Never below the replica count during a rollout.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template,
    },
  };
}

/** A Service whose gRPC port Istio recognises (named grpc-…, appProtocol grpc). */
function grpcService(name: string, s: Settings, ports: { grpc: number; metrics: number }, headless = false) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(name, name, s),
    spec: {
      ...(headless ? { clusterIP: 'None' } : {}),
      selector: selectorOf(name),
      ports: [
        { name: `grpc-${name}`, port: ports.grpc, targetPort: ports.grpc, protocol: 'TCP', appProtocol: 'grpc' },
        { name: 'http-metrics', port: ports.metrics, targetPort: ports.metrics, protocol: 'TCP', appProtocol: 'http' },
      ],
    },
  };
}

function ports(p: Readonly<Record<string, number>>): Container['ports'] {
  return Object.entries(p).map(([name, containerPort]) => ({ name: name === 'metrics' ? 'http-metrics' : name, containerPort, protocol: 'TCP' as const }));
}

/** storage or query: a Deployment reading MongoDB through the app user's URI. */
function databaseService(chart: Chart, service: 'storage' | 'query', s: Settings): void {
  const p = PORTS[service];
  const upper = service.toUpperCase();
  const container = serviceContainer(service, s, {
    ports: ports({ grpc: p.grpc, metrics: p.metrics }),
    env: [
      env(`FLATLINE_${upper}_LISTEN`, `0.0.0.0:${p.grpc}`),
      env(`FLATLINE_${upper}_METRICS_LISTEN`, `0.0.0.0:${p.metrics}`),
      mongoUri(service, s),
      // Without it query signs page tokens with its public dev key (anyone could forge them).
      ...(service === 'query' ? [fromSecret('FLATLINE_QUERY_PAGE_TOKEN_KEY', CONFIG.queryPageToken.secret, CONFIG.queryPageToken.key)] : []),
    ],
    readinessProbe: grpcReadiness(p.grpc),
    livenessProbe: metricsLiveness(p.metrics),
    startupProbe: metricsStartup(p.metrics),
  });
  addObject(chart, serviceAccount(service, service, s));
  addObject(chart, grpcService(service, s, p));
  addObject(chart, deployment(service, service, s, podTemplate(service, service, s, [container], [], { labels: MONGO_CLIENT_LABEL })));
  addObject(chart, disruptionBudget(service, service, s));
}

/**
 * Ingestion is a StatefulSet with a volume per replica, not a Deployment.
 * Each replica writes every reading to its SQLite outbox before anything
 * else and deletes it only once storage acknowledged it; the outbox is what
 * makes "no measurement lost" (H3) hold. With a Deployment the outbox would
 * live in an emptyDir, and draining a node (H2) would delete the pod and,
 * with it, every reading fetched but not yet stored. With a StatefulSet the
 * replica comes back under the same name (FLATLINE_INGESTION_ID, the lease
 * owner) with the same volume and drains what it kept. Meanwhile the other
 * replica takes over its flats once its leases expire, so freshness holds
 * even where the volume is bound to the drained node (local-path volumes)
 * and the pod has to wait for that node to return.
 */
function ingestionStatefulSet(chart: Chart, s: Settings): void {
  const p = PORTS.ingestion;
  const mesh = meshOf(s);
  const caDir = caDirOf(s);
  const container = serviceContainer('ingestion', s, {
    ports: ports({ grpc: p.grpc, metrics: p.metrics }),
    env: [
      { name: 'FLATLINE_INGESTION_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      // With the pod's ordinal (ingestion-<n>), each replica's share of the flats while the lease database is away.
      env('FLATLINE_INGESTION_REPLICAS', s.replicas),
      env('FLATLINE_INGESTION_LISTEN', `0.0.0.0:${p.grpc}`),
      env('FLATLINE_INGESTION_METRICS_LISTEN', `0.0.0.0:${p.metrics}`),
      env('FLATLINE_INGESTION_STATE_DIR', PATHS.ingestionState),
      env('FLATLINE_OUTBOX_MAX_BYTES', outboxMaxBytes(s)),
      // Plain HTTP to the sidecar, which applies the device faults (it can
      // read the requests) and originates TLS to the simulator (the devices
      // DestinationRule, flatline-4-mesh-policy): no CA file for the app.
      env('FLATLINE_DEVICES_URL', `http://${mesh.devicesHost}:${mesh.devicesPort}`),
      env('FLATLINE_DEVICES_CREDENTIALS', `${PATHS.credentials}/${CONFIG.deviceCredentials.key}`),
      env('FLATLINE_STORAGE_ADDR', `${serviceHost('storage', s)}:${PORTS.storage.grpc}`),
      // On the cluster Istio applies the faults; the in-process injector follows a file that never exists.
      env('FLATLINE_FAULTS_FILE', '/etc/flatline/no-local-faults.json'),
      mongoUri('ingestion', s),
      env('FLATLINE_POLL_INTERVAL_MS', s.pollIntervalMs),
      env('FLATLINE_POLL_TIMEOUT_MS', s.pollTimeoutMs),
    ],
    readinessProbe: grpcReadiness(p.grpc),
    livenessProbe: metricsLiveness(p.metrics),
    startupProbe: metricsStartup(p.metrics),
    volumeMounts: [
      { name: 'outbox', mountPath: PATHS.ingestionState },
      { name: 'devices-credentials', mountPath: PATHS.credentials, readOnly: true },
    ],
  });
  const template = podTemplate(
    'ingestion',
    'ingestion',
    s,
    [container],
    [
      { name: 'devices-credentials', secret: { secretName: CONFIG.deviceCredentials.secret, defaultMode: 0o440 } },
      { name: 'devices-ca', configMap: { name: CONFIG.deviceCa.configMap, defaultMode: 0o444 } },
    ],
    // The sidecar verifies the simulator with the device CA (the devices DestinationRule's caCertificates):
    // the pod's devices-ca volume, mounted into istio-proxy where that rule says the file is.
    { labels: MONGO_CLIENT_LABEL, annotations: { 'sidecar.istio.io/userVolumeMount': JSON.stringify([{ name: 'devices-ca', mountPath: caDir, readOnly: true }]) } },
  );
  addObject(chart, serviceAccount('ingestion', 'ingestion', s));
  // Headless: the StatefulSet's stable pod names; nothing calls ingestion but probes and Prometheus.
  addObject(chart, grpcService('ingestion', s, p, true));
  addObject(chart, {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: meta('ingestion', 'ingestion', s),
    spec: {
      serviceName: 'ingestion',
      replicas: s.replicas,
      // Replicas share the flats through leases: no reason to start them one by one.
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: selectorOf('ingestion') },
      updateStrategy: { type: 'RollingUpdate' },
      // Deleting or scaling down the StatefulSet keeps the outboxes: they may still hold readings.
      persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
      template,
      volumeClaimTemplates: [
        {
          metadata: { name: 'outbox', labels: labelsOf('ingestion', 'ingestion') },
          spec: {
            accessModes: ['ReadWriteOnce'],
            ...(s.storageClass ? { storageClassName: s.storageClass } : {}),
            resources: { requests: { storage: s.ingestionStorage } },
          },
        },
      ],
    },
  });
  addObject(chart, disruptionBudget('ingestion', 'ingestion', s));
}

/**
 * The device simulator, inside the mesh. Its replicas must look like one
 * device gateway: they share the CA (seeded, from the Secret and the
 * ConfigMap) and the timeline (epoch.json), which an init container copies
 * into the writable state folder where the simulator expects them; each
 * replica then signs its own server certificate for the Service's names.
 */
function devicesDeployment(chart: Chart, s: Settings): void {
  const p = PORTS.devices;
  const mesh = meshOf(s);
  const caDir = caDirOf(s);
  const names = [mesh.devicesHost, `devices.${s.namespace}.svc`, `devices.${s.namespace}`, 'devices'];
  const stateMounts = [
    { name: 'state', mountPath: PATHS.devicesState },
    { name: 'devices-ca-key', mountPath: PATHS.caKey, readOnly: true },
    { name: 'devices-ca', mountPath: caDir, readOnly: true },
    { name: 'devices-epoch', mountPath: PATHS.epoch, readOnly: true },
  ];
  const init: Container = {
    name: 'state',
    image: imageOf(s),
    imagePullPolicy: s.image.pullPolicy,
    command: [
      'sh',
      '-c',
      `cp ${caDir}/${CONFIG.deviceCa.key} ${PATHS.caKey}/${CONFIG.deviceCaKey.key} ${PATHS.epoch}/${CONFIG.devicesEpoch.key} ${PATHS.devicesState}/ && chmod 600 ${PATHS.devicesState}/${CONFIG.deviceCaKey.key}`,
    ],
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
    securityContext: containerSecurity(s.uid),
    volumeMounts: stateMounts,
  };
  const container = serviceContainer('devices', s, {
    ports: ports({ https: p.https, metrics: p.metrics }),
    env: [
      env('FLATLINE_DEVICES_LISTEN', `0.0.0.0:${p.https}`),
      // The control API has no authentication: loopback only (config.ts refuses anything else); reach it with kubectl port-forward.
      env('FLATLINE_DEVICES_CONTROL_LISTEN', `127.0.0.1:${p.control}`),
      env('FLATLINE_DEVICES_METRICS_LISTEN', `0.0.0.0:${p.metrics}`),
      env('FLATLINE_DEVICES_STATE_DIR', PATHS.devicesState),
      env('FLATLINE_DEVICES_CREDENTIALS', `${PATHS.credentials}/${CONFIG.deviceCredentials.key}`),
      env('FLATLINE_DEVICES_PER_FLAT', s.devicesPerFlat),
      env('FLATLINE_DEVICES_PERIOD_MS', s.devicesPeriodMs),
      env('FLATLINE_DEVICES_TLS_NAMES', names.join(',')),
    ],
    // The device API is HTTPS with Basic auth on every path: accepting connections means the
    // credentials and the TLS material loaded. Liveness asks the plain-HTTP /metrics.
    readinessProbe: { tcpSocket: { port: p.https }, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 2 },
    livenessProbe: metricsLiveness(p.metrics),
    startupProbe: metricsStartup(p.metrics),
    volumeMounts: [{ name: 'state', mountPath: PATHS.devicesState }, { name: 'devices-credentials', mountPath: PATHS.credentials, readOnly: true }],
  });
  addObject(chart, serviceAccount('devices', 'devices', s));
  if (s.toxiproxy) addObject(chart, devicesViaToxiproxy(s));
  addObject(chart, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(s.toxiproxy ? DEVICES_DIRECT : 'devices', 'devices', s),
    spec: {
      selector: selectorOf('devices'),
      ports: [
        // HTTP to the client sidecar, so that it routes (and faults) each request; on the wire it is the
        // TLS that sidecar originates (the devices DestinationRule), which the simulator terminates itself.
        s.toxiproxy
          ? // Only Toxiproxy dials it, outside its sidecar: the TLS passes through as it left ingestion's.
            { name: 'tcp-devices', port: p.https, targetPort: p.https, protocol: 'TCP' }
          : { name: 'http-devices', port: p.https, targetPort: p.https, protocol: 'TCP', appProtocol: 'http' },
        { name: 'http-metrics', port: p.metrics, targetPort: p.metrics, protocol: 'TCP', appProtocol: 'http' },
      ],
    },
  });
  addObject(
    chart,
    deployment(
      'devices',
      'devices',
      s,
      podTemplate(
        'devices',
        'devices',
        s,
        [container],
        [
          emptyDir('state'),
          { name: 'devices-credentials', secret: { secretName: CONFIG.deviceCredentials.secret, defaultMode: 0o440 } },
          { name: 'devices-ca-key', secret: { secretName: CONFIG.deviceCaKey.secret, defaultMode: 0o440 } },
          { name: 'devices-ca', configMap: { name: CONFIG.deviceCa.configMap, defaultMode: 0o444 } },
          { name: 'devices-epoch', configMap: { name: CONFIG.devicesEpoch.configMap, defaultMode: 0o444 } },
        ],
        {
          initContainers: [init],
          // The device API's connections carry the TLS the client sidecar originates: the simulator's own
          // sidecar must not take them (it would expect mTLS there). Its other ports stay in the mesh.
          annotations: { 'traffic.sidecar.istio.io/excludeInboundPorts': String(p.https) },
        },
      ),
    ),
  );
  addObject(chart, disruptionBudget('devices', 'devices', s));
  addObject(chart, devicesNetworkPolicy(s));
}

/**
 * Only ingestion reaches the device API. Istio's AuthorizationPolicy cannot
 * say so any more (the simulator's sidecar does not see that port), so a
 * NetworkPolicy does, for that port alone: every other port of the pods
 * stays admitted here and guarded by the mesh (mTLS STRICT, the devices
 * AuthorizationPolicy). The kubelet's probes come from the node, which a
 * NetworkPolicy never blocks.
 */
function devicesNetworkPolicy(s: Settings) {
  const api = PORTS.devices.https;
  // With Toxiproxy, ingestion's device traffic arrives through its proxy: Toxiproxy is the one client.
  const client = s.toxiproxy ? TOXIPROXY.name : 'ingestion';
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: meta('devices', 'devices', s),
    spec: {
      podSelector: { matchLabels: selectorOf('devices') },
      policyTypes: ['Ingress'],
      ingress: [
        { from: [{ podSelector: { matchLabels: selectorOf(client) } }], ports: [{ protocol: 'TCP', port: api }] },
        {
          ports: [
            { protocol: 'TCP', port: 1, endPort: api - 1 },
            { protocol: 'TCP', port: api + 1, endPort: 65535 },
          ],
        },
      ],
    },
  };
}

/**
 * With Toxiproxy, the host ingestion polls (and the mesh routes, faults and
 * originates TLS for) is served by the device link's proxy; its port keeps
 * its name and number, only the pods behind it change (toxiproxy.ts).
 */
function devicesViaToxiproxy(s: Settings) {
  const p = PORTS.devices;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta('devices', 'devices', s),
    spec: {
      selector: selectorOf(TOXIPROXY.name),
      ports: [{ name: 'http-devices', port: p.https, targetPort: clusterLink('ingestion-devices').port, protocol: 'TCP', appProtocol: 'http' }],
    },
  };
}

/** The services: storage, query, ingestion and the device simulator; with settings.toxiproxy, Toxiproxy in front of MongoDB and the simulator. */
export class ServicesChart extends Chart {
  constructor(scope: App, id: string, s: Settings) {
    super(scope, id, { disableResourceNameHashes: true });
    databaseService(this, 'storage', s);
    databaseService(this, 'query', s);
    ingestionStatefulSet(this, s);
    devicesDeployment(this, s);
    if (s.toxiproxy) addToxiproxy(this, s);
  }
}
