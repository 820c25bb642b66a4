/**
 * TCP faults (mesh's TCP_SCENARIOS): toxics added to and removed from the
 * Toxiproxy proxy of each link, on the local stack (stack.json names its
 * API) or on a cluster (the Toxiproxy of `npm run synth -- --toxiproxy`,
 * whose API a user forwards with kubectl port-forward: the same proxy
 * names, the same client). Each toxic is named by toxicName(), so off finds
 * what on added.
 */
import { mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { readDeviceLinks, tcpScenario, tcpToxicsFor, toxicName, writeDeviceLinks, type TcpFault, type TcpScenarioOptions, type TcpToxic } from '@flatline/mesh';
import { readStackFile, ToxiproxyClient, ToxiproxyError, type Toxic } from '@flatline/stack';

/** The Toxiproxy of the stack in stateDir; throws, saying how to get one, when it runs none. */
export function linksOf(stateDir: string): ToxiproxyClient {
  const file = readStackFile(stateDir);
  if (file === undefined) throw new Error(`no local stack runs in ${stateDir} (start one with npm start)`);
  if (file.toxiproxy === undefined) throw new Error(`the stack in ${stateDir} runs no Toxiproxy (it was started with links off): TCP faults need it`);
  return new ToxiproxyClient(file.toxiproxy.api);
}

/** Where a cluster's Toxiproxy is, for the messages that say how to reach it. */
export interface ClusterToxiproxy {
  readonly client: ToxiproxyClient;
  readonly namespace: string;
}

/** How a user reaches a cluster's Toxiproxy API. */
export const portForwardHint = (namespace: string): string =>
  `forward it first: kubectl -n ${namespace} port-forward deploy/toxiproxy 8474 (the Deployment exists when the manifests were synthesized with npm run synth -- --toxiproxy)`;

/**
 * The Toxiproxy API of a cluster at url (e.g. http://127.0.0.1:8474 through a
 * port-forward); throws, naming the URL and the port-forward, unless it
 * answers GET /version.
 */
export async function clusterToxiproxy(url: string, namespace: string): Promise<ClusterToxiproxy> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`--toxiproxy-api must be a URL such as http://127.0.0.1:8474, got ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'http:') throw new Error(`--toxiproxy-api must be an http:// URL (Toxiproxy's API is plain HTTP), got ${JSON.stringify(url)}`);
  const client = new ToxiproxyClient(url.replace(/\/+$/, ''), 5000);
  try {
    await client.version();
  } catch (err) {
    throw new Error(`the cluster's Toxiproxy API does not answer at ${url}: ${(err as Error).message}; ${portForwardHint(namespace)}`, { cause: err });
  }
  return { client, namespace };
}

/** The proxy of one flat's own device link. */
export const flatProxy = (flatId: string): string => `ingestion-devices-flat-${flatId}`;

const deviceLinksFile = (stateDir: string): string => join(stateDir, 'device-links.json');

/** Adds toxics to proxy, each replacing one of the same name. */
async function addToxics(client: ToxiproxyClient, proxy: string, fault: TcpFault, toxics: readonly TcpToxic[]): Promise<void> {
  for (const t of toxics) {
    const toxic = { name: toxicName(fault, t), type: t.type, stream: t.stream, toxicity: t.toxicity, attributes: t.attributes } as Parameters<ToxiproxyClient['addToxic']>[1];
    await client.removeToxic(proxy, toxic.name!).catch((err: unknown) => {
      if (!(err instanceof ToxiproxyError && err.status === 404)) throw err;
    });
    await client.addToxic(proxy, toxic);
  }
}

const describe = (toxics: readonly TcpToxic[]): string => toxics.map((t) => `${t.type} ${t.stream} toxicity ${t.toxicity} ${JSON.stringify(t.attributes)}`).join('; ');

/**
 * Turns the TCP scenario name on: its toxics replace any of the same name.
 * A declaration with per-flat toxics (the device link) gives each flat a
 * proxy of its own in front of the gateway, with that flat's toxics, and
 * only then points ingestion at it (device-links.json). Returns one line per
 * link or flat.
 */
