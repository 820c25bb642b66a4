/**
 * TCP faults (mesh's TCP_SCENARIOS) on the local stack: toxics added to and
 * removed from the Toxiproxy proxy of each link (stack.json names its API).
 * Each toxic is named by toxicName(), so off finds what on added.
 */
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { tcpScenario, toxicName, type TcpFault, type TcpScenarioOptions } from '@flatline/mesh';
import { readStackFile, ToxiproxyClient, ToxiproxyError, type Toxic } from '@flatline/stack';

/** The Toxiproxy of the stack in stateDir; throws, saying how to get one, when it runs none. */
export function linksOf(stateDir: string): ToxiproxyClient {
  const file = readStackFile(stateDir);
  if (file === undefined) throw new Error(`no local stack runs in ${stateDir} (start one with npm start)`);
  if (file.toxiproxy === undefined) throw new Error(`the stack in ${stateDir} runs no Toxiproxy (it was started with links off): TCP faults need it`);
  return new ToxiproxyClient(file.toxiproxy.api);
}

/**
 * Turns the TCP scenario name on: its toxics replace any of the same name.
 * Returns one line per declaration. A declaration with per-flat toxics is
 * refused: the local stack has one proxy per link, not one per flat.
 */
export async function tcpFaultOn(client: ToxiproxyClient, stateDir: string, name: string, options: TcpScenarioOptions): Promise<string[]> {
  const s = tcpScenario(name);
  if (s === undefined) throw new Error(`no TCP scenario ${JSON.stringify(name)}`);
  const faults: readonly TcpFault[] = s.build(options);
  const perFlat = faults.find((f) => f.flats !== undefined);
  if (perFlat !== undefined) {
    throw new Error(`${name} with --flats needs a proxy per flat, and the local stack has one per link: leave --flats out to fault the whole ${perFlat.link} link`);
  }
  const lines: string[] = [];
  // What each link had received when the fault went on: touched compares with it.
  const bytes = await client.receivedBytes();
  for (const fault of faults) {
    for (const t of fault.toxics) {
      const toxic = { name: toxicName(fault, t), type: t.type, stream: t.stream, toxicity: t.toxicity, attributes: t.attributes } as Parameters<ToxiproxyClient['addToxic']>[1];
      await client.removeToxic(fault.link, toxic.name!).catch((err: unknown) => {
        if (!(err instanceof ToxiproxyError && err.status === 404)) throw err;
      });
      await client.addToxic(fault.link, toxic);
    }
    lines.push(`${fault.name} on (link ${fault.link}): ${fault.toxics.map((t) => `${t.type} ${t.stream} toxicity ${t.toxicity} ${JSON.stringify(t.attributes)}`).join('; ')}`);
  }
  new Baselines(stateDir).set(name, Object.fromEntries(faults.map((f) => [f.link, bytes[f.link] ?? 0])));
  return lines;
}

/** Bytes each link had received when a TCP scenario went on, kept in the state folder (tcp-faults.json) for touched. */
class Baselines {
  constructor(private readonly stateDir: string) {}

  private get file(): string {
    return join(this.stateDir, 'tcp-faults.json');
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
    writeFileSync(`${this.file}.tmp`, JSON.stringify(all));
    renameSync(`${this.file}.tmp`, this.file);
  }
}

/**
 * Whether TCP scenario name acted, link by link: its toxics are on the
 * link, and the link received bytes since the fault went on (data met the
 * toxic). One line per link; acted is false when any link shows neither.
 */
export async function tcpFaultTouched(client: ToxiproxyClient, stateDir: string, name: string): Promise<{ acted: boolean; lines: string[] }> {
  const s = tcpScenario(name);
  if (s === undefined) throw new Error(`no TCP scenario ${JSON.stringify(name)}`);
  const since = new Baselines(stateDir).read()[name];
  const proxies = await client.listProxies();
  const bytes = await client.receivedBytes();
  const lines: string[] = [];
  let acted = true;
  for (const fault of s.build({})) {
    const on = (proxies[fault.link]?.toxics ?? []).filter((t) => t.name.startsWith(`${name}-`));
    const received = since === undefined ? undefined : (bytes[fault.link] ?? 0) - (since[fault.link] ?? 0);
    const ok = on.length > 0 && received !== undefined && received > 0;
    if (!ok) acted = false;
    lines.push(`${fault.link}: ${on.length > 0 ? on.map((t) => t.name).join(', ') : 'no toxic of it'}; ${received === undefined ? 'never turned on here' : `${received} bytes received since it went on`}`);
  }
  return { acted, lines };
}

/** Removes the toxics of TCP scenario name (every toxic whose name starts with it); returns how many. */
export async function tcpFaultOff(client: ToxiproxyClient, name: string): Promise<number> {
  let removed = 0;
  for (const proxy of Object.values(await client.listProxies())) {
    for (const t of proxy.toxics) {
      if (!t.name.startsWith(`${name}-`)) continue;
      await client.removeToxic(proxy.name, t.name);
      removed++;
    }
  }
  return removed;
}

/** Every toxic on every link, as flatline fault status shows it. */
export async function tcpFaultStatus(client: ToxiproxyClient): Promise<Array<{ link: string; listen: string; upstream: string; toxic: Toxic }>> {
  return Object.values(await client.listProxies())
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((p) => p.toxics.map((toxic) => ({ link: p.name, listen: p.listen, upstream: p.upstream, toxic })));
}
