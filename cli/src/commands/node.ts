/** `flatline node`: fail a local node as a VM fails (drain, crash, freeze) and restore it; the actions of H2. */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { DEFAULT_STATE_DIR, callControl, requireStack, type StackFile } from '@flatline/stack';

const STATE_DIR: [string, string, string] = ['--state-dir <dir>', 'state folder of the local stack', DEFAULT_STATE_DIR];

/** Process state letter from /proc (R, S, T for stopped, …), or undefined when the process is gone. */
function processState(pid: number): string | undefined {
  try {
    return /^\d+ \(.*\) (\S)/s.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

function controlOf(stateDir: string): { stack: StackFile; socket: string } | undefined {
  const stack = requireStack(stateDir);
  if (stack === undefined) return undefined;
  if (stack.control === undefined) {
    process.stderr.write(`flatline node: the stack in ${stateDir} has no control socket (started by an older flatline?)\n`);
    process.exitCode = 2;
    return undefined;
  }
  return { stack, socket: stack.control };
}

async function act(stateDir: string, action: string, node: string | undefined, all: boolean): Promise<void> {
  const c = controlOf(stateDir);
  if (c === undefined) return;
  const names = all ? Object.keys(c.stack.nodes ?? {}) : node === undefined ? [] : [node];
  if (names.length === 0) {
    process.stderr.write(`flatline node ${action}: name a node (${Object.keys(c.stack.nodes ?? {}).join(', ')})${action === 'restore' ? ' or --all' : ''}\n`);
    process.exitCode = 2;
    return;
  }
  for (const name of names) {
    const { status, body } = await callControl(c.socket, 'POST', `/nodes/${encodeURIComponent(name)}/${action}`);
    const b = body as { state?: string; error?: string };
    if (status === 200) process.stdout.write(`${name}: ${b.state}\n`);
    else {
      process.stderr.write(`flatline node ${action} ${name}: ${b.error ?? `HTTP ${status}`}\n`);
      process.exitCode = 1;
    }
  }
}

/** The `node` command. */
export function nodeCommand(): Command {
  const cmd = new Command('node').description('fail a local node (its replicas of storage, query and ingestion) as a VM fails, and restore it');
  cmd
    .command('list')
    .description('the nodes, where each stands, and their replicas')
    .option(...STATE_DIR)
    .option('--json', 'print as JSON', false)
    .action(async (o: { stateDir: string; json: boolean }) => {
      const c = controlOf(o.stateDir);
      if (c === undefined) return;
      const { body } = await callControl(c.socket, 'GET', '/nodes');
      const nodes = body as Array<{ name: string; state: string; replicas: string[] }>;
      if (o.json) process.stdout.write(`${JSON.stringify(nodes, null, 2)}\n`);
      else for (const n of nodes) process.stdout.write(`${n.name.padEnd(8)} ${n.state.padEnd(8)} ${n.replicas.join(', ')}\n`);
    });
  const verbs: Array<[string, string]> = [
    ['drain', 'graceful, like kubectl drain: SIGTERM to each replica on the node; replicas on other nodes take over'],
    ['crash', 'SIGKILL every replica on the node: a VM that dies'],
    ['freeze', 'SIGSTOP every replica on the node: a VM that hangs, its connections open and silent'],
  ];
  for (const [verb, what] of verbs) {
    cmd
      .command(`${verb} <node>`)
      .description(what)
      .option(...STATE_DIR)
      .action(async (node: string, o: { stateDir: string }) => act(o.stateDir, verb, node, false));
  }
  cmd
    .command('restore [node]')
    .description(
      'bring a node back: SIGCONT a frozen one, restart a drained or crashed one (and any replica that died while it was frozen) on the same ports and outboxes; a ready node is left alone. ' +
        'Replicas of a failed node stay down until then: the supervisor restarts only what dies on its own',
    )
    .option(...STATE_DIR)
    .option('--all', 'every node (the rollback of an experiment)', false)
    .action(async (node: string | undefined, o: { stateDir: string; all: boolean }) => act(o.stateDir, 'restore', node, o.all));
  cmd
    .command('down <node>')
    .description("proof that a node's failure took effect: exit 0 when none of its replicas runs (each gone, or stopped by SIGSTOP), else 1")
    .option(...STATE_DIR)
    .action((node: string, o: { stateDir: string }) => {
      const stack = requireStack(o.stateDir);
      if (stack === undefined) return;
      const replicas = (stack.replicas ?? []).filter((r) => r.node === node);
      if (replicas.length === 0) {
        process.stderr.write(`flatline node down: no replicas on ${node}\n`);
        process.exitCode = 2;
        return;
      }
      let running = 0;
      for (const r of replicas) {
        const state = r.pid === undefined ? undefined : processState(r.pid);
        const how = state === undefined ? 'gone' : state === 'T' ? 'stopped (frozen)' : `running (${state})`;
        if (state !== undefined && state !== 'T') running++;
        process.stdout.write(`${r.name}${r.pid === undefined ? '' : ` pid ${r.pid}`}: ${how}\n`);
      }
      process.stdout.write(`${node}: ${running === 0 ? 'down' : `${running} replica(s) still running`} (${stack.nodes?.[node] ?? 'unknown'})\n`);
      if (running > 0) process.exitCode = 1;
    });
  return cmd;
}
