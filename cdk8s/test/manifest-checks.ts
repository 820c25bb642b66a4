/**
 * Structural checks over synthesized manifests. Each returns the problems it
 * found (empty: none), so a test can assert both that the real output is
 * clean and that a deliberately broken copy is caught.
 */

/** A synthesized object, as JSON. */
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } } & Record<string, unknown>;

// Loose accessors: the manifests are plain JSON.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet']);

function where(o: K8sObject): string {
  return `${o.kind}/${o.metadata.name}`;
}

function matches(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (selector === undefined || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** Replicas, disruption budget, spread, probes, resources and security context of every Deployment and StatefulSet. */
export function workloadProblems(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const budgets = objects.filter((o) => o.kind === 'PodDisruptionBudget') as Any[];
  for (const w of objects.filter((o) => WORKLOAD_KINDS.has(o.kind)) as Any[]) {
    const at = where(w);
    const spec = w.spec ?? {};
    const pod = spec.template?.spec ?? {};
    const podLabels = spec.template?.metadata?.labels ?? {};
    if (!(spec.replicas >= 2)) problems.push(`${at}: replicas ${spec.replicas}, want at least 2`);
    const pdb = budgets.find((b) => b.metadata.namespace === w.metadata.namespace && matches(b.spec?.selector?.matchLabels, podLabels));
    if (pdb === undefined) problems.push(`${at}: no PodDisruptionBudget selects its pods`);
    else if (!(pdb.spec.minAvailable >= 1 || pdb.spec.maxUnavailable >= 1)) problems.push(`${at}: its budget ${pdb.metadata.name} allows no eviction or keeps none`);
    const spread = (pod.topologySpreadConstraints ?? []).find((c: Any) => c.topologyKey === 'kubernetes.io/hostname');
    if (spread === undefined || !matches(spread.labelSelector?.matchLabels, podLabels)) problems.push(`${at}: no topology spread over kubernetes.io/hostname selecting its pods`);
    const podContext = pod.securityContext ?? {};
    if (podContext.runAsNonRoot !== true) problems.push(`${at}: pod securityContext.runAsNonRoot is not true`);
    const claims = new Set((spec.volumeClaimTemplates ?? []).map((c: Any) => c.metadata.name));
    const volumes = new Map<string, Any>((pod.volumes ?? []).map((v: Any) => [v.name, v]));
    const all = [...(pod.initContainers ?? []).map((c: Any) => ({ c, init: true })), ...(pod.containers ?? []).map((c: Any) => ({ c, init: false }))];
    for (const { c, init } of all) {
      const cat = `${at} container ${c.name}`;
      if (!init && c.readinessProbe === undefined) problems.push(`${cat}: no readinessProbe`);
      if (!init && c.livenessProbe === undefined) problems.push(`${cat}: no livenessProbe`);
      for (const kind of ['requests', 'limits']) {
        for (const r of ['cpu', 'memory']) if (c.resources?.[kind]?.[r] === undefined) problems.push(`${cat}: no resources.${kind}.${r}`);
      }
      const sc = c.securityContext ?? {};
      if (sc.runAsNonRoot !== true && podContext.runAsNonRoot !== true) problems.push(`${cat}: runAsNonRoot is not true`);
      if (sc.readOnlyRootFilesystem !== true) problems.push(`${cat}: readOnlyRootFilesystem is not true`);
      if (sc.allowPrivilegeEscalation !== false) problems.push(`${cat}: allowPrivilegeEscalation is not false`);
      if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push(`${cat}: capabilities do not drop ALL`);
      if ((sc.capabilities?.add ?? []).length > 0) problems.push(`${cat}: adds capabilities`);
      if ((sc.seccompProfile ?? podContext.seccompProfile)?.type !== 'RuntimeDefault') problems.push(`${cat}: seccompProfile is not RuntimeDefault`);
      for (const m of c.volumeMounts ?? []) {
        if (m.readOnly === true) continue;
        const v = volumes.get(m.name);
        if (!claims.has(m.name) && v?.emptyDir === undefined) problems.push(`${cat}: writable mount ${m.mountPath} is neither an emptyDir nor a volume claim`);
      }
    }
  }
  return problems;
}

/** gRPC ports Istio must recognise: named grpc… and appProtocol grpc; every other port named by protocol. */
export function servicePortProblems(objects: readonly K8sObject[], grpcPorts: ReadonlySet<number>): string[] {
  const problems: string[] = [];
  for (const svc of objects.filter((o) => o.kind === 'Service') as Any[]) {
    for (const p of svc.spec?.ports ?? []) {
      const at = `${where(svc)} port ${p.port}`;
      const grpc = grpcPorts.has(p.port) || p.appProtocol === 'grpc' || /^grpc(-|$)/.test(p.name ?? '');
      if (grpc && !/^grpc(-|$)/.test(p.name ?? '')) problems.push(`${at}: gRPC port named ${JSON.stringify(p.name)}, not grpc-…`);
      if (grpc && p.appProtocol !== 'grpc') problems.push(`${at}: gRPC port without appProtocol grpc`);
      if (!grpc && !/^(http|https|http2|tcp|tls)(-|$)/.test(p.name ?? '')) problems.push(`${at}: name ${JSON.stringify(p.name)} says no protocol to Istio`);
    }
  }
  return problems;
}

/** Every faulted route: an explicit percentage (0 < value ≤ 100) on each fault, and no timeout or retries. */
export function faultRouteProblems(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const vs of objects.filter((o) => o.kind === 'VirtualService') as Any[]) {
    for (const route of vs.spec?.http ?? []) {
      if (route.fault === undefined) continue;
      const at = `${where(vs)} route ${route.name}`;
      for (const kind of ['delay', 'abort']) {
        const f = route.fault[kind];
        if (f === undefined) continue;
        const v = f.percentage?.value;
        if (typeof v !== 'number' || !(v > 0 && v <= 100)) problems.push(`${at}: ${kind} without an explicit percentage in (0, 100] (got ${JSON.stringify(f.percentage)})`);
      }
      if (route.timeout !== undefined) problems.push(`${at}: a faulted route with a timeout (Istio ignores it)`);
      if (route.retries !== undefined) problems.push(`${at}: a faulted route with retries (Istio ignores them)`);
    }
  }
  return problems;
}

/** The values of every Secret: whole (decoded data, stringData) and, for JSON values, each string inside that is long enough to be secret. */
export function secretValues(objects: readonly K8sObject[]): Map<string, string> {
  const values = new Map<string, string>();
  const leaves = (where: string, x: unknown): void => {
    if (typeof x === 'string') {
      if (x.length >= 8) values.set(x, where);
    } else if (x !== null && typeof x === 'object') {
      for (const [k, v] of Object.entries(x)) leaves(`${where}.${k}`, v);
    }
  };
  for (const s of objects.filter((o) => o.kind === 'Secret') as Any[]) {
    const entries: Array<[string, string]> = [
      ...Object.entries<string>(s.data ?? {}).map(([k, v]): [string, string] => [k, Buffer.from(v, 'base64').toString('utf8')]),
      ...Object.entries<string>(s.stringData ?? {}),
    ];
    for (const [key, value] of entries) {
      const at = `Secret/${s.metadata.name} ${key}`;
      values.set(value.trim(), at);
      try {
        leaves(at, JSON.parse(value));
      } catch {
        // not JSON: the whole value is the secret
      }
    }
  }
  return values;
}

/** No Secret value (nor its base64) in any other object. */
export function secretLeakProblems(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const values = secretValues(objects);
  for (const o of objects.filter((x) => x.kind !== 'Secret')) {
    const text = JSON.stringify(o);
    for (const [value, from] of values) {
      if (text.includes(JSON.stringify(value).slice(1, -1)) || text.includes(Buffer.from(value).toString('base64'))) problems.push(`${where(o)} holds the value of ${from}`);
    }
  }
  return problems;
}

function podTemplateOf(objects: readonly K8sObject[], name: string): Any {
  return (objects.find((o) => WORKLOAD_KINDS.has(o.kind) && o.metadata.name === name) as Any)?.spec?.template;
}

/**
 * The device path Istio can fault, end to end: ingestion polls a plain
 * http:// URL (the sidecar must read the requests to fault them); the
 * Service port it names is HTTP to Istio (named http-…, appProtocol http if
 * any); exactly one DestinationRule for that host originates TLS (SIMPLE,
 * with SNI and a CA the ingestion sidecar has mounted); no ServiceEntry
 * claims the host; the simulator's sidecar leaves that port alone, and a
 * NetworkPolicy admits only ingestion to it; and every fault VirtualService
 * of the host routes to that same host and port.
 */
export function devicePathProblems(objects: readonly K8sObject[], client = 'ingestion'): string[] {
  const problems: string[] = [];
  const pod = podTemplateOf(objects, client);
  if (pod === undefined) return [`no workload ${client}`];
  const container = (pod.spec?.containers ?? []).find((c: Any) => (c.env ?? []).some((e: Any) => e.name === 'FLATLINE_DEVICES_URL'));
  const url: string | undefined = (container?.env ?? []).find((e: Any) => e.name === 'FLATLINE_DEVICES_URL')?.value;
  const parsed = /^(https?):\/\/([A-Za-z0-9.-]+):(\d+)\/?$/.exec(url ?? '');
  if (parsed === null) return [`${client}: FLATLINE_DEVICES_URL ${JSON.stringify(url)} is not scheme://host:port`];
  const [, scheme, host, portText] = parsed as unknown as [string, string, string, string];
  const port = Number(portText);
  if (scheme !== 'http') problems.push(`${client}: FLATLINE_DEVICES_URL is ${url}: its sidecar sees opaque TLS and cannot fault it (want http://, TLS originated by a DestinationRule)`);

  // The Service behind the host.
  const svc = objects.find((o) => o.kind === 'Service' && `${o.metadata.name}.${o.metadata.namespace}.svc.cluster.local` === host) as Any;
  let targetPort: number | undefined;
  if (svc === undefined) problems.push(`no Service is ${host}`);
  else {
    const p = (svc.spec?.ports ?? []).find((x: Any) => x.port === port);
    if (p === undefined) problems.push(`${where(svc)} has no port ${port}`);
    else {
      targetPort = typeof p.targetPort === 'number' ? p.targetPort : port;
      if (!/^http-/.test(p.name ?? '')) problems.push(`${where(svc)} port ${port}: named ${JSON.stringify(p.name)}, want http-… (Istio must see HTTP to fault it)`);
      if (p.appProtocol !== undefined && p.appProtocol !== 'http') problems.push(`${where(svc)} port ${port}: appProtocol ${p.appProtocol}, want http`);
    }
  }

  // TLS origination: one DestinationRule, SIMPLE on that port, SNI, a CA the client's sidecar has.
  const rules = objects.filter((o) => o.kind === 'DestinationRule' && (o as Any).spec?.host === host) as Any[];
  if (rules.length !== 1) problems.push(`${rules.length} DestinationRules for ${host}, want exactly one`);
  for (const dr of rules) {
    const tp = dr.spec?.trafficPolicy ?? {};
    const tls = (tp.portLevelSettings ?? []).find((x: Any) => x.port?.number === port)?.tls ?? tp.tls;
    if (tls?.mode !== 'SIMPLE') problems.push(`${where(dr)}: TLS mode ${tls?.mode ?? 'unset'} on port ${port}, want SIMPLE (the sidecar originates TLS)`);
    if (tls?.mode === 'SIMPLE' && !tls.sni) problems.push(`${where(dr)}: no sni`);
    if (tls?.mode === 'SIMPLE' && !tls.caCertificates && !tls.credentialName) problems.push(`${where(dr)}: no caCertificates: the simulator's certificate would not be verified`);
    if (tls?.caCertificates) {
      const dir = String(tls.caCertificates).slice(0, String(tls.caCertificates).lastIndexOf('/'));
      let mounts: Any[] = [];
      try {
        mounts = JSON.parse(pod.metadata?.annotations?.['sidecar.istio.io/userVolumeMount'] ?? '[]');
      } catch {
        problems.push(`${client}: sidecar.istio.io/userVolumeMount is not JSON`);
      }
      const volumes = new Set((pod.spec?.volumes ?? []).map((v: Any) => v.name));
      const mount = mounts.find((m) => m.mountPath === dir);
      if (mount === undefined) problems.push(`${client}: its sidecar has no volume at ${dir}, where ${where(dr)} reads ${tls.caCertificates}`);
      else if (!volumes.has(mount.name)) problems.push(`${client}: the sidecar mounts volume ${mount.name}, which the pod does not have`);
    }
  }
  for (const se of objects.filter((o) => o.kind === 'ServiceEntry' && ((o as Any).spec?.hosts ?? []).includes(host))) problems.push(`${where(se)} also claims ${host}`);

  // The simulator's side: its sidecar leaves the port alone; only the client reaches it.
  if (svc !== undefined && targetPort !== undefined) {
    const serverName = objects.find((o) => WORKLOAD_KINDS.has(o.kind) && matches(svc.spec?.selector, podTemplateOf(objects, o.metadata.name)?.metadata?.labels))?.metadata.name;
    const server = serverName === undefined ? undefined : podTemplateOf(objects, serverName);
    const excluded = String(server?.metadata?.annotations?.['traffic.sidecar.istio.io/excludeInboundPorts'] ?? '').split(',').map((x) => x.trim());
    if (server === undefined) problems.push(`no workload behind ${where(svc)}`);
    else if (!excluded.includes(String(targetPort))) problems.push(`${serverName}: its sidecar intercepts port ${targetPort} and would expect mTLS (want traffic.sidecar.istio.io/excludeInboundPorts)`);
    const policies = objects.filter((o) => o.kind === 'NetworkPolicy' && matches((o as Any).spec?.podSelector?.matchLabels, server?.metadata?.labels)) as Any[];
    const admitting = policies.flatMap((np) => (np.spec?.ingress ?? []).filter((r: Any) => (r.ports ?? []).length === 0 || r.ports.some((p: Any) => p.port === targetPort || (p.endPort !== undefined && p.port <= targetPort && targetPort <= p.endPort))));
    if (policies.length === 0) problems.push(`${serverName}: no NetworkPolicy guards port ${targetPort}`);
    for (const r of admitting) {
      const froms: Any[] = r.from ?? [];
      if (froms.length === 0 || froms.some((f) => f.podSelector === undefined || f.namespaceSelector !== undefined || f.ipBlock !== undefined || !matches(f.podSelector.matchLabels, pod.metadata?.labels))) {
        problems.push(`${serverName}: a NetworkPolicy rule admits others than ${client} to port ${targetPort}`);
      }
    }
  }

  // The faults: each fault VirtualService of the host routes to the same host and port.
  const faulting = objects.filter((o) => o.kind === 'VirtualService' && ((o as Any).spec?.hosts ?? []).includes(host) && ((o as Any).spec?.http ?? []).some((r: Any) => r.fault !== undefined)) as Any[];
  if (faulting.length === 0) problems.push(`no fault VirtualService for ${host}`);
  for (const vs of faulting) {
    for (const r of vs.spec.http) {
      for (const d of r.route ?? []) {
        if (d.destination?.host !== host || d.destination?.port?.number !== port) problems.push(`${where(vs)} route ${r.name}: goes to ${d.destination?.host}:${d.destination?.port?.number}, not ${host}:${port}`);
      }
    }
  }
  return problems;
}

/** The namespace of a SPIFFE principal `<trust domain>/ns/<namespace>/sa/<account>`. */
function namespaceOfPrincipal(principal: string): string | undefined {
  return /\/ns\/([^/]+)\/sa\//.exec(principal)?.[1];
}

/** Istio's string match: exact, `*`, a `prefix*` or a `*suffix`. */
function istioMatch(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith('*')) return value.endsWith(pattern.slice(1));
  return pattern === value;
}

