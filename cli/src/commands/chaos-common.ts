/**
 * What `flatline chaos run` and `flatline chaos campaign` share: the stack
 * they start when none runs (or the one that runs), the sweep that undoes
 * whatever a run left behind, and how they print.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { readFaultFile, writeFaultFile } from '@flatline/mesh';
import { callControl, dbOfStateDir, DEFAULT_STACK_DB, expectedFlats, FREE_PORTS, freshnessReport, LocalStack, markerOf, ProcessRecord, readStackFile, recordEvent, STACK_DBS, STACK_MESHES, DEFAULT_STACK_MESH, stackRunning, ToxiproxyClient, type StackDb, type StackFile, type StackMesh } from '@flatline/stack';
import { ensureTools, ToolsError } from '../../../scripts/ensure-tools.mjs';
import { sweepPlaneFaults } from './plane-faults.ts';
import { tcpFaultsAllOff } from './tcp-fault.ts';
import { duration, wholeNumber } from './up.ts';

const SERVICES = ['storage', 'query', 'devices', 'ingestion'] as const;
export type Service = (typeof SERVICES)[number];

export const serviceEnv = (value: string, previous: Partial<Record<Service, Record<string, string>>> = {}): Partial<Record<Service, Record<string, string>>> => {
  const m = /^(\w+):([A-Z0-9_]+)=(.*)$/.exec(value);
  if (m === null || !SERVICES.includes(m[1] as Service)) throw new InvalidArgumentError(`expected <${SERVICES.join('|')}>:NAME=value`);
  const service = m[1] as Service;
  return { ...previous, [service]: { ...previous[service], [m[2]!]: m[3]! } };
};

/** A line of progress. */
export function say(line: string): void {
  process.stdout.write(`[chaos] ${line}\n`);
}

