/**
 * Starting and stopping the processes of the local stack: each child's output
 * is read line by line for its readiness line and kept in a log file; stop
 * sends SIGTERM and escalates to SIGKILL after a grace period.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from '../paths.ts';

/** A child process of the stack. */
export class ManagedProcess {
  /** Resolves with the exit code (or signal name) when the child ends. */
  readonly exited: Promise<number | string>;
  private readonly tail: string[] = [];

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    log: WriteStream | undefined,
    onLine: (line: string) => void,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
    for (const stream of [child.stdout, child.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream }).on('line', (line) => {
        log?.write(`${line}\n`);
        this.tail.push(line);
        if (this.tail.length > 20) this.tail.shift();
        onLine(line);
      });
    }
    void this.exited.then(() => log?.end());
  }

  /** The last lines the child wrote, for error messages. */
  lastLines(): string {
    return this.tail.join('\n');
  }

  /** Whether the child is still running. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends a signal (if running). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves with the exit code or signal. */
  async stop(graceMs = 10000): Promise<number | string> {
    if (!this.running) return this.exited;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** How to start one process. */
export interface SpawnSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly logFile?: string;
  /** Returns a value once a line shows the process is ready. */
  readonly ready: (line: string) => string | undefined;
  readonly readyTimeoutMs?: number;
}

/** Spawns a process and waits for its readiness line; fails with its last output if it exits or times out first. */
export async function spawnReady(spec: SpawnSpec): Promise<{ process: ManagedProcess; ready: string }> {
  let log: WriteStream | undefined;
  if (spec.logFile !== undefined) {
    mkdirSync(dirname(spec.logFile), { recursive: true });
    log = createWriteStream(spec.logFile, { flags: 'a' });
    await once(log, 'open');
  }
  const child = spawn(spec.command, [...spec.args], {
    cwd: REPO_ROOT,
    // eslint-disable-next-line no-restricted-properties -- passed through to the child, not read here
    env: { ...process.env, ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let resolveReady: (value: string) => void = () => {};
  const readyLine = new Promise<string>((resolve) => (resolveReady = resolve));
  const managed = new ManagedProcess(spec.name, child, log, (line) => {
    const value = spec.ready(line);
    if (value !== undefined) resolveReady(value);
  });
  const spawnError = once(child, 'error').then(([err]) => {
    throw new Error(`${spec.name}: cannot start ${spec.command}: ${(err as Error).message}`);
  });
  const timeoutMs = spec.readyTimeoutMs ?? 30000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${spec.name}: not ready after ${timeoutMs} ms; last output:\n${managed.lastLines()}`)), timeoutMs);
  });
  const exit = managed.exited.then((code) => {
    throw new Error(`${spec.name}: exited (${code}) before it was ready; last output:\n${managed.lastLines()}`);
  });
  try {
    const ready = await Promise.race([readyLine, spawnError, timeout, exit]);
    return { process: managed, ready };
  } catch (err) {
    managed.signal('SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
    exit.catch(() => {});
    spawnError.catch(() => {});
  }
}
