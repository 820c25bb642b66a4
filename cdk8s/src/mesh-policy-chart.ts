/**
 * Who may talk to whom, and how hard: mTLS required in the namespace,
 * deny-by-default authorization with one ALLOW per workload (only ingestion
 * calls storage; only the ingress gateway and the operators call query),
 * connection pools and outlier detection for storage and query, the device
 * DestinationRule (ingestion's sidecar originates TLS to the simulator),
 * and the Gateway that lets grpcurl reach query from outside the cluster.
 *
 * Callers from outside the mesh authenticate with a JSON Web Token: the
 * gateway's mTLS identity only says a request came through the gateway, not
 * who sent it. query's sidecar validates the token (RequestAuthentication:
 * the configured issuer and its keys), and query's ALLOW admits the gateway
 * only together with a request principal of that issuer. RequestAuthentication
 * alone refuses a bad token but lets a request with none through; the
 * requestPrincipals condition is what makes the token required. In-mesh
 * callers (the operators' service account) are admitted on their mTLS
 * identity alone, as before.
 *
 * The device API's port is the one exception to mTLS and authorization: the
 * client sidecar must read the poller's HTTP to fault it, so it speaks TLS
 * of its own (SIMPLE, the simulator's certificate) to the simulator, whose
 * sidecar leaves that port alone (services-chart.ts). Neither
 * PeerAuthentication nor an AuthorizationPolicy sees a port the sidecar does
 * not intercept; a NetworkPolicy (services-chart.ts) admits ingestion only.
 */
import { Chart, type App } from 'cdk8s';
import { DestinationRule } from '@kubernetes-models/istio/networking.istio.io/v1beta1/DestinationRule';
import { Gateway } from '@kubernetes-models/istio/networking.istio.io/v1beta1/Gateway';
import { VirtualService } from '@kubernetes-models/istio/networking.istio.io/v1beta1/VirtualService';
import { AuthorizationPolicy } from '@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy';
import { RequestAuthentication } from '@kubernetes-models/istio/security.istio.io/v1/RequestAuthentication';
import { PeerAuthentication } from '@kubernetes-models/istio/security.istio.io/v1beta1/PeerAuthentication';
import { devicesDestinationRule, grpcDestinationRule } from '@flatline/mesh';
import { addModel, addObject, labelsOf, seedMarks, selectorOf, serviceAccount } from './k8s.ts';
import { isDevJwtIssuer, jwtIssuerOf } from './secrets.ts';
import { meshOf, PORTS, principalOf, serviceHost, type Settings } from './settings.ts';
import { DB_CLUSTER_LINKS, TOXIPROXY } from './toxiproxy.ts';

function metadata(name: string, component: string, s: Settings) {
  return { name, namespace: s.namespace, labels: { ...labelsOf(name, component) } };
}

/** Prometheus (in the monitoring namespace) may scrape a workload's /metrics port. */
function metricsRule(port: number, s: Settings) {
  return { from: [{ source: { namespaces: [s.monitoringNamespace] } }], to: [{ operation: { ports: [String(port)] } }] };
}

/** Who a rule admits: mTLS identities, and for callers from outside the mesh, the request principals (JWT) they must also carry. */
interface Source {
  principals: string[];
  requestPrincipals?: string[];
}

/** ALLOW for workload: each source (a rule of its own) on port, plus metrics scraping. */
function allow(workload: string, sources: Source[], port: number | undefined, metricsPort: number, s: Settings): AuthorizationPolicy {
  return new AuthorizationPolicy({
    metadata: metadata(workload, workload, s),
    spec: {
      selector: { matchLabels: { ...selectorOf(workload) } },
      action: 'ALLOW',
      rules: [...(port === undefined ? [] : sources.map((source) => ({ from: [{ source }], to: [{ operation: { ports: [String(port)] } }] }))), metricsRule(metricsPort, s)],
    },
  });
}

/**
 * query's sidecar validates the tokens of the configured issuer, taken from
 * the authorization header only (`authorization: Bearer <token>`), and
 * strips them before the request reaches query.
 */
function queryRequestAuthentication(s: Settings): RequestAuthentication {
  const jwt = jwtIssuerOf(s);
  const base = metadata('query', 'query', s);
  // The dev profile's issuer is derived from the seed: marked as the Secrets are.
  const marks = isDevJwtIssuer(s) ? seedMarks(s) : { labels: {} };
  return new RequestAuthentication({
    metadata: { ...base, labels: { ...base.labels, ...marks.labels }, ...(marks.annotations ? { annotations: { ...marks.annotations } } : {}) },
    spec: {
      selector: { matchLabels: { ...selectorOf('query') } },
      jwtRules: [
        {
          issuer: jwt.issuer,
          ...(jwt.jwksUri !== undefined ? { jwksUri: jwt.jwksUri } : { jwks: jwt.jwks! }),
          ...(jwt.audiences.length > 0 ? { audiences: [...jwt.audiences] } : {}),
          fromHeaders: [{ name: 'authorization', prefix: 'Bearer ' }],
          forwardOriginalToken: false,
        },
      ],
    },
  });
}