/** Whether an AuthorizationPolicy source could be the ingress gateway (its mTLS identity). */
function sourceAdmits(source: Any, principal: string): boolean {
  const ns = namespaceOfPrincipal(principal) ?? '';
  if (source.principals !== undefined && !source.principals.some((p: string) => istioMatch(p, principal))) return false;
  if ((source.notPrincipals ?? []).some((p: string) => istioMatch(p, principal))) return false;
  if (source.namespaces !== undefined && !source.namespaces.some((n: string) => istioMatch(n, ns))) return false;
  if ((source.notNamespaces ?? []).some((n: string) => istioMatch(n, ns))) return false;
  return true;
}

/** Whether an AuthorizationPolicy rule's `to` could match a request to port. */
function toAdmits(rule: Any, port: number): boolean {
  if (rule.to === undefined || rule.to.length === 0) return true;
  return rule.to.some((t: Any) => {
    const op = t.operation ?? {};
    if (op.ports !== undefined && !op.ports.includes(String(port))) return false;
    return !(op.notPorts ?? []).includes(String(port));
  });
}

/**
 * Callers from outside the mesh must authenticate: for every workload a
 * Gateway-bound VirtualService routes to, a RequestAuthentication selects
 * its pods with JWT rules (issuer, and a JWKS or JWKS URI), and every ALLOW
 * rule that the ingress gateway's identity (gatewayPrincipal) could match
 * on the routed port also requires a request principal: `*` or one of an
 * issuer those JWT rules accept. Without that, a request with no token
 * passes: RequestAuthentication alone only refuses invalid tokens.
 */
