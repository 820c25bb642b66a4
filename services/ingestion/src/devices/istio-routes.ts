/**
 * Device faults from Istio's own translation. The device hop is HTTP/1.1,
 * which no proxyless gRPC client carries, so on the Istio plane ingestion
 * asks istiod for the route configuration an Envoy sidecar of its identity
 * would get for the devices host (RDS over ADS, the grpc generator's
 * `outbound|<port>||<host>` name, which istiod answers with
 * BuildSidecarOutboundVirtualHosts: the sidecar's own routes), and its HTTP
 * fault interceptor applies the HTTPFault of the first route that matches a
 * request. Which device request gets which fault is then decided by what
 * istiod made of the VirtualService, not by flatline's reading of it.
 *
 * As a gRPC xDS client does, it ACKs a configuration it can apply, NACKs one
 * it cannot (a match or fault it does not implement) and keeps its last good
 * routes, and keeps them too while istiod is away (redialling with back-off).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { credentials, loadPackageDefinition, type ClientDuplexStream, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import type { Fault } from '@flatline/mesh';

export const RDS_TYPE_URL = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
const HTTP_FAULT_TYPE = 'envoy.extensions.filters.http.fault.v3.HTTPFault';
/** The key of the fault filter's per-route config (Envoy's well-known name). */
const FAULT_FILTER = 'envoy.filters.http.fault';

