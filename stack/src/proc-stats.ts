/** CPU time and resident memory of a process, read from /proc (Linux). */
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS = 100;

/** User + system CPU seconds the process used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start after ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Resident set size in bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? 0 : Number(m[1]) * 1024;
}

/** Each running process's children, from one pass over /proc. */
function childrenByParent(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // Gone between the listing and the read.
    }
  }
  return children;
}

/** pid and every process below it now running (postgres forks a backend per connection; a wrapper forks its tool). */
function processTree(pid: number, children: Map<number, number[]>): number[] {
  const tree: number[] = [];
  const walk = [pid];
  while (walk.length > 0) {
    const p = walk.pop()!;
    tree.push(p);
    walk.push(...(children.get(p) ?? []));
  }
  return tree;
}

/** Every process below pid now running (its children, their children, …), from one pass over /proc; not pid itself. */
export function descendantsOf(pid: number): number[] {
  return processTree(pid, childrenByParent()).slice(1);
}

/** CPU seconds and resident bytes of a process tree. */
export interface TreeStats {
  readonly cpuS: number;
  readonly rssBytes: number;
}

/**
 * CPU seconds and resident bytes of each pid's process tree, from one pass
 * over /proc for all of them: the processes below each pid now (a child that
 * already exited is not counted, nor is what a reaped child left in its
 * parent's cutime). A process gone meanwhile counts 0.
 */
export function treeStatsOf(pids: readonly number[]): Map<number, TreeStats> {
  const children = childrenByParent();
  const out = new Map<number, TreeStats>();
  for (const pid of pids) {
    let cpuS = 0;
    let rss = 0;
    for (const p of processTree(pid, children)) {
      try {
        cpuS += cpuSeconds(p);
        rss += rssBytes(p);
      } catch {
        // Gone meanwhile.
      }
    }
    out.set(pid, { cpuS, rssBytes: rss });
  }
  return out;
}

/** treeStatsOf() of one pid. */
export function treeStats(pid: number): TreeStats {
  return treeStatsOf([pid]).get(pid)!;
}