/**
 * ALLOW for Toxiproxy (settings.toxiproxy): each database link's port to its
 * one client's service account. Nothing else: the device link's port is not
 * intercepted (a NetworkPolicy guards it), and the API port, which also
 * serves /metrics, is admitted to no one (kubectl port-forward reaches it
 * without the mesh).
 */
function toxiproxyAllow(s: Settings): AuthorizationPolicy {
  return new AuthorizationPolicy({
    metadata: metadata(TOXIPROXY.name, 'chaos', s),
    spec: {
      selector: { matchLabels: { ...selectorOf(TOXIPROXY.name) } },
      action: 'ALLOW',
      rules: DB_CLUSTER_LINKS.map((l) => ({ from: [{ source: { principals: [principalOf(l.client, s)] } }], to: [{ operation: { ports: [String(l.port)] } }] })),
    },
  });
}

/** Connection pool and outlier detection for a gRPC service (mesh/'s, as the local Istio plane renders it), over the sidecars' mTLS. */
function destinationRule(name: 'storage' | 'query', s: Settings): DestinationRule {
  return grpcDestinationRule(name, meshOf(s), 'ISTIO_MUTUAL', metadata(name, name, s).labels);
}

/** mTLS, authorization and traffic policy of the namespace (see the module comment). */
export class MeshPolicyChart extends Chart {
  constructor(scope: App, id: string, s: Settings) {
    super(scope, id, { disableResourceNameHashes: true });
    addObject(this, serviceAccount(s.operatorsServiceAccount, 'operators', s));
    addModel(this, new PeerAuthentication({ metadata: metadata('default', 'mesh', s), spec: { mtls: { mode: 'STRICT' } } }));
    // An empty policy matches nothing: with it, every workload of the namespace denies what no ALLOW below admits.
    addModel(this, new AuthorizationPolicy({ metadata: metadata('allow-nothing', 'mesh', s), spec: {} }));
    const ingestion = principalOf('ingestion', s);
    addModel(this, allow('storage', [{ principals: [ingestion] }], PORTS.storage.grpc, PORTS.storage.metrics, s));
    addModel(this, queryRequestAuthentication(s));
    // `<issuer>/*`, not `*`: a token of another issuer that some other RequestAuthentication accepts (a mesh-wide one) is not enough.
    const gatewayCallers = { principals: [s.gateway.principal], requestPrincipals: [`${jwtIssuerOf(s).issuer}/*`] };
    addModel(this, allow('query', [gatewayCallers, { principals: [principalOf(s.operatorsServiceAccount, s)] }], PORTS.query.grpc, PORTS.query.metrics, s));
    // The device API's port is not intercepted (see the module comment): only /metrics is the mesh's to guard.
    addModel(this, allow('devices', [], undefined, PORTS.devices.metrics, s));
    // Nothing calls ingestion's gRPC port (health is probed through the sidecar's agent).
    addModel(this, allow('ingestion', [], undefined, PORTS.ingestion.metrics, s));
    if (s.toxiproxy) addModel(this, toxiproxyAllow(s));
    addModel(this, destinationRule('storage', s));
    addModel(this, destinationRule('query', s));
    addModel(this, devicesDestinationRule(meshOf(s)));
  }
}

/**
 * query's gRPC through the ingress gateway, for grpcurl with a token of the
 * configured issuer (MeshPolicyChart):
 * `grpcurl -plaintext -authority <gateway.host> -H "authorization: Bearer $TOKEN" <ingress address>:<gateway.port> list`.
 * Its VirtualService is bound to the Gateway only, under its own name and
 * host, so it never meets the baseline or fault VirtualService of the
 * in-mesh host `query` (mesh-baseline, fault-query-slow): those shape
 * calls from inside the mesh, this one calls from outside.
 */
export class GatewayChart extends Chart {
  constructor(scope: App, id: string, s: Settings) {
    super(scope, id, { disableResourceNameHashes: true });
    addModel(
      this,
      new Gateway({
        metadata: metadata('query', 'query', s),
        spec: {
          selector: { ...s.gateway.selector },
          servers: [{ port: { number: s.gateway.port, name: 'grpc-query', protocol: 'GRPC' }, hosts: [s.gateway.host] }],
        },
      }),
    );
    addModel(
      this,
      new VirtualService({
        metadata: { ...metadata('query-gateway', 'query', s), labels: { ...labelsOf('query-gateway', 'query'), 'flatline.dev/route': 'gateway' } },
        spec: {
          hosts: [s.gateway.host],
          gateways: [`${s.namespace}/query`],
          // No timeout: WatchFreshness is a stream that lasts as long as the caller wants.
          http: [{ name: 'query', route: [{ destination: { host: serviceHost('query', s), port: { number: PORTS.query.grpc } } }] }],
        },
      }),
    );
  }
}
