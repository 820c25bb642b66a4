/**
 * Starting and stopping the processes of the local stack. Each child writes
 * straight into its log file (no pipe through this process, so a child never
 * blocks or spins on a broken pipe when the supervisor dies); readiness is
 * read from that file. stop() sends SIGTERM and escalates to SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync, fstatSync } from 'node:fs';
import { once } from 'node:events';
import { dirname } from 'node:path';
import { REPO_ROOT } from './paths.ts';

/** The last maxBytes of a file as lines (for error messages). */
function tailOf(path: string, maxLines = 20, maxBytes = 8192): string {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(0, size - maxBytes);
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    return buf.toString('utf8').split('\n').filter(Boolean).slice(-maxLines).join('\n');
  } finally {
    closeSync(fd);
  }
}

/** Every ManagedProcess that has not exited yet, in the order started (stopEveryChild). */
const living = new Set<ManagedProcess>();

/**
 * Stops every child that this process started with spawnReady and that still
 * runs, the newest first (services before their database, FerretDB before
 * its PostgreSQL), each with stop(graceMs); resolves with their names. A
 * command interrupted by a signal calls it so that nothing it started
 * outlives it: its own cleanup (finally blocks) never runs when it exits on
 * the signal.
 */
export async function stopEveryChild(graceMs = 10000): Promise<string[]> {
  const stopped: string[] = [];
  for (const p of [...living].reverse()) {
    if (!p.running) continue;
    await p.stop(graceMs);
    stopped.push(p.name);
  }
  return stopped;
}

/** A child process of the stack. */
export class ManagedProcess {
  /** Resolves with the exit code (or signal name) when the child ends. */
  readonly exited: Promise<number | string>;
  /** Set when the stack ends or stops it on purpose (a node drained or crashed): its exit is no failure. */
  expected = false;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
    living.add(this);
    void this.exited.then(() => living.delete(this));
  }

  /** The last lines of the child's log, for error messages. */
  lastLines(): string {
    return tailOf(this.logFile);
  }

  /** Process id. */
  get pid(): number | undefined {
    return this.child.pid;
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
    this.expected = true;
    if (!this.running) return this.exited;
    this.child.kill('SIGTERM');
    // A frozen (SIGSTOPped) child handles SIGTERM only once it runs again.
    this.child.kill('SIGCONT');
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
  /** Where the child's stdout and stderr go (appended). */
  readonly logFile: string;
  /** Returns a value once a line shows the process is ready. */
  readonly ready: (line: string) => string | undefined;
  readonly readyTimeoutMs?: number;
  /** In its own process group: a Ctrl-C meant for the supervisor does not reach it (flatline chaos run stops it itself). */
  readonly detached?: boolean;
}

/** Calls onLine for each complete line appended to path from offset on, every everyMs, until stopped. */
function followLines(path: string, offset: number, onLine: (line: string) => void, everyMs = 50): () => void {
  let position = offset;
  let partial = '';
  const buf = Buffer.alloc(64 * 1024);
  const fd = openSync(path, 'r');
  const read = (): void => {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, position);
      if (n <= 0) return;
      position += n;
      const lines = (partial + buf.toString('utf8', 0, n)).split('\n');
      partial = lines.pop() ?? '';
      lines.forEach(onLine);
    }
  };
  const timer = setInterval(read, everyMs);
  return () => {
    clearInterval(timer);
    read();
    closeSync(fd);
  };
}

/** Spawns a process and waits for its readiness line; fails with its last output if it exits or times out first. */
export async function spawnReady(spec: SpawnSpec): Promise<{ process: ManagedProcess; ready: string }> {
  mkdirSync(dirname(spec.logFile), { recursive: true });
  const out = openSync(spec.logFile, 'a');
  const offset = fstatSync(out).size;
  let child: ChildProcess;
  try {
    child = spawn(spec.command, [...spec.args], {
      cwd: REPO_ROOT,
      // eslint-disable-next-line no-restricted-properties -- passed through to the child, not read here
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', out, out],
      detached: spec.detached ?? false,
    });
  } finally {
    closeSync(out);
  }
  const managed = new ManagedProcess(spec.name, child, spec.logFile);
  let resolveReady: (value: string) => void = () => {};
  const readyLine = new Promise<string>((resolve) => (resolveReady = resolve));
  const stopFollowing = followLines(spec.logFile, offset, (line) => {
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
    stopFollowing();
    exit.catch(() => {});
    spawnError.catch(() => {});
  }
}
