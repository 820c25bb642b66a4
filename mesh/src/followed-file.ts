/**
 * A small JSON file of the local plane (the fault file, the device links)
 * written atomically by one process and followed by others: a reader sees
 * the old or the new file, never half of one, and a file that does not
 * read keeps what was read before and is reported.
 */
import { mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Writes value as JSON to file through a temporary file and a rename. */
export function writeJsonAtomically(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 1)}\n`);
  renameSync(tmp, file);
}

/** What identifies one version of the file: a rename gives a new inode, a rewrite a new size or time. */
function signature(file: string): string {
  try {
    const s = statSync(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return 'absent';
  }
}

/** A file read with read whenever it changes (polled every pollMs); current() is the last good read. */
export class FollowedFile<T> {
  private value: T;
  private seen: string;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly file: string,
    private readonly read: (file: string) => T,
    initial: T,
    private readonly onError: (err: Error) => void,
    private readonly onChange: (value: T) => void = () => {},
    pollMs = 200,
  ) {
    this.value = initial;
    this.seen = signature(file);
    this.reload();
    this.timer = setInterval(() => {
      const now = signature(file);
      if (now === this.seen) return;
      this.seen = now;
      this.reload();
    }, pollMs);
    this.timer.unref();
  }

  /** The last version that read. */
  current(): T {
    return this.value;
  }

  /** Stops following the file. */
  close(): void {
    clearInterval(this.timer);
  }

  private reload(): void {
    try {
      this.value = this.read(this.file);
      this.onChange(this.value);
    } catch (err) {
      this.onError(err as Error);
    }
  }
}