/** The folders of the envoy, xds, googleapis and validate protos that @grpc/grpc-js-xds ships. */
function protoDirs(): string[] {
  const deps = join(dirname(createRequire(import.meta.url).resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(deps, d));
}

let typesRoot: protobuf.Root | undefined;
/** The protobuf types of a route configuration and of the fault filter's config. */
function types(): protobuf.Root {
  if (typesRoot === undefined) {
    const dirs = protoDirs();
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => dirs.map((d) => join(d, target)).find((p) => existsSync(p)) ?? target;
    root.loadSync(['envoy/config/route/v3/route.proto', 'envoy/extensions/filters/http/fault/v3/fault.proto'], { keepCase: true });
    typesRoot = root;
  }
  return typesRoot;
}

const TO_OBJECT = { longs: Number, enums: String, defaults: false, oneofs: true } as const;

/** What a decoded message looks like to this module: plain objects, keepCase field names. */
type Obj = Record<string, unknown>;

/** Decodes one packed message of typeName. */
function decode(typeName: string, bytes: Uint8Array): Obj {
  const t = types().lookupType(typeName);
  return t.toObject(t.decode(bytes), TO_OBJECT) as Obj;
}

/** A configuration this module cannot apply: NACKed, the previous routes kept. */
export class UnsupportedRouteError extends Error {
  override name = 'UnsupportedRouteError';
}

const DENOMINATORS: Record<string, number> = { HUNDRED: 100, TEN_THOUSAND: 10000, MILLION: 1000000 };

/** An Envoy FractionalPercent as a percentage (absent: Envoy's default, 100 %; Istio always sets one). */
function percentOf(p: unknown): number {
  if (p === undefined || p === null) return 100;
  const { numerator, denominator } = p as { numerator?: number; denominator?: string };
  const d = DENOMINATORS[denominator ?? 'HUNDRED'];
  if (d === undefined) throw new UnsupportedRouteError(`unknown percentage denominator ${String(denominator)}`);
  return Math.min(100, ((numerator ?? 0) * 100) / d);
}

/** A google.protobuf.Duration as Istio's duration string in ms. */
function msOf(d: unknown): string {
  const { seconds, nanos } = (d ?? {}) as { seconds?: number; nanos?: number };
  return `${(seconds ?? 0) * 1000 + Math.round((nanos ?? 0) / 1e6)}ms`;
}

type StringMatch = { exact?: string; prefix?: string; regex?: string };

/** An Envoy StringMatcher (or a header matcher's legacy fields) as a match of mesh's faults. */
function stringMatchOf(m: Obj, where: string): StringMatch {
  if (m['ignore_case'] === true) throw new UnsupportedRouteError(`${where}: ignore_case is not implemented`);
  if (typeof m['exact'] === 'string') return { exact: m['exact'] };
  if (typeof m['prefix'] === 'string') return { prefix: m['prefix'] };
  const regex = (m['safe_regex'] as Obj | undefined)?.['regex'];
  if (typeof regex === 'string') return { regex };
  throw new UnsupportedRouteError(`${where}: only exact, prefix and safe_regex matches are implemented (got ${Object.keys(m).join(', ') || 'none'})`);
}

/** One Envoy route's match as a match of mesh's faults. */
function matchOf(match: Obj, route: string): Fault['match'][number] {
  const out: { uri?: StringMatch; headers?: Record<string, StringMatch> } = {};
  if (typeof match['prefix'] === 'string') {
    if (match['prefix'] !== '/' && match['prefix'] !== '') out.uri = { prefix: match['prefix'] };
  } else if (typeof match['path'] === 'string') out.uri = { exact: match['path'] };
  else if (match['safe_regex'] !== undefined) out.uri = { regex: String((match['safe_regex'] as Obj)['regex']) };
  else throw new UnsupportedRouteError(`route ${route}: only prefix, path and safe_regex path matches are implemented (got ${Object.keys(match).join(', ')})`);
  if (match['case_sensitive'] === false) throw new UnsupportedRouteError(`route ${route}: case-insensitive paths are not implemented`);
  for (const key of ['query_parameters', 'runtime_fraction', 'grpc', 'dynamic_metadata', 'filter_state', 'cel_expr']) {
    const v = match[key];
    if (v !== undefined && !(Array.isArray(v) && v.length === 0)) throw new UnsupportedRouteError(`route ${route}: ${key} matches are not implemented`);
  }
  for (const h of (match['headers'] as Obj[] | undefined) ?? []) {
    const name = String(h['name']).toLowerCase();
    if (h['invert_match'] === true) throw new UnsupportedRouteError(`route ${route}: inverted header matches are not implemented`);
    const legacy: Obj = {
      ...(h['exact_match'] !== undefined ? { exact: h['exact_match'] } : {}),
      ...(h['prefix_match'] !== undefined ? { prefix: h['prefix_match'] } : {}),
      ...(h['safe_regex_match'] !== undefined ? { safe_regex: h['safe_regex_match'] } : {}),
    };
    (out.headers ??= {})[name] = stringMatchOf((h['string_match'] as Obj | undefined) ?? legacy, `route ${route}, header ${name}`);
  }
  return out;
}

/** The fault filter's config of a route (Istio's HTTPFault), as mesh's fault; {} when the route has none. */
function faultOf(route: Obj, name: string): Fault['fault'] {
  const perFilter = (route['typed_per_filter_config'] ?? {}) as Record<string, { type_url?: string; value?: Uint8Array }>;
  const any = perFilter[FAULT_FILTER];
  if (any === undefined) return {} as Fault['fault'];
  if (any.type_url !== `type.googleapis.com/${HTTP_FAULT_TYPE}`) throw new UnsupportedRouteError(`route ${name}: fault filter config of type ${String(any.type_url)} is not implemented`);
  const f = decode(HTTP_FAULT_TYPE, any.value ?? new Uint8Array());
  const out: { delay?: Fault['fault']['delay']; abort?: Fault['fault']['abort'] } = {};
  const delay = f['delay'] as Obj | undefined;
  if (delay !== undefined) {
    if (delay['fixed_delay'] === undefined) throw new UnsupportedRouteError(`route ${name}: only fixed delays are implemented`);
    out.delay = { fixedDelay: msOf(delay['fixed_delay']), percentage: { value: percentOf(delay['percentage']) } };
  }
  const abort = f['abort'] as Obj | undefined;
  if (abort !== undefined) {
    if (typeof abort['http_status'] !== 'number') throw new UnsupportedRouteError(`route ${name}: the device hop is HTTP: only http_status aborts are implemented (got ${Object.keys(abort).join(', ')})`);
    out.abort = { httpStatus: abort['http_status'], percentage: { value: percentOf(abort['percentage']) } };
  }
  for (const key of ['max_active_faults', 'response_rate_limit', 'headers', 'downstream_nodes']) {
    const v = f[key];
    if (v !== undefined && !(Array.isArray(v) && v.length === 0)) throw new UnsupportedRouteError(`route ${name}: ${key} is not implemented`);
  }
  return out as Fault['fault'];
}

/**
 * The routes of the virtual host of `domain` in a RouteConfiguration, in
 * order, each as a mesh fault (with `fault: {}` for a route without one: it
 * still ends the search for the first match, as in Envoy). A route named
 * `fault-<name>` (mesh's VirtualService) gives the fault its name.
 */
export function routesOf(config: Obj, domain: string): Fault[] {
  const hosts = (config['virtual_hosts'] as Obj[] | undefined) ?? [];
  const vhost = hosts.find((h) => ((h['domains'] as string[] | undefined) ?? []).some((d) => d === domain || d.startsWith(`${domain}:`)));
  if (vhost === undefined) return [];
  return ((vhost['routes'] as Obj[] | undefined) ?? []).map((r, i) => {
    const name = String(r['name'] ?? '') || `route-${i}`;
    return {
      name: name.replace(/^fault-/, ''),
      host: 'devices' as const,
      match: [matchOf((r['match'] ?? {}) as Obj, name)],
      fault: faultOf(r, name),
    };
  });
}

/** Decodes an RDS resource (an Any's bytes) and reads the routes of domain from it. */
export function routesOfResource(bytes: Uint8Array, domain: string): { name: string; routes: Fault[] } {
  const config = decode('envoy.config.route.v3.RouteConfiguration', bytes);
  return { name: String(config['name'] ?? ''), routes: routesOf(config, domain) };
}

/** The bootstrap fields this client reads (grpc-js-xds's file). */
interface Bootstrap {
  xds_servers: Array<{ server_uri: string }>;
  node: { id: string; locality?: Record<string, string>; metadata?: Record<string, string> };
}

type DiscoveryResponse = { version_info?: string; resources?: Array<{ type_url?: string; value?: Uint8Array }>; type_url?: string; nonce?: string };

let adsService: ServiceClientConstructor | undefined;
function adsClient(): ServiceClientConstructor {
  if (adsService === undefined) {
    const def = loadSync('envoy/service/discovery/v3/ads.proto', { keepCase: true, longs: Number, enums: String, defaults: false, oneofs: true, includeDirs: protoDirs() });
    const pkg = loadPackageDefinition(def) as GrpcObject;
    adsService = ((((pkg['envoy'] as GrpcObject)['service'] as GrpcObject)['discovery'] as GrpcObject)['v3'] as GrpcObject)['AggregatedDiscoveryService'] as ServiceClientConstructor;
  }
  return adsService;
}

/** What the watcher reports. */
export interface IstioRoutesEvents {
  /** New routes taken (and ACKed). */
  onRoutes?(routes: readonly Fault[], version: string): void;
  /** A configuration refused (NACKed); the previous routes stay. */
  onRejected?(error: Error, version: string): void;
  /** The stream to istiod failed; the routes stay, and it redials after delayMs. */
  onDisconnected?(error: Error, delayMs: number): void;
}

/**
 * Follows the route configuration istiod generates for one sidecar identity
 * (node id and metadata of an xDS bootstrap file) and one route name, over an
 * ADS stream; `active()` is the devices host's routes as mesh faults, the
 * input of mesh's Injector.
 */
export class IstioDeviceRoutes {
  private routes: readonly Fault[] = [];
  private stream: ClientDuplexStream<object, DiscoveryResponse> | undefined;
  private client: InstanceType<ServiceClientConstructor> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  private version = '';
  private nonce = '';
  private received = false;

  constructor(
    private readonly bootstrap: Bootstrap,
    private readonly routeName: string,
    private readonly domain: string,
    private readonly events: IstioRoutesEvents = {},
  ) {}

  /** Reads a bootstrap file (GRPC_XDS_BOOTSTRAP's format). */
  static fromBootstrapFile(file: string, routeName: string, domain: string, events?: IstioRoutesEvents): IstioDeviceRoutes {
    const b = JSON.parse(readFileSync(file, 'utf8')) as Bootstrap;
    if (!Array.isArray(b.xds_servers) || typeof b.xds_servers[0]?.server_uri !== 'string' || typeof b.node?.id !== 'string') throw new Error(`${file}: not an xDS bootstrap (xds_servers[0].server_uri and node.id are required)`);
    return new IstioDeviceRoutes(b, routeName, domain, events);
  }

  /** The routes in force (the last configuration ACKed; none before the first). */
  active(): readonly Fault[] {
    return this.routes;
  }

  /** Whether a configuration has been received from istiod since start. */
  get hasRoutes(): boolean {
    return this.received;
  }

  /** Opens the stream and subscribes. */
  start(): this {
    const Ads = adsClient();
    this.client ??= new Ads(this.bootstrap.xds_servers[0]!.server_uri, credentials.createInsecure());
    this.open();
    return this;
  }

  private node(): object {
    // google.protobuf.Struct comes from protobufjs's own copy, whose field names are camelCase whatever keepCase says.
    const metadata = Object.fromEntries(Object.entries(this.bootstrap.node.metadata ?? {}).map(([k, v]) => [k, { stringValue: String(v) }]));
    return { id: this.bootstrap.node.id, locality: this.bootstrap.node.locality ?? {}, metadata: { fields: metadata }, user_agent_name: 'flatline-ingestion' };
  }

  private open(): void {
    if (this.closed) return;
    const stream = (this.client as unknown as { StreamAggregatedResources(): ClientDuplexStream<object, DiscoveryResponse> }).StreamAggregatedResources();
    this.stream = stream;
    stream.on('data', (r: DiscoveryResponse) => this.onResponse(stream, r));
    stream.on('error', (err: Error) => this.onEnd(stream, err));
    stream.on('end', () => this.onEnd(stream, new Error('istiod ended the stream')));
    // The first request names the node; it carries the last version and nonce, as a reconnecting xDS client does.
    stream.write({ node: this.node(), type_url: RDS_TYPE_URL, resource_names: [this.routeName], version_info: this.version });
  }

  private onResponse(stream: ClientDuplexStream<object, DiscoveryResponse>, r: DiscoveryResponse): void {
    if (stream !== this.stream || r.type_url !== RDS_TYPE_URL) return;
    this.failures = 0;
    const version = r.version_info ?? '';
    this.nonce = r.nonce ?? '';
    try {
      const resource = (r.resources ?? []).map((a) => routesOfResource(a.value ?? new Uint8Array(), this.domain)).find((x) => x.name === this.routeName);
      this.routes = resource?.routes ?? [];
      this.version = version;
      this.received = true;
      stream.write({ type_url: RDS_TYPE_URL, resource_names: [this.routeName], version_info: version, response_nonce: this.nonce });
      this.events.onRoutes?.(this.routes, version);
    } catch (err) {
      // NACK: the previous version, this nonce, and why (google.rpc.Status, INVALID_ARGUMENT).
      stream.write({ type_url: RDS_TYPE_URL, resource_names: [this.routeName], version_info: this.version, response_nonce: this.nonce, error_detail: { code: 3, message: (err as Error).message } });
      this.events.onRejected?.(err as Error, version);
    }
  }

  private onEnd(stream: ClientDuplexStream<object, DiscoveryResponse>, err: Error): void {
    if (stream !== this.stream || this.closed) return;
    this.stream = undefined;
    stream.removeAllListeners('data');
    stream.on('error', () => {});
    stream.cancel();
    // 0.5 s doubling to 10 s, with jitter: istiod restarts in a few seconds.
    const delayMs = Math.min(10000, 500 * 2 ** Math.min(this.failures++, 5)) * (0.5 + Math.random() / 2);
    this.events.onDisconnected?.(err, delayMs);
    this.retryTimer = setTimeout(() => this.open(), delayMs);
    this.retryTimer.unref();
  }

  /** Closes the stream; the routes in force stay readable. */
  close(): void {
    this.closed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    if (this.stream !== undefined) {
      const s = this.stream;
      this.stream = undefined;
      s.on('error', () => {});
      s.cancel();
    }
    this.client?.close();
  }
}
