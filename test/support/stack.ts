/** Test harness: real FerretDB and real service processes on free ports, in a temporary folder. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDatabase, startService, type RunningDatabase, type RunningService } from '@flatline/cli/stack/components.js';
import { FREE_PORTS, LocalStack, type StackOptions } from '@flatline/cli/stack/stack.js';

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

  /** Freezes (SIGSTOP) or thaws (SIGCONT) FerretDB: connections stay open but nothing answers, like a hung VM. */
  freeze(frozen: boolean): void {
    this.current?.process.signal(frozen ? 'SIGSTOP' : 'SIGCONT');
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

/** Starts a service on free ports against uri, with short database bounds so tests see outages quickly. */
export function startTestService(service: 'storage' | 'query', uri: string, logDir: string, extraEnv: Record<string, string> = {}): Promise<RunningService> {
  const upper = service.toUpperCase();
  return startService({
    service,
    env: {
      [`FLATLINE_${upper}_LISTEN`]: '127.0.0.1:0',
      [`FLATLINE_${upper}_METRICS_LISTEN`]: '127.0.0.1:0',
      FLATLINE_MONGODB_URI: uri,
      FLATLINE_DB_TIMEOUT_MS: '1500',
      FLATLINE_DB_PING_MS: '200',
      FLATLINE_LOG_LEVEL: 'debug',
      ...extraEnv,
    },
    logFile: join(logDir, `${service}.log`),
  });
}

/** Polls check() until it returns true or timeoutMs passes; returns whether it did. */
export async function eventually(check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The local stack as the whole-system tests run it: free ports, a 1 s poll interval, two replicas, env per component. */
export function startTestStack(stateDir: string, flats: number, env: NonNullable<StackOptions['env']>, nodes = 1): Promise<LocalStack> {
  return LocalStack.start({ stateDir, host: '127.0.0.1', ports: FREE_PORTS, flats, intervalMs: 1000, replicas: 2, nodes, logLevel: 'info', env });
}
