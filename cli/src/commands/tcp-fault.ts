/**
 * TCP faults (mesh's TCP_SCENARIOS) on the local stack: toxics added to and
 * removed from the Toxiproxy proxy of each link (stack.json names its API).
 * Each toxic is named by toxicName(), so off finds what on added.
 */
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
export async function tcpFaultOn(client: ToxiproxyClient, name: string, options: TcpScenarioOptions): Promise<string[]> {
  const s = tcpScenario(name);
  if (s === undefined) throw new Error(`no TCP scenario ${JSON.stringify(name)}`);
  const faults: readonly TcpFault[] = s.build(options);
  const perFlat = faults.find((f) => f.flats !== undefined);
  if (perFlat !== undefined) {
    throw new Error(`${name} with --flats needs a proxy per flat, and the local stack has one per link: leave --flats out to fault the whole ${perFlat.link} link`);
  }
  const lines: string[] = [];
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
  return lines;
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