export function gatewayAuthProblems(objects: readonly K8sObject[], gatewayPrincipal: string): string[] {
  const problems: string[] = [];
  const routes = (objects as Any[]).filter((o) => o.kind === 'VirtualService' && (o.spec?.gateways ?? []).some((g: string) => g !== 'mesh'));
  if (routes.length === 0) return ['no VirtualService is bound to a Gateway'];
  for (const vs of routes) {
    for (const route of vs.spec.http ?? []) {
      for (const r of route.route ?? []) {
        const host: string = r.destination?.host ?? '';
        const port: number | undefined = r.destination?.port?.number;
        const at = `${where(vs)} route ${route.name ?? '(unnamed)'} to ${host}:${port}`;
        const svc = objects.find((o) => o.kind === 'Service' && [o.metadata.name, `${o.metadata.name}.${o.metadata.namespace}.svc.cluster.local`].includes(host)) as Any;
        if (svc === undefined) {
          problems.push(`${at}: no Service is ${host}`);
          continue;
        }
        const targetPort = (svc.spec?.ports ?? []).find((p: Any) => p.port === port)?.targetPort ?? port;
        const workload = objects.find((o) => WORKLOAD_KINDS.has(o.kind) && o.metadata.namespace === svc.metadata.namespace && matches(svc.spec?.selector, podTemplateOf(objects, o.metadata.name)?.metadata?.labels));
        if (workload === undefined) {
          problems.push(`${at}: no workload behind ${where(svc)}`);
          continue;
        }
        const labels = podTemplateOf(objects, workload.metadata.name)?.metadata?.labels;
        const selects = (o: Any) => o.metadata.namespace === workload.metadata.namespace && (o.spec?.selector === undefined || matches(o.spec.selector.matchLabels, labels));
        const jwtRules = (objects as Any[]).filter((o) => o.kind === 'RequestAuthentication' && selects(o)).flatMap((o) => o.spec?.jwtRules ?? []);
        if (jwtRules.length === 0) problems.push(`${at}: no RequestAuthentication with JWT rules selects ${where(workload)}`);
        for (const j of jwtRules) {
          if (typeof j.issuer !== 'string' || j.issuer === '') problems.push(`${at}: a JWT rule without an issuer`);
          if ((j.jwks === undefined) === (j.jwksUri === undefined)) problems.push(`${at}: JWT rule ${j.issuer}: give exactly one of jwks and jwksUri`);
        }
        const issuers = jwtRules.map((j) => String(j.issuer));
        const allows = (objects as Any[]).filter((o) => o.kind === 'AuthorizationPolicy' && selects(o) && (o.spec?.action ?? 'ALLOW') === 'ALLOW');
        for (const policy of allows) {
          for (const [i, rule] of (policy.spec?.rules ?? []).entries()) {
            if (!toAdmits(rule, Number(targetPort))) continue;
            const sources = rule.from === undefined || rule.from.length === 0 ? [{}] : rule.from.map((f: Any) => f.source ?? {});
            for (const source of sources) {
              if (!sourceAdmits(source, gatewayPrincipal)) continue;
              const wanted: string[] | undefined = source.requestPrincipals;
              if (wanted === undefined || wanted.length === 0) problems.push(`${where(policy)} rule ${i}: admits the ingress gateway (${gatewayPrincipal}) on port ${targetPort} without a request principal (a JWT)`);
              else {
                for (const p of wanted) {
                  if (p !== '*' && !issuers.some((iss) => p.startsWith(`${iss}/`))) problems.push(`${where(policy)} rule ${i}: request principal ${p} is of no issuer a RequestAuthentication accepts`);
                }
              }
            }
          }
        }
      }
    }
  }
  return problems;
}

