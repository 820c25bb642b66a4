/**
 * The active faults of the local plane: one JSON file in the state folder,
 * written atomically (temporary file + rename) and watched by every process
 * that injects. A half-written or invalid file keeps the previous faults and
 * is reported, so a broken toggle never changes behaviour silently.
 */
import { existsSync, readFileSync } from 'node:fs';
import { declareFault, type Fault } from './fault.ts';
import { FollowedFile, writeJsonAtomically } from './followed-file.ts';

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
  writeJsonAtomically(file, { version: 1, faults });
}

/** The faults in force for one process, following the file (polled every pollMs). */
export class FaultSource {
  private readonly followed: FollowedFile<Fault[]>;

  constructor(file: string, onError: (err: Error) => void, onChange: (faults: readonly Fault[]) => void = () => {}, pollMs = 200) {
    this.followed = new FollowedFile(file, readFaultFile, [], onError, onChange, pollMs);
  }

  /** Faults in force now. */
  active(): readonly Fault[] {
    return this.followed.current();
  }

  /** Stops following the file. */
  close(): void {
    this.followed.close();
  }
}
