/** The commands of `flatline`: each with a one-line summary and its module, loaded on demand. */
import type { Command } from 'commander';

/** One command: what --help lists, and how to load it. */
export interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  readonly load: () => Promise<Command>;
}

/** Every command, in the order --help lists them. */
export const COMMANDS: readonly CommandEntry[] = [
  { name: 'up', summary: 'start the whole system on this machine (supervised: a process that dies is restarted)', load: async () => (await import('./commands/up.ts')).upCommand() },
  { name: 'status', summary: 'health, restarts and outbox of every component of the running stack', load: async () => (await import('./commands/status.ts')).statusCommand() },
  { name: 'freshness', summary: 'the stalest flats and the age percentiles of the last successful fetch', load: async () => (await import('./commands/freshness.ts')).freshnessCommand() },
  { name: 'fault', summary: 'turn the fault scenarios of mesh/ on and off (locally, or on a cluster with --kube)', load: async () => (await import('./commands/fault.ts')).faultCommand() },
  { name: 'db', summary: 'freeze and thaw the local database', load: async () => (await import('./commands/db.ts')).dbCommand() },
  { name: 'node', summary: 'drain, crash, freeze and restore a local node', load: async () => (await import('./commands/node.ts')).nodeCommand() },
  { name: 'gaps', summary: 'missing sequence numbers per device and epoch in what is stored', load: async () => (await import('./commands/checks.ts')).gapsCommand() },
  { name: 'drained', summary: 'wait until every ingestion outbox is empty', load: async () => (await import('./commands/checks.ts')).drainedCommand() },
  { name: 'deadletters', summary: 'list and replay the fetch results storage refused as invalid', load: async () => (await import('./commands/deadletters.ts')).deadLettersCommand() },
  { name: 'chaos', summary: 'run a chaos experiment with the real Chaos Toolkit, and report', load: async () => (await import('./commands/chaos.ts')).chaosCommand() },
  { name: 'bench', summary: 'benchmark flatline beside its peers and floors', load: async () => (await import('./commands/bench.ts')).benchCommand() },
];