/** What toxiproxyWiringProblems needs to know of the chart (cdk8s/src/toxiproxy.ts). */
export interface ToxiproxyWiring {
  /** The Toxiproxy Service's host (name.namespace.svc.cluster.local). */
  readonly host: string;
  /** Each proxied link: its proxy port, its client workload, and for a database link the env var holding the MongoDB URI. */
  readonly links: ReadonlyArray<{ link: string; port: number; client: string; database: boolean }>;
  /** The device host ingestion polls, and its port. */
  readonly devicesHost: string;
  readonly devicesPort: number;
}

/** A container's environment with Secret keys resolved (fieldRefs left out). */
function resolvedEnv(objects: readonly K8sObject[], container: Any): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container?.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    const ref = e.valueFrom?.secretKeyRef;
    if (ref === undefined) continue;
    const secret = objects.find((o) => o.kind === 'Secret' && o.metadata.name === ref.name) as Any;
    const data = secret?.data?.[ref.key];
    if (data !== undefined) env[e.name] = Buffer.from(data, 'base64').toString('utf8');
  }
  return env;
}

/**
 * With Toxiproxy on: a proxy in its ConfigMap for each link, listening on
 * the port its Deployment and Service expose; each database client's
 * MongoDB URI names its own link's proxy alone, with directConnection (a
 * replica-set URI would let the driver go around it); the device host's
 * Service leads to the device link's proxy; and each link's port is
 * admitted to its client only (AuthorizationPolicy for the database ports,
 * the NetworkPolicy for the device port, which the sidecar leaves alone).
 */
