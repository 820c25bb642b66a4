/**
 * The durable local outbox (SQLite in WAL mode, synchronous FULL): every
 * successful fetch and its new readings are written here before anything
 * else, in one transaction with the per-device cursor that says which
 * readings were already taken. The forwarder sends the oldest rows to
 * storage and deletes only what storage acknowledged; after a crash the
 * process resumes from what is here.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { DeviceReading } from '../domain/device-answer.ts';

/** One fetch as it waits in the outbox. */
export interface OutboxFetch {
  readonly id: number;
  readonly flatId: string;
  readonly fetchedAtMs: number;
  readonly readings: readonly DeviceReading[];
}

/** What recording one fetch found. */
export interface Recorded {
  /** Readings newer than the device cursor (kept). */
  readonly fresh: number;
  /** Readings the device no longer had when we asked: a gap between the cursor and the oldest fresh one. */
  readonly missed: number;
}

/** A fetch as the poller hands it over. */
export interface NewFetch {
  readonly flatId: string;
  readonly fetchedAtMs: number;
  readonly readings: readonly DeviceReading[];
}

type ReadingRow = [deviceId: string, seq: number, takenAtMs: number, quantity: string, unit: string, value: number];

/** The outbox of one ingestion replica. */
export class Outbox {
  private readonly db: Database.Database;
  private readonly insertFetch: Database.Statement<[string, number, string, number]>;
  private readonly readCursor: Database.Statement<[string], { device_id: string; last_seq: number }>;
  private readonly writeCursor: Database.Statement<[string, string, number]>;
  private readonly selectBatch: Database.Statement<[number], { id: number; flat_id: string; fetched_at_ms: number; readings: string; reading_count: number }>;
  private readonly deleteRange: Database.Statement<[number, number]>;
  private readonly countRows: Database.Statement<[], { rows: number; readings: number | null }>;
  private readonly recordMany: (fetches: ReadonlyArray<NewFetch>) => Recorded[];

  constructor(file: string) {
    mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        flat_id TEXT NOT NULL,
        fetched_at_ms INTEGER NOT NULL,
        readings TEXT NOT NULL,
        reading_count INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS dead_letter (
        id INTEGER PRIMARY KEY,
        flat_id TEXT NOT NULL,
        fetched_at_ms INTEGER NOT NULL,
        readings TEXT NOT NULL,
        reason TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS cursors (
        flat_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        last_seq INTEGER NOT NULL,
        PRIMARY KEY (flat_id, device_id)
      ) WITHOUT ROWID;
    `);
    this.insertFetch = this.db.prepare('INSERT INTO outbox (flat_id, fetched_at_ms, readings, reading_count) VALUES (?, ?, ?, ?)');
    this.readCursor = this.db.prepare('SELECT device_id, last_seq FROM cursors WHERE flat_id = ?');
    this.writeCursor = this.db.prepare(
      'INSERT INTO cursors (flat_id, device_id, last_seq) VALUES (?, ?, ?) ON CONFLICT (flat_id, device_id) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)',
    );
    this.selectBatch = this.db.prepare('SELECT id, flat_id, fetched_at_ms, readings, reading_count FROM outbox ORDER BY id DESC LIMIT ?');
    this.deleteRange = this.db.prepare('DELETE FROM outbox WHERE id BETWEEN ? AND ?');
    this.countRows = this.db.prepare('SELECT count(*) AS rows, sum(reading_count) AS readings FROM outbox');
    this.recordMany = this.db.transaction((fetches: ReadonlyArray<NewFetch>) => fetches.map((f) => this.recordOne(f.flatId, f.fetchedAtMs, f.readings)));
  }

  private recordOne(flatId: string, fetchedAtMs: number, readings: readonly DeviceReading[]): Recorded {
    const cursor = new Map(this.readCursor.all(flatId).map((r) => [r.device_id, r.last_seq]));
    const fresh: ReadingRow[] = [];
    const firstFresh = new Map<string, number>();
    const newest = new Map<string, number>();
    for (const r of readings) {
      const last = cursor.get(r.deviceId) ?? 0;
      if (r.seq <= last) continue;
      fresh.push([r.deviceId, r.seq, r.takenAtMs, r.quantity, r.unit, r.value]);
      firstFresh.set(r.deviceId, Math.min(firstFresh.get(r.deviceId) ?? Infinity, r.seq));
      newest.set(r.deviceId, Math.max(newest.get(r.deviceId) ?? 0, r.seq));
    }
    let missed = 0;
    for (const [deviceId, first] of firstFresh) {
      const last = cursor.get(deviceId);
      if (last !== undefined && first > last + 1) missed += first - last - 1;
    }
    this.insertFetch.run(flatId, fetchedAtMs, JSON.stringify(fresh), fresh.length);
    for (const [deviceId, seq] of newest) this.writeCursor.run(flatId, deviceId, seq);
    return { fresh: fresh.length, missed };
  }

  /** Records fetches durably, in one transaction; keeps only readings newer than each device's cursor. */
  record(fetches: ReadonlyArray<NewFetch>): Recorded[] {
    return this.recordMany(fetches);
  }

  /**
   * The newest fetches, newest first: at most maxFetches of them and (but for
   * the first) at most maxReadings readings in all. Newest first, because after
   * an outage the flats' freshness comes back with the first batch storage
   * takes, while the backlog drains behind it (storage is idempotent and keeps
   * the latest by seq, so order does not matter to what it stores). The batch
   * is every fetch with an id from the last one returned up.
   */
  peek(maxFetches: number, maxReadings: number): OutboxFetch[] {
    const out: OutboxFetch[] = [];
    let readings = 0;
    for (const row of this.selectBatch.iterate(maxFetches)) {
      if (out.length > 0 && readings + row.reading_count > maxReadings) break;
      readings += row.reading_count;
      const rows = JSON.parse(row.readings) as ReadingRow[];
      out.push({
        id: row.id,
        flatId: row.flat_id,
        fetchedAtMs: row.fetched_at_ms,
        readings: rows.map(([deviceId, seq, takenAtMs, quantity, unit, value]) => ({ deviceId, seq, takenAtMs, quantity, unit, value })),
      });
    }
    return out;
  }

  /** Deletes the fetches of a batch peek() returned (what storage acknowledged): those with ids from lowest to highest. */
  ack(batch: ReadonlyArray<Pick<OutboxFetch, 'id'>>): void {
    const ids = batch.map((f) => f.id);
    if (ids.length > 0) this.deleteRange.run(Math.min(...ids), Math.max(...ids));
  }

  /** Moves one fetch that storage refused as invalid out of the way, keeping it. */
  deadLetter(id: number, reason: string): void {
    this.db.transaction(() => {
      this.db
        .prepare('INSERT INTO dead_letter (id, flat_id, fetched_at_ms, readings, reason) SELECT id, flat_id, fetched_at_ms, readings, ? FROM outbox WHERE id = ?')
        .run(reason, id);
      this.db.prepare('DELETE FROM outbox WHERE id = ?').run(id);
    })();
  }

  /** Fetch results and readings waiting. */
  size(): { fetches: number; readings: number } {
    const r = this.countRows.get();
    return { fetches: r?.rows ?? 0, readings: r?.readings ?? 0 };
  }

  /** Closes the database. */
  close(): void {
    this.db.close();
  }
}