export async function tcpFaultOn(client: ToxiproxyClient, stateDir: string, name: string, options: TcpScenarioOptions, cluster?: ClusterToxiproxy): Promise<string[]> {
  const s = tcpScenario(name);
  if (s === undefined) throw new Error(`no TCP scenario ${JSON.stringify(name)}`);
  const faults: readonly TcpFault[] = s.build(options);
  if (cluster !== undefined) {
    refusePerFlat(name, faults);
    await checkClusterProxies(cluster, name, faults);
  }
  const lines: string[] = [];
  // What each link had received when the fault went on: touched compares with it.
  const bytes = await client.receivedBytes();
  const baseline: Record<string, number> = {};
  for (const fault of faults) {
    if (fault.flats === undefined) {
      await addToxics(client, fault.link, fault, fault.toxics);
      baseline[fault.link] = bytes[fault.link] ?? 0;
      lines.push(`${fault.name} on (link ${fault.link}): ${describe(fault.toxics)}`);
      continue;
    }
    const gateway = readStackFile(stateDir)?.devices;
    if (gateway === undefined) throw new Error(`no local stack runs in ${stateDir}: a per-flat device link needs the gateway's address`);
    const links = { ...readDeviceLinks(deviceLinksFile(stateDir)) };
    for (const flatId of Object.keys(fault.flats)) {
      const proxyName = flatProxy(flatId);
      const existing = (await client.listProxies())[proxyName];
      const proxy = existing ?? (await client.createProxy({ name: proxyName, upstream: gateway }));
      await addToxics(client, proxyName, fault, tcpToxicsFor(fault, flatId));
      links[flatId] = proxy.listen;
      baseline[proxyName] = bytes[proxyName] ?? 0;
      lines.push(`${fault.name} on (flat ${flatId}, its own link ${proxy.listen}): ${describe(tcpToxicsFor(fault, flatId))}`);
    }
    writeDeviceLinks(deviceLinksFile(stateDir), links);
  }
  new Baselines(stateDir, cluster !== undefined).set(name, baseline);
  return lines;
}

/**
 * Throws when TCP scenario name, built with options, has per-flat toxics:
 * each flat's own proxy, which ingestion follows through
 * <state>/device-links.json, exists on the local stack only. Checked before
 * a cluster's Toxiproxy is asked anything.
 */
export function refusePerFlatOnCluster(name: string, options: TcpScenarioOptions): void {
  const s = tcpScenario(name);
  if (s === undefined) throw new Error(`no TCP scenario ${JSON.stringify(name)}`);
  refusePerFlat(name, s.build(options));
}

function refusePerFlat(name: string, faults: readonly TcpFault[]): void {
  if (faults.some((f) => f.flats !== undefined)) {
    throw new Error(
      `${name} with --flats, --share or --per-flat gives each flat a proxy of its own, which only the local stack has (ingestion follows <state>/device-links.json there); ` +
        'on a cluster the device link has one proxy: turn it on for every flat (leave those options out)',
    );
  }
}

/** Throws unless the cluster's Toxiproxy has a proxy for every link the faults cut (nothing is added then). */
async function checkClusterProxies(cluster: ClusterToxiproxy, name: string, faults: readonly TcpFault[]): Promise<void> {
  const proxies = await cluster.client.listProxies();
  const missing = faults.map((f) => f.link).filter((link) => proxies[link] === undefined);
  if (missing.length > 0) {
    throw new Error(
      `the cluster's Toxiproxy (${cluster.client.baseUrl}) has no proxy ${missing.join(', ')} for ${name} (it has ${Object.keys(proxies).sort().join(', ') || 'none'}); ` +
        'npm run synth -- --toxiproxy places every link that a cluster can proxy (see its --help)',
    );
  }
}

/**
 * Removes the toxics of TCP scenario name (every toxic whose name starts
 * with it); a flat's own proxy left without toxics is removed, its flat
 * pointed back at the gateway first. Returns how many toxics it removed.
 */