export function toxiproxyWiringProblems(objects: readonly K8sObject[], wiring: ToxiproxyWiring): string[] {
  const problems: string[] = [];
  const [name, namespace] = wiring.host.split('.') as [string, string];
  const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === name) as Any;
  const service = objects.find((o) => o.kind === 'Service' && o.metadata.name === name) as Any;
  const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name) as Any;
  if (deployment === undefined || service === undefined || configMap === undefined) return [`no Deployment, Service and ConfigMap ${name} in ${namespace}`];
  let proxies: Array<{ name: string; listen: string; upstream: string }> = [];
  try {
    proxies = JSON.parse(Object.values<string>(configMap.data ?? {})[0] ?? '[]');
  } catch {
    problems.push(`ConfigMap/${name}: its proxies are not JSON`);
  }
  const containerPorts = new Set((deployment.spec?.template?.spec?.containers?.[0]?.ports ?? []).map((p: Any) => p.containerPort));
  const policy = objects.find((o) => o.kind === 'AuthorizationPolicy' && matches((o as Any).spec?.selector?.matchLabels, deployment.spec?.template?.metadata?.labels)) as Any;
  const netpol = objects.find((o) => o.kind === 'NetworkPolicy' && matches((o as Any).spec?.podSelector?.matchLabels, deployment.spec?.template?.metadata?.labels)) as Any;
  for (const l of wiring.links) {
    const proxy = proxies.find((p) => p.name === l.link);
    if (proxy === undefined) {
      problems.push(`ConfigMap/${name}: no proxy ${l.link}`);
      continue;
    }
    if (proxy.listen !== `0.0.0.0:${l.port}`) problems.push(`proxy ${l.link} listens on ${proxy.listen}, want 0.0.0.0:${l.port}`);
    if (!containerPorts.has(l.port)) problems.push(`Deployment/${name} does not expose port ${l.port} (${l.link})`);
    const clientPod = podTemplateOf(objects, l.client);
    const clientLabels = clientPod?.metadata?.labels;
    if (l.database) {
      if (!(service.spec?.ports ?? []).some((p: Any) => p.port === l.port && (p.targetPort ?? p.port) === l.port)) problems.push(`Service/${name} has no port ${l.port} (${l.link})`);
      const uri = resolvedEnv(objects, clientPod?.spec?.containers?.[0])['FLATLINE_MONGODB_URI'] ?? '';
      const hosts = /^mongodb:\/\/(?:[^@/]*@)?([^/?]+)/.exec(uri)?.[1];
      const params = new URLSearchParams(uri.slice(uri.indexOf('?') + 1));
      if (hosts !== `${wiring.host}:${l.port}`) problems.push(`${l.client}: its MongoDB URI goes to ${hosts}, not its proxy ${wiring.host}:${l.port} (${l.link})`);
      else if (params.get('directConnection') !== 'true' || params.has('replicaSet')) problems.push(`${l.client}: its MongoDB URI through ${l.link} lacks directConnection=true (the driver would find the members and go around the proxy)`);
      const admitted = (policy?.spec?.rules ?? []).filter((r: Any) => (r.to ?? []).some((t: Any) => (t.operation?.ports ?? []).includes(String(l.port))));
      const principals = admitted.flatMap((r: Any) => (r.from ?? []).flatMap((f: Any) => f.source?.principals ?? ['(any)']));
      if (principals.length !== 1 || !String(principals[0]).endsWith(`/ns/${namespace}/sa/${l.client}`)) problems.push(`port ${l.port} (${l.link}) is admitted to ${JSON.stringify(principals)}, want ${l.client}'s service account alone`);
    } else {
      const devices = objects.find((o) => o.kind === 'Service' && `${o.metadata.name}.${o.metadata.namespace}.svc.cluster.local` === wiring.devicesHost) as Any;
      const port = (devices?.spec?.ports ?? []).find((p: Any) => p.port === wiring.devicesPort);
      if (!matches(devices?.spec?.selector, deployment.spec?.template?.metadata?.labels) || port?.targetPort !== l.port) {
        problems.push(`${wiring.devicesHost}:${wiring.devicesPort} does not lead to the ${l.link} proxy (${name} port ${l.port})`);
      }
      const excluded = String(deployment.spec?.template?.metadata?.annotations?.['traffic.sidecar.istio.io/excludeInboundPorts'] ?? '').split(',');
      if (!excluded.includes(String(l.port))) problems.push(`Deployment/${name}: its sidecar intercepts ${l.port} (${l.link}), which carries TLS for the simulator`);
      const rules = (netpol?.spec?.ingress ?? []).filter((r: Any) => (r.ports ?? []).some((p: Any) => p.port === l.port || (p.endPort !== undefined && p.port <= l.port && l.port <= p.endPort)));
      if (netpol === undefined || rules.some((r: Any) => (r.from ?? []).length === 0 || r.from.some((f: Any) => !matches(f.podSelector?.matchLabels, clientLabels)))) problems.push(`port ${l.port} (${l.link}) is open to others than ${l.client}`);
    }
  }
  const api = (policy?.spec?.rules ?? []).some((r: Any) => (r.to ?? []).length === 0 || r.to.some((t: Any) => (t.operation?.ports ?? []).some((p: string) => !wiring.links.some((l) => String(l.port) === p))));
  if (policy === undefined) problems.push(`no AuthorizationPolicy selects ${name}`);
  else if (api) problems.push(`AuthorizationPolicy/${policy.metadata.name} admits a port that is no link's (the API?)`);
  return problems;
}
