/** The addresses a running `flatline up` wrote to <state>/stack.json, for the other commands. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { SupervisedStatus } from './crash-loop.ts';

/** What stack.json holds. */
export interface StackFile {
  readonly query: string;
  readonly storage: string;
  readonly devices: string;
  readonly devicesControl: string;
  readonly database: string;
  readonly databasePid?: number;
  readonly ingestion: ReadonlyArray<{ grpc?: string; metrics?: string }>;
  /** Metrics addresses of storage, query (one running replica's; absent while none runs) and devices. */
  readonly metrics: Readonly<Record<string, string | undefined>>;
  /** Replicas of storage, query and ingestion, with their node (pid absent while the node is down). */
  readonly replicas?: ReadonlyArray<{ name: string; node: string; pid?: number; grpc: string; metrics: string }>;
  /** Local nodes and where each stands (ready, drained, crashed, frozen). */
  readonly nodes?: Readonly<Record<string, string>>;
  /** Every supervised process: state, pid, restarts, last exit (absent from an older flatline). */
  readonly components?: readonly SupervisedStatus[];
  /** The supervisor's control socket (flatline node). */
  readonly control?: string;
  /** The supervisor's read-only probes over HTTP, http://127.0.0.1:<port> (absent from an older flatline). */
  readonly supervisor?: string;
  /** Toxiproxy's API (http://127.0.0.1:<port>) and where each link's proxy listens (absent without Toxiproxy, or from an older flatline). */
  readonly toxiproxy?: { readonly api: string; readonly links: Readonly<Record<string, string>> };
  /** istiod with --mesh istio: its xDS address, debug URL, config folder and the bootstrap file of proxyless clients (absent otherwise). */
  readonly istiod?: { readonly xds: string; readonly debug: string; readonly config: string; readonly bootstrap: string };
  /** PostgreSQL under FerretDB (the postgresql backend): its postgres:// URL, for psql (absent on SQLite). */
  readonly postgresql?: { readonly url: string };
  /** Whether every component has started (false while the ingestion replicas still start). */
  readonly started?: boolean;
  readonly pid: number;
}

const address = z.string().min(1);

/** The shape stack.json must have to be used (what StackFile says; nested records loosely, as they grow). */
export const STACK_FILE_SCHEMA = z.object({
  query: address,
  storage: address,
  devices: address,
  devicesControl: address,
  database: address,
  databasePid: z.number().int().positive().optional(),
  ingestion: z.array(z.object({ grpc: address.optional(), metrics: address.optional() })),
  metrics: z.record(z.string(), address.optional()),
  replicas: z.array(z.object({ name: z.string(), node: z.string(), pid: z.number().int().optional(), grpc: address, metrics: address })).optional(),
  nodes: z.record(z.string(), z.string()).optional(),
  components: z.array(z.looseObject({ name: z.string(), state: z.string(), restarts: z.number().int() })).optional(),
  control: z.string().optional(),
  supervisor: z.string().url().optional(),
  toxiproxy: z.object({ api: z.string().url(), links: z.record(z.string(), address) }).optional(),
  istiod: z.object({ xds: address, debug: z.string().url(), config: z.string(), bootstrap: z.string() }).optional(),
  postgresql: z.object({ url: z.string().startsWith('postgres://') }).optional(),
  started: z.boolean().optional(),
  pid: z.number().int().positive(),
});

/** stack.json of stateDir that does not have the shape of one: what is wrong with it. */
export class StackFileError extends Error {
  override name = 'StackFileError';
}

/**
 * Reads stack.json of stateDir; undefined when no stack wrote one. A file
 * that is no stack.json (another version's, a partial copy) is refused with
 * a StackFileError naming the first field that is wrong, not half-read.
 */
export function readStackFile(stateDir: string): StackFile | undefined {
  const path = join(stateDir, 'stack.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  const parsed = STACK_FILE_SCHEMA.safeParse(raw);
  if (!parsed.success) {
    // Left by a stack that is gone (another version's, say): as good as none.
    const pid = (raw as { pid?: unknown } | null)?.pid;
    if (typeof pid !== 'number' || !stackRunning({ pid } as StackFile)) return undefined;
    const issue = parsed.error.issues[0];
    throw new StackFileError(`${path} is not a stack file of this flatline: ${issue?.path.join('.') || '(top)'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data as StackFile;
}

/** Whether the `flatline up` that wrote the file still runs. */
export function stackRunning(file: StackFile): boolean {
  try {
    process.kill(file.pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The supervisor URL of the running stack of stateDir, or undefined after
 * telling the user why there is none (exit code 2): no stack runs, or one
 * started by an older flatline that had no probe server.
 */
export function requireSupervisor(stateDir: string): { file: StackFile; url: string } | undefined {
  const file = requireStack(stateDir);
  if (file === undefined) return undefined;
  if (file.supervisor === undefined) {
    process.stderr.write(`the stack in ${stateDir} (pid ${file.pid}) was started by an older flatline, without the supervisor's probes: stop it and start it again\n`);
    process.exitCode = 2;
    return undefined;
  }
  return { file, url: file.supervisor };
}

/** The running stack of stateDir, or undefined after telling the user how to start one (exit code 2). */
export function requireStack(stateDir: string): StackFile | undefined {
  const file = readStackFile(stateDir);
  if (file === undefined || !stackRunning(file)) {
    process.stderr.write(`no running stack found in ${stateDir} (start one with: npm start)\n`);
    process.exitCode = 2;
    return undefined;
  }
  return file;
}
