/**
 * Where mesh/'s TCP links (LINKS) run through Toxiproxy on a cluster: one
 * table, from which the Toxiproxy ConfigMap, Deployment, Service and
 * policies (toxiproxy-objects.ts) and the services' rewired addresses
 * (services-chart.ts, secrets-chart.ts) are all derived.
 *
 * Database links. The services reach MongoDB through the link's proxy with
 * directConnection=true, forwarded to the first member: a driver in
 * replica-set mode would learn the members' own addresses from the first
 * answer and connect to them, around the proxy. With Toxiproxy on, the
 * first member is made the preferred primary (priority 2, mongo-chart.ts):
 * while it is down the services see the database as unreachable, as H3 does.
 *
 * The device link. ingestion keeps polling http://devices…:8443, so that its
 * sidecar still routes (and faults) each request and originates the TLS the
 * devices DestinationRule asks for; the Service `devices` selects the
 * Toxiproxy pods instead, whose proxy passes that TLS through to the
 * simulator (Service `devices-direct`).
 */
import { DB_LINKS, type Link } from '@flatline/mesh';
import { mongoMembers, PORTS, serviceHost, type Settings } from './settings.ts';

/** The Toxiproxy workload: its name (Deployment, Service, ServiceAccount), image and API port. */
export const TOXIPROXY = {
  name: 'toxiproxy',
  /** Pinned: the same release as the local stack's toxiproxy-server (tools/install-toxiproxy.sh). */
  image: 'ghcr.io/shopify/toxiproxy:2.5.0',
  /** Its HTTP API (and /metrics): in no Service and admitted by no AuthorizationPolicy; reached with kubectl port-forward. */
  apiPort: 8474,
  /** Where the ConfigMap of proxies is mounted. */
  configDir: '/etc/toxiproxy',
  configFile: 'proxies.json',
} as const;

/** The Service that reaches the simulator itself while `devices` points at Toxiproxy. */
export const DEVICES_DIRECT = 'devices-direct';

/** A link proxied on a cluster: the port its proxy listens on in the Toxiproxy pod, its only client, and where it forwards. */
export interface ClusterLink {
  readonly link: Link;
  readonly port: number;
  readonly client: 'storage' | 'query' | 'ingestion';
  readonly upstream: (s: Settings) => string;
}

/** A link that has no proxy on a cluster, and why. */
export interface UnproxiedLink {
  readonly link: Link;
  readonly notOnACluster: string;
}

const firstMember = (s: Settings): string => mongoMembers(s)[0]!;

/** Every link of mesh's LINKS, placed (a Record: a link added to mesh does not compile until it is placed here). */
const PLACEMENT: { readonly [L in Link]: Omit<ClusterLink, 'link'> | Omit<UnproxiedLink, 'link'> } = {
  'storage-db': { port: 27101, client: 'storage', upstream: firstMember },
  'query-db': { port: 27102, client: 'query', upstream: firstMember },
  'ingestion-db': { port: 27103, client: 'ingestion', upstream: firstMember },
  'ingestion-devices': { port: 18443, client: 'ingestion', upstream: (s) => `${serviceHost(DEVICES_DIRECT, s)}:${PORTS.devices.https}` },
  'ingestion-storage': {
    notOnACluster:
      'ingestion and storage speak mutual TLS through their sidecars, and storage admits ingestion by its identity alone: a TCP proxy in between would reach storage under its own identity (refused) or need storage to accept plaintext. Istio faults that link instead (storage-unavailable, storage-slow).',
  },
};

/** The links with a proxy on a cluster, in mesh's order. */
export const CLUSTER_LINKS: readonly ClusterLink[] = Object.entries(PLACEMENT).flatMap(([link, p]) => ('port' in p ? [{ link: link as Link, ...p }] : []));

/** The database links (mesh's DB_LINKS), each with its proxy. */
export const DB_CLUSTER_LINKS: readonly ClusterLink[] = CLUSTER_LINKS.filter((l) => DB_LINKS.includes(l.link));

/** The links without one, each with its reason. */
export const UNPROXIED_LINKS: readonly UnproxiedLink[] = Object.entries(PLACEMENT).flatMap(([link, p]) => ('notOnACluster' in p ? [{ link: link as Link, ...p }] : []));

/** The cluster link called link; throws for one that has no proxy on a cluster. */
export function clusterLink(link: Link): ClusterLink {
  const found = CLUSTER_LINKS.find((l) => l.link === link);
  if (found === undefined) throw new Error(`link ${link} has no Toxiproxy proxy on a cluster`);
  return found;
}

/** The database link of a service (its own proxy). */
export function dbLinkOf(service: 'storage' | 'query' | 'ingestion'): ClusterLink {
  return clusterLink(`${service}-db`);
}

/** host:port a client dials to go through link's proxy (the Toxiproxy Service). */
export function viaToxiproxy(link: ClusterLink, s: Settings): string {
  return `${serviceHost(TOXIPROXY.name, s)}:${link.port}`;
}

/** The ConfigMap's proxies.json: toxiproxy-server -config creates these proxies at start, each listening on every address of the pod. */
export function toxiproxyConfig(s: Settings): string {
  const proxies = CLUSTER_LINKS.map((l) => ({ name: l.link, listen: `0.0.0.0:${l.port}`, upstream: l.upstream(s), enabled: true }));
  return `${JSON.stringify(proxies, null, 1)}\n`;
}
