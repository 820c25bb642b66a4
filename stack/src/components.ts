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

/** Smallest old-space limit nodeHeapArgs gives, in MB. */
export const MIN_OLD_SPACE_MB = 256;
/** Old-space limit per 1,000 flats of the stack, in MB (nodeHeapArgs). */
export const OLD_SPACE_MB_PER_1000_FLATS = 48;

/**
 * Node options that bound ingestion's heap for a stack of `flats` flats.
 * Without a limit V8 sizes the heap from the machine's memory (a 4 GB old
 * space here) and lets the old space grow up to about 4x what is live
 * between collections: at 10,000 flats each replica held ~400 MB resident
 * for ~70 MB live. A limit makes V8 grow it by less (its growing factor
 * shrinks with the limit), at about the same CPU per poll; measured on this
 * machine with `flatline up --flats 10000` (two replicas, 3 minutes each):
 * no limit 401 / 419 MB, 0.381 / 0.390 ms of CPU per poll; 512 MB 233 / 234
 * MB, 0.345 / 0.400 ms; 256 MB 223 / 228 MB, 0.426 / 0.440 ms. (A smaller
 * young generation, --max-semi-space-size=4, saved 15 MB more and cost
 * 0.57 ms per poll: polling fell behind.) The limit is sized so that one
 * replica can hold every flat (the others down) with room to spare: the live
 * heap measured ~15 KB per flat held, so 48 MB per 1,000 flats is about 3x
 * that, and never less than MIN_OLD_SPACE_MB. On Kubernetes Node sizes the
 * heap from the container's memory limit instead.
 */
export function nodeHeapArgs(service: string, flats: number): string[] {
  if (service !== 'ingestion') return [];
  const mb = Math.max(MIN_OLD_SPACE_MB, Math.ceil((flats / 1000) * OLD_SPACE_MB_PER_1000_FLATS));
  return [`--max-old-space-size=${mb}`];
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
  /** Node options before the script (heap limits: nodeHeapArgs). */
  nodeArgs?: readonly string[];
}): Promise<RunningService> {
  let addresses: Record<string, string> = {};
  const { process } = await spawnReady({
    detached: options.detached ?? false,
    name: options.name ?? options.service,
    command: globalThis.process.execPath,
    args: [...(options.cpuProfileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`]), ...(options.nodeArgs ?? []), await buildService(options.service)],
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
