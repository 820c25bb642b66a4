/** The components of the local stack: FerretDB and the flatline services. */
import { join } from 'node:path';
import { TOOLS_BIN } from './paths.ts';
import { buildService } from './service-build.ts';
import { spawnReady, type ManagedProcess } from './processes.ts';

/** A running FerretDB. */
export interface RunningDatabase {
  readonly process: ManagedProcess;
  /** host:port it listens on. */
  readonly address: string;
  /** Connection string for the flatline database. */
  readonly uri: string;
}

/**
 * Starts FerretDB (built by tools/install.sh) on listen (port 0 picks one)
 * with its SQLite files in stateDir, or on PostgreSQL at postgresqlUrl
 * (stack/src/postgres.ts) when given.
 */
export async function startDatabase(options: { listen: string; stateDir: string; logFile: string; postgresqlUrl?: string; database?: string; detached?: boolean }): Promise<RunningDatabase> {
  const backend = options.postgresqlUrl === undefined ? ['--state-dir', options.stateDir] : ['--postgresql-url', options.postgresqlUrl];
  const { process, ready } = await spawnReady({
    detached: options.detached ?? false,
    name: 'ferretdb',
    command: join(TOOLS_BIN, 'ferretdb'),
    // Its profiler on a free loopback port; the address is in its log ("ferretdb debug http://…/debug/pprof/").
    args: ['--listen-addr', options.listen, ...backend, '--log-level', 'warn', '--debug-addr', '127.0.0.1:0'],
    logFile: options.logFile,
    ready: (line) => /^ferretdb ready (\S+)$/.exec(line)?.[1],
  });
  return { process, address: ready, uri: `mongodb://${ready}/${options.database ?? 'flatline'}` };
}

/** A running flatline service. */
export interface RunningService {
  readonly process: ManagedProcess;
  /** host:port of its gRPC server ('' for a service without one). */
  readonly grpc: string;
  /** host:port of its /metrics endpoint. */
  readonly metrics: string;
  /** Every address its "listening" line announced (grpc, metrics, https, control, …). */
  readonly addresses: Readonly<Record<string, string>>;
}

/**
 * Starts a service's main (services/<name>/src/main.ts), compiled
 * (service-build.ts: the sources as they are now), and waits for its
 * "listening" log line; name (default: the service) names the process and
 * its log.
 */
export async function startService(options: {
  service: string;
  name?: string;
  env: Readonly<Record<string, string>>;
  logFile: string;
  detached?: boolean;
  /** Folder for a V8 CPU profile written when the process exits (node --cpu-prof); undefined: none. */
  cpuProfileDir?: string | undefined;
}): Promise<RunningService> {
  let addresses: Record<string, string> = {};
  const { process } = await spawnReady({
    detached: options.detached ?? false,
    name: options.name ?? options.service,
    command: globalThis.process.execPath,
    args: [...(options.cpuProfileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`]), await buildService(options.service)],
    env: options.env,
    logFile: options.logFile,
    ready: (line) => {
      if (!line.startsWith('{')) return undefined;
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (entry['msg'] !== 'listening') return undefined;
        addresses = Object.fromEntries(Object.entries(entry).filter((e): e is [string, string] => typeof e[1] === 'string' && /:\d+$/.test(e[1])));
        return 'ready';
      } catch {
        return undefined;
      }
    },
  });
  return { process, grpc: addresses['grpc'] ?? '', metrics: addresses['metrics'] ?? '', addresses };
}
