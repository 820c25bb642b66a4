/** Test harness: real FerretDB and real service processes on free ports, in a temporary folder. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { MongoClient } from 'mongodb';
import { checkHealth, createLogger, type StartedServer } from '@flatline/platform';
import { QueryServiceClient, StorageServiceClient } from '@flatline/proto';
import { startDatabase, startService, type RunningDatabase, type RunningService } from './components.ts';
import { FREE_PORTS, LocalStack, type StackMesh, type StackOptions } from './stack.ts';

export type { StartedServer };

/** The last lines (each cut to width) of every log in logs whose file name matches, that keep() keeps, each file under a heading saying what they are. */
function lastLogLines(logs: string, file: RegExp, keep: (line: string) => boolean, what: string, last: number, width: number): string {
  const out: string[] = [];
  for (const name of readdirSync(logs).filter((f) => file.test(f)).sort()) {
    const lines = readFileSync(join(logs, name), 'utf8').split('\n').filter(keep);
    out.push(`--- ${name}: the last ${what} lines`, ...lines.slice(-last).map((l) => l.slice(0, width)));
  }
  return out.join('\n');
}

/**
 * What storage and query said of their database and health: the last lines
 * of each of their logs in logs (storage.log, query-1.log, …) that come from
 * the database watch, change the health, or warn or err. For a failed test's
 * message: the logs go with the test's temporary folder.
 */
export function databaseWatchLines(logs: string, last = 25): string {
  const keep = (l: string): boolean => l.includes('"db-watch"') || l.includes('"msg":"serving"') || l.includes('"msg":"not serving"') || /"level":[45]0/.test(l);
  return lastLogLines(logs, /^(storage|query)(-\d+)?\.log$/, keep, 'database-watch, health, warning and error', last, 500);
}

/** The ingestion replicas' last warning and error lines (failed polls, readings missed at the devices, the outbox full), for a failed gap check. */
export function ingestionWarningLines(logs: string, last = 25): string {
  return lastLogLines(logs, /^ingestion(-\d+)?\.log$/, (l) => /"level":[456]0/.test(l), 'warning and error', last, 700);
}

/** Both of the above for a stack's logs folder, 15 lines a file (empty when the folder is not there): what a failed stack test prints. */
export function stackWarningLines(logs: string): string {
  return existsSync(logs) ? `${ingestionWarningLines(logs, 15)}\n${databaseWatchLines(logs, 15)}` : '';
}

/** A temporary folder removed by cleanup(), unless FLATLINE_KEEP_TEST_STATE is set (to read the logs). */
export function tempDir(prefix: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), `flatline-${prefix}-`));
  const keep = process.env['FLATLINE_KEEP_TEST_STATE'] !== undefined;
  return { path, cleanup: () => (keep ? console.log(`kept ${path}`) : rmSync(path, { recursive: true, force: true })) };
}

/** A FerretDB that can be stopped and started again on the same port and files. */
export class TestDatabase {
  private current: RunningDatabase | undefined;
  private port = 0;

  constructor(private readonly stateDir: string) {}

  /** Starts FerretDB (on a free port the first time, then on the same one). */
  async start(): Promise<void> {
    this.current = await startDatabase({
      listen: `127.0.0.1:${this.port}`,
      stateDir: this.stateDir,
      logFile: join(this.stateDir, '..', 'ferretdb.log'),
    });
    this.port = Number(this.current.address.split(':')[1]);
  }