export async function tcpFaultOff(client: ToxiproxyClient, stateDir: string, name: string): Promise<number> {
  let removed = 0;
  const proxies = Object.values(await client.listProxies());
  const emptied: string[] = [];
  for (const proxy of proxies) {
    const mine = proxy.toxics.filter((t) => t.name.startsWith(`${name}-`));
    if (mine.length > 0 && mine.length === proxy.toxics.length && proxy.name.startsWith(flatProxy(''))) emptied.push(proxy.name);
  }
  if (emptied.length > 0) {
    const links = { ...readDeviceLinks(deviceLinksFile(stateDir)) };
    for (const p of emptied) delete links[p.slice(flatProxy('').length)];
    writeDeviceLinks(deviceLinksFile(stateDir), links);
  }
  for (const proxy of proxies) {
    for (const t of proxy.toxics) {
      if (!t.name.startsWith(`${name}-`)) continue;
      await client.removeToxic(proxy.name, t.name);
      removed++;
    }
  }
  // Ingestion follows the links file within 200 ms; a poll already on its way to the proxy may still fail once.
  for (const p of emptied) await client.deleteProxy(p);
  return removed;
}

/** Every TCP fault off: the links file emptied, every per-flat proxy deleted, every toxic removed. */
export async function tcpFaultsAllOff(client: ToxiproxyClient, stateDir: string): Promise<void> {
  writeDeviceLinks(deviceLinksFile(stateDir), {});
  for (const proxy of Object.keys(await client.listProxies())) if (proxy.startsWith(flatProxy(''))) await client.deleteProxy(proxy);
  await client.reset();
}

/** Bytes each link had received when a TCP scenario went on, kept in the state folder (tcp-faults.json; a cluster's: tcp-faults-kube.json) for touched. */
class Baselines {
  constructor(
    private readonly stateDir: string,
    private readonly cluster = false,
  ) {}

  private get file(): string {
    return join(this.stateDir, this.cluster ? 'tcp-faults-kube.json' : 'tcp-faults.json');
  }

  read(): Record<string, Record<string, number>> {
    try {
      return JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, Record<string, number>>;
    } catch {
      return {};
    }
  }

  set(name: string, bytes: Record<string, number>): void {
    const all = { ...this.read(), [name]: bytes };
    // Run against a cluster from a fresh clone, the state folder may not exist yet.
    mkdirSync(this.stateDir, { recursive: true });
    writeFileSync(`${this.file}.tmp`, JSON.stringify(all));
    renameSync(`${this.file}.tmp`, this.file);
  }
}

/**
 * Whether TCP scenario name acted, link by link: its toxics are on the
 * link, and the link received bytes since the fault went on (data met the
 * toxic). One line per link; acted is false when any link shows neither.
 * Toxiproxy counts a connection's bytes once they are through: a link whose
 * every connection is still held (a latency longer than the poll, the client
 * not yet gone) shows none until one ends.
 */
export async function tcpFaultTouched(client: ToxiproxyClient, stateDir: string, name: string, cluster = false): Promise<{ acted: boolean; lines: string[] }> {
  const s = tcpScenario(name);
  if (s === undefined) throw new Error(`no TCP scenario ${JSON.stringify(name)}`);
  const since = new Baselines(stateDir, cluster).read()[name];
  const proxies = await client.listProxies();
  const bytes = await client.receivedBytes();
  const lines: string[] = [];
  let acted = true;
  const names = since === undefined ? [] : Object.keys(since);
  if (names.length === 0) return { acted: false, lines: [`${name} was never turned on here`] };
  for (const proxyName of names) {
    const on = (proxies[proxyName]?.toxics ?? []).filter((t) => t.name.startsWith(`${name}-`));
    const received = (bytes[proxyName] ?? 0) - (since![proxyName] ?? 0);
    if (!(on.length > 0 && received > 0)) acted = false;
    lines.push(`${proxyName}: ${on.length > 0 ? on.map((t) => t.name).join(', ') : 'no toxic of it'}; ${received} bytes received since it went on`);
  }
  return { acted, lines };
}

/** Every toxic on every link, as flatline fault status shows it. */
export async function tcpFaultStatus(client: ToxiproxyClient): Promise<Array<{ link: string; listen: string; upstream: string; toxic: Toxic }>> {
  return Object.values(await client.listProxies())
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((p) => p.toxics.map((toxic) => ({ link: p.name, listen: p.listen, upstream: p.upstream, toxic })));
}
