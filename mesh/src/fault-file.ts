/**
 * The active faults of the local plane: one JSON file in the state folder,
 * written atomically (temporary file + rename) and watched by every process
 * that injects. A half-written or invalid file keeps the previous faults and
 * is reported, so a broken toggle never changes behaviour silently.
 */
import { readFileSync, renameSync, statSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { declareFault, type Fault } from './fault.ts';

/** Reads and checks a fault file; a missing file means no fault. Throws naming what is wrong. */
export function readFaultFile(file: string): Fault[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`fault file ${file} is not JSON (${text.length} bytes)`);
  }
  const faults = (json as { faults?: unknown }).faults;
  if ((json as { version?: unknown }).version !== 1 || !Array.isArray(faults)) throw new Error(`fault file ${file} must be {"version":1,"faults":[…]}`);
  return faults.map((f, i) => {
    try {
      return declareFault(f);
    } catch (err) {
      throw new Error(`fault file ${file}: faults[${i}].${(err as Error).message}`, { cause: err });
    }
  });
}

/** Writes faults atomically (readers see the old or the new file, never half of one). */
export function writeFaultFile(file: string, faults: readonly Fault[]): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ version: 1, faults }, null, 1)}\n`);
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

/** The faults in force for one process, following the file (polled every pollMs). */
export class FaultSource {
  private faults: Fault[] = [];
  private seen: string;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly file: string,
    private readonly onError: (err: Error) => void,
    private readonly onChange: (faults: readonly Fault[]) => void = () => {},
    pollMs = 200,
  ) {
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

  /** Faults in force now. */
  active(): readonly Fault[] {
    return this.faults;
  }

  /** Stops following the file. */
  close(): void {
    clearInterval(this.timer);
  }

  private reload(): void {
    try {
      this.faults = readFaultFile(this.file);
      this.onChange(this.faults);
    } catch (err) {
      this.onError(err as Error);
    }
  }
}
