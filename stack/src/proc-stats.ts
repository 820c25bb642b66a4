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

/** pid and every process below it now running (postgres forks a backend per connection; a wrapper forks its tool). */
export function processTree(pid: number): number[] {
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
  const tree: number[] = [];
  const walk = [pid];
  while (walk.length > 0) {
    const p = walk.pop()!;
    tree.push(p);
    walk.push(...(children.get(p) ?? []));
  }
  return tree;
}

/**
 * CPU seconds and resident bytes of pid's process tree: the processes of
 * processTree() now (a child that already exited is not counted, unless its
 * parent reaped it: then it is in the parent's cutime, which this leaves out
 * too). 0 for a process gone meanwhile.
 */
export function treeStats(pid: number): { cpuS: number; rssBytes: number } {
  let cpuS = 0;
  let rss = 0;
  for (const p of processTree(pid)) {
    try {
      cpuS += cpuSeconds(p);
      rss += rssBytes(p);
    } catch {
      // Gone meanwhile.
    }
  }
  return { cpuS, rssBytes: rss };
}