/** Whether a process is stopped (SIGSTOP) according to /proc. */
function frozen(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    return /^\d+ \(.*\) T/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Undoes whatever a run left behind, whatever the rollbacks did: every local
 * fault off, every node restored, the database thawed. Returns what it found,
 * so the report can say a rollback missed something.
 */
export async function sweep(stateDir: string): Promise<string[]> {
  const found: string[] = [];
  const faultsFile = join(stateDir, 'faults.json');
  let faults: string[];
  try {
    faults = readFaultFile(faultsFile).map((f) => f.name);
  } catch {
    faults = ['(unreadable fault file)'];
  }
  if (faults.length > 0) {
    found.push(`faults still on: ${faults.join(', ')}`);
    writeFaultFile(faultsFile, []);
    recordEvent(stateDir, 'remove', '*', 'swept by flatline chaos run');
  }
  const stack: StackFile | undefined = readStackFile(stateDir);
  if (stack === undefined || !stackRunning(stack)) return found;
  // A device, storage or query fault of a stack on the Istio plane is a VirtualService in istiod's folder, not in the file.
  found.push(...(await sweepPlaneFaults(stateDir)));
  if (frozen(stack.databasePid)) {
    found.push('database frozen');
    process.kill(stack.databasePid!, 'SIGCONT');
    recordEvent(stateDir, 'remove', 'database', 'thawed by flatline chaos run');
  }
  if (stack.toxiproxy !== undefined) {
    // TCP faults: toxics left on a link (a rollback that did not run, or failed).
    const links = new ToxiproxyClient(stack.toxiproxy.api, 5000);
    try {
      const left = Object.values(await links.listProxies()).flatMap((p) => p.toxics.map((t) => `${t.name} on ${p.name}`));
      if (left.length > 0) {
        found.push(`TCP faults still on: ${left.join(', ')}`);
        await tcpFaultsAllOff(links, stateDir);
        recordEvent(stateDir, 'remove', '*', 'TCP faults swept by flatline chaos run');
      }
    } catch (err) {
      found.push(`TCP faults unknown: Toxiproxy did not answer (${(err as Error).message})`);
    }
  }
  // A process of the stack left stopped (a campaign's SIGSTOP whose SIGCONT never came); a frozen node's replicas are its restore's.
  const frozenNodes = new Set(Object.entries(stack.nodes ?? {}).filter(([, state]) => state === 'frozen').map(([node]) => node));
  for (const c of stack.components ?? []) {
    const onFrozenNode = stack.replicas?.some((r) => r.name === c.name && frozenNodes.has(r.node)) ?? false;
    if (c.name !== 'ferretdb' && !onFrozenNode && frozen(c.pid)) {
      found.push(`${c.name} frozen`);
      process.kill(c.pid!, 'SIGCONT');
      recordEvent(stateDir, 'remove', c.name, 'thawed by flatline chaos');
    }
  }
  const down = Object.entries(stack.nodes ?? {}).filter(([, state]) => state !== 'ready');
  for (const [node, state] of down) {
    found.push(`${node} ${state}`);
    if (stack.control !== undefined) await callControl(stack.control, 'POST', `/nodes/${node}/restore`).catch((err: Error) => found.push(`${node}: restore failed: ${err.message}`));
  }
  return found;
}

/** What a stack this command starts looks like (chaos run, chaos campaign). */
export interface StackChoice {
  flats: number;
  interval: number;
  nodes: number;
  replicas: number;
  db?: StackDb;
  mesh: StackMesh;
  env: Partial<Record<Service, Record<string, string>>>;
}

/**
 * The stack running in stateDir (undefined: use it as it is), or a new one
 * started there with o, once every flat has been fetched and is fresh.
 */
export async function useOrStartStack(stateDir: string, o: StackChoice): Promise<LocalStack | undefined> {
  const existing = readStackFile(stateDir);
  if (existing !== undefined && stackRunning(existing)) {
    say(`using the stack already running in ${stateDir} (pid ${existing.pid}, ${existing.istiod === undefined ? 'local' : 'Istio'} plane); --flats, --nodes, --replicas, --mesh and --env apply only to a stack this command starts`);
    return undefined;
  }
  say(`no stack runs in ${stateDir}: starting one (${o.flats} flats, ${o.nodes} nodes, ${o.replicas} replicas, ${o.interval / 1000} s interval, FerretDB on ${o.db ?? dbOfStateDir(stateDir)}, ${o.mesh === 'istio' ? "Istio's control plane" : 'the local plane'})…`);
  if (o.mesh === 'istio') {
    try {
      ensureTools(['istiod'], { quiet: true });
    } catch (err) {
      if (!(err instanceof ToolsError)) throw err;
      throw new Error(`${err.message} (--mesh local runs the stack without istiod)`, { cause: err });
    }
  }
  mkdirSync(stateDir, { recursive: true });
  const record = new ProcessRecord(stateDir);
  await record.stopLeftovers();
  const stack = await LocalStack.start(
    {
      stateDir,
      host: '127.0.0.1',
      ports: FREE_PORTS,
      flats: o.flats,
      intervalMs: o.interval,
      replicas: o.replicas,
      nodes: o.nodes,
      db: o.db,
      mesh: o.mesh,
      logLevel: 'info',
      env: o.env,
      say: (l) => say(l),
      detached: true,
    },
    (n, running) => record.add(running.process.name, running.process.pid, markerOf(n)),
  );
  // Fresh, not merely fetched once: a state folder used before holds old fetches.
  say(`waiting for every flat to be fetched (and fresh)…`);
  const end = Date.now() + 60000;
  while (Date.now() < end) {
    // Every flat the stack polls, named: query alone knows only the flats it has seen fetched.
    const r = await freshnessReport(stack.queryAddress, { flatIds: expectedFlats(stack.credentialsFile) ?? [], limit: 0 }).catch(() => undefined);
    if (r !== undefined && r.neverFetchedCount === 0 && r.flatCount === o.flats && r.worstAgeSeconds < (2 * o.interval) / 1000 + 2) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  return stack;
}

export function timestamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/**
 * --keep-stack: the stack this command started keeps running, supervised by
 * this process until Ctrl-C (or SIGTERM) stops it. Returning instead left its
 * processes running with no supervisor once Node exited (seen: a campaign's
 * stack still polling 48 minutes later).
 */
export async function keepSupervising(stack: LocalStack, stateDir: string): Promise<void> {
  say(`the stack it started keeps running in ${stateDir} (supervisor ${stack.supervisorUrl ?? 'not serving'}), supervised by this process: Ctrl-C stops it`);
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  say('stopping the stack it started…');
  await stack.stop();
}

/** The options of a stack `chaos run` or `chaos campaign` starts when none runs (what StackChoice holds), and --keep-stack. */
export function stackChoiceOptions(cmd: Command, after: string): Command {
  return cmd
    .addOption(new Option('--flats <n>', 'flats of a stack this command starts').default(24).argParser(wholeNumber(1, 100000)))
    .addOption(new Option('--interval <duration>', 'poll interval of a stack this command starts').default(2000, '2s').argParser(duration))
    .addOption(new Option('--nodes <n>', 'local nodes of a stack this command starts').default(2).argParser(wholeNumber(1, 8)))
    .addOption(new Option('--replicas <n>', 'replicas per service of a stack this command starts').default(2).argParser(wholeNumber(1, 16)))
    .addOption(new Option('--db <backend>', "FerretDB's backend in a stack this command starts (see flatline up --help)").default(undefined, `${DEFAULT_STACK_DB} (sqlite for a state folder that holds SQLite files only)`).choices([...STACK_DBS]))
    .addOption(
      new Option('--mesh <plane>', "the mesh plane of a stack this command starts: istio (istiod applies the device, storage and query faults as VirtualServices; see flatline up --help) or local (the in-process injectors, for a machine that cannot build istiod)")
        .default(DEFAULT_STACK_MESH)
        .choices([...STACK_MESHES]),
    )
    .option('--env <service:NAME=value>', 'environment of a stack this command starts, e.g. ingestion:FLATLINE_FORWARD_ON_FAILURE=drop (repeatable; for weakened configurations)', serviceEnv, {})
    .option('--keep-stack', `keep a stack this command started running after the ${after}, supervised until Ctrl-C`, false);
}
