/**
 * What an outbox holds, read by another process (the supervisor's gap check
 * and fetch freshness) without taking part in it: the file opened read-only,
 * WAL mode lets it read while ingestion writes.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';

/** One reading waiting in an outbox: fetched, not yet acknowledged by storage. */
export interface HeldReading {
  readonly flatId: string;
  readonly deviceId: string;
  readonly epoch: number;
  readonly seq: number;
}

/** Every reading the outbox file holds (none when there is no file). */
export function heldReadings(file: string): HeldReading[] {
  if (!existsSync(file)) return [];
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const out: HeldReading[] = [];
    for (const row of db.prepare('SELECT flat_id, readings FROM outbox').iterate() as Iterable<{ flat_id: string; readings: string }>) {
      // [deviceId, seq, takenAtMs, quantity, unit, value, epoch?] (outbox.ts's ReadingRow)
      for (const r of JSON.parse(row.readings) as Array<[string, number, number, string, string, number, number?]>) {
        out.push({ flatId: row.flat_id, deviceId: r[0], seq: r[1], epoch: r[6] ?? 0 });
      }
    }
    return out;
  } finally {
    db.close();
  }
}

/**
 * When each flat was last fetched and kept in the outbox file (ms since the
 * epoch), forwarded or not: ingestion's own freshness, which a database or
 * storage outage does not stop. None when there is no file, or an outbox
 * older than the record.
 */
export function lastFetches(file: string): Map<string, number> {
  const out = new Map<string, number>();
  if (!existsSync(file)) return out;
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const known = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'last_fetch'").get();
    if (known === undefined) return out;
    for (const row of db.prepare('SELECT flat_id, fetched_at_ms FROM last_fetch').iterate() as Iterable<{ flat_id: string; fetched_at_ms: number }>) {
      out.set(row.flat_id, row.fetched_at_ms);
    }
    return out;
  } finally {
    db.close();
  }
}