  /**
   * Freezes (SIGSTOP) or thaws (SIGCONT) FerretDB: connections stay open but
   * nothing answers, like a hung VM. Resolves once the kernel shows the
   * process stopped (or running again): on a loaded machine the signal can
   * land after a call the test meant to send to a frozen database.
   */
  async freeze(frozen: boolean): Promise<void> {
    const p = this.current?.process;
    if (p === undefined) return;
    p.signal(frozen ? 'SIGSTOP' : 'SIGCONT');
    const pid = p.pid;
    for (let i = 0; pid !== undefined && i < 200; i++) {
      let state: string;
      try {
        state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] ?? '';
      } catch {
        return; // gone
      }
      if ((state === 'T') === frozen) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Stops FerretDB (SIGTERM). */
  async stop(): Promise<void> {
    await this.current?.process.stop();
    this.current = undefined;
  }

  /** Connection string of the test database. */
  get uri(): string {
    if (this.port === 0) throw new Error('database not started yet');
    return `mongodb://127.0.0.1:${this.port}/flatline`;
  }
}

/** The environment of a test's storage or query: free ports, uri, short database bounds so tests see outages quickly. */
function testServiceEnv(service: 'storage' | 'query', uri: string, extraEnv: Record<string, string>): Record<string, string> {
  const upper = service.toUpperCase();
  return {
    [`FLATLINE_${upper}_LISTEN`]: '127.0.0.1:0',
    [`FLATLINE_${upper}_METRICS_LISTEN`]: '127.0.0.1:0',
    FLATLINE_MONGODB_URI: uri,
    FLATLINE_DB_TIMEOUT_MS: '1500',
    FLATLINE_DB_PING_MS: '200',
    FLATLINE_LOG_LEVEL: 'debug',
    ...extraEnv,
  };
}

/**
 * Starts a service as its own process (main.ts), for tests that kill it,
 * measure its memory or watch its exit; the others run it in-process
 * (startInProcessService).
 */
export function startTestService(service: 'storage' | 'query', uri: string, logDir: string, extraEnv: Record<string, string> = {}): Promise<RunningService> {
  return startService({ service, env: testServiceEnv(service, uri, extraEnv), logFile: join(logDir, `${service}.log`) });
}

/**
 * Starts storage or query in this process, on free ports, with the same
 * configuration a test process would get and its log in logDir; loaded on
 * demand so the stack's entry point does not load every service.
 */
export async function startInProcessService(service: 'storage' | 'query', uri: string, logDir: string, extraEnv: Record<string, string> = {}): Promise<StartedServer> {
  const env = testServiceEnv(service, uri, extraEnv);
  const logFile = join(logDir, `${service}.log`);
  if (service === 'storage') {
    const { loadConfig, startStorage } = await import('@flatline/storage');
    const config = loadConfig(env);
    return startStorage(config, createLogger('flatline-storage', config.logLevel, logFile));
  }
  const { loadConfig, startQuery } = await import('@flatline/query');
  const config = loadConfig(env);
  return startQuery(config, createLogger('flatline-query', config.logLevel, logFile));
}

/** What eventually throws when time runs out: what it waited for, how long, and what the check last said. */
export class EventuallyTimeout extends Error {}

/**
 * Polls check every everyMs until it returns true; a check that throws has
 * simply not held yet. When timeoutMs passes first, throws an
 * EventuallyTimeout that names what it waited for and the check's last error
 * (or that it kept answering false, or that its last attempt was still
 * running: a hung check does not hang the wait).
 */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<void> {
  const started = Date.now();
  const end = started + timeoutMs;
  let attempts = 0;
  let last = 'no attempt finished';
  for (;;) {
    attempts++;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => (timer = setTimeout(() => resolve('deadline'), Math.max(0, end - Date.now()))));
    const outcome = await Promise.race([
      check().then(
        (held) => (held === true ? 'held' : 'false'),
        (err: unknown) => {
          last = `its last attempt threw: ${err instanceof Error ? err.message : String(err)}`;
          return 'threw';
        },
      ),
      deadline,
    ]);
    clearTimeout(timer);
    if (outcome === 'held') return;
    if (outcome === 'false') last = 'its last attempt answered false';
    if (outcome === 'deadline') last = `its last attempt was still running (${last})`;
    if (outcome === 'deadline' || Date.now() >= end) {
      throw new EventuallyTimeout(`timed out after ${timeoutMs} ms (${attempts} attempt(s), ${Date.now() - started} ms) waiting for ${what}: ${last}`);
    }
    await new Promise((r) => setTimeout(r, Math.min(everyMs, Math.max(0, end - Date.now()))));
  }
}

/** The local stack as the whole-system tests run it: free ports, a 1 s poll interval, two replicas, env per component; the local plane unless told mesh. */
export function startTestStack(stateDir: string, flats: number, env: NonNullable<StackOptions['env']>, nodes = 1, mesh: StackMesh = 'local'): Promise<LocalStack> {
  return LocalStack.start({ stateDir, host: '127.0.0.1', ports: FREE_PORTS, flats, intervalMs: 1000, replicas: 2, nodes, logLevel: 'info', env, mesh });
}

/** Extra environment per service of a ServicesFixture. */
export interface ServicesEnv {
  readonly storage?: Record<string, string>;
  readonly query?: Record<string, string>;
}

/**
 * The fixture service tests share: a real FerretDB with a real storage and
 * a real query on free ports in a temporary folder (in-process, as STYLE.md
 * asks; FerretDB is its own process), their gRPC clients and a driver
 * client; start() waits until storage is SERVING.
 */
export class ServicesFixture {
  readonly dir: { path: string; cleanup: () => void };
  readonly db: TestDatabase;
  storage!: StartedServer;
  query!: StartedServer;
  storageClient!: StorageServiceClient;
  queryClient!: QueryServiceClient;
  mongo!: MongoClient;

  constructor(
    prefix: string,
    private readonly env: ServicesEnv = {},
  ) {
    this.dir = tempDir(prefix);
    this.db = new TestDatabase(join(this.dir.path, 'ferretdb'));
  }

  /** Starts the database, then both services; resolves once storage answers SERVING. */
  async start(): Promise<void> {
    await this.db.start();
    [this.storage, this.query] = await Promise.all([
      startInProcessService('storage', this.db.uri, this.dir.path, this.env.storage),
      startInProcessService('query', this.db.uri, this.dir.path, this.env.query),
    ]);
    this.storageClient = new StorageServiceClient(this.storage.grpc, credentials.createInsecure());
    this.queryClient = new QueryServiceClient(this.query.grpc, credentials.createInsecure());
    this.mongo = new MongoClient(this.db.uri, { serverSelectionTimeoutMS: 3000 });
    await eventually('storage to answer SERVING', async () => (await checkHealth(this.storage.grpc)) === 'SERVING', 10000);
  }

  /** Stops everything it started and removes the folder. */
  async stop(): Promise<void> {
    this.storageClient?.close();
    this.queryClient?.close();
    await this.mongo?.close();
    await Promise.all([this.storage?.stop(), this.query?.stop()]);
    await this.db.stop();
    this.dir.cleanup();
  }
}

/**
 * Holds for ms on purpose: the length of a fault (an outage), or a window
 * that shows something does not happen. A wait for a condition is
 * eventually(); what names the hold for the reader.
 */
export function holdFor(ms: number, what: string): Promise<void> {
  void what;
  return new Promise((resolve) => setTimeout(resolve, ms));
}
