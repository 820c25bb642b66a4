/**
 * The processes a stack started, recorded in its state folder, so that a run
 * whose supervisor was killed (SIGKILL, a closed terminal) does not leave
 * processes holding the ports: the next `up` stops them first.
 */
import { existsSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { TOOLS_BIN } from './paths.ts';
import { bundlePrefix } from './service-build.ts';

interface Entry {
  readonly name: string;
  readonly pid: number;
  /** A piece of the command line that identifies the process (pids get reused). */
  readonly marker: string;
}

function alive(entry: Entry): boolean {
  try {
    return readFileSync(`/proc/${entry.pid}/cmdline`, 'utf8').includes(entry.marker);
  } catch {
    return false;
  }
}

/** The piece of a stack process's command line that identifies it: its binary, or the start of its service's compiled main. */
export function markerOf(name: string): string {
  if (name === 'haproxy') return haproxyBinary();
  if (name === 'ferretdb') return join(TOOLS_BIN, name);
  if (name === 'toxiproxy') return join(TOOLS_BIN, 'toxiproxy-server');
  return bundlePrefix(name.replace(/-\d+$/, ''));
}

/** The record of one stack's processes. */
export class ProcessRecord {
  private readonly entries: Entry[] = [];
  private readonly file: string;

  constructor(stateDir: string) {
    this.file = join(stateDir, 'processes.json');
  }

  /** Stops processes an earlier run recorded that are still running; returns their names. */
  async stopLeftovers(graceMs = 5000): Promise<string[]> {
    if (!existsSync(this.file)) return [];
    let entries: Entry[] = [];
    try {
      entries = JSON.parse(readFileSync(this.file, 'utf8')) as Entry[];
    } catch {
      // A torn file from a crash: nothing trustworthy to stop.
    }
    const running = entries.filter(alive);
    for (const e of running) {
      process.kill(e.pid, 'SIGTERM');
      process.kill(e.pid, 'SIGCONT'); // a frozen node's process hears SIGTERM only once it runs
    }
    const end = Date.now() + graceMs;
    while (running.some(alive) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    for (const e of running.filter(alive)) process.kill(e.pid, 'SIGKILL');
    rmSync(this.file, { force: true });
    return running.map((e) => `${e.name} (pid ${e.pid})`);
  }

  /** Records a started process; a restarted one replaces its earlier record (the file stays one entry per process name). */
  add(name: string, pid: number | undefined, marker: string): void {
    if (pid === undefined) return;
    const i = this.entries.findIndex((e) => e.name === name);
    if (i >= 0) this.entries.splice(i, 1);
    this.entries.push({ name, pid, marker });
    writeFileSync(this.file, JSON.stringify(this.entries));
  }

  /** Forgets every process (after a clean stop). */
  clear(): void {
    rmSync(this.file, { force: true });
  }
}

/**
 * The binary a running HAProxy shows in its command line: .tools/bin/haproxy
 * is a wrapper (tools/install-haproxy.sh) that sets the library path and execs
 * <cache>/root/usr/sbin/haproxy, so the wrapper's own path is never there
 * (a marker of it left every HAProxy of a killed run running, holding its ports).
 */
function haproxyBinary(): string {
  const wrapper = join(TOOLS_BIN, 'haproxy');
  try {
    return join(dirname(dirname(realpathSync(wrapper))), 'root', 'usr', 'sbin', 'haproxy');
  } catch {
    return wrapper;
  }
}
