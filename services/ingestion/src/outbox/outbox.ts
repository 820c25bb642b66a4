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

/** A reading as the outbox keeps it: with its device's epoch (how often its seq went backwards). */
export interface OutboxReading extends DeviceReading {
  readonly epoch: number;
}

/** One fetch as it waits in the outbox. */
export interface OutboxFetch {
  readonly id: number;
  readonly flatId: string;
  readonly fetchedAtMs: number;
  readonly readings: readonly OutboxReading[];
}

/** What recording one fetch found. */
export interface Recorded {
  /** Readings newer than the device cursor (kept). */
  readonly fresh: number;
  /** Readings the device no longer had when we asked: a gap between the cursor and the oldest fresh one. */
  readonly missed: number;
  /** Each device's missed readings as one run of seqs (what `missed` counts), to be named in the log. */
  readonly holes: readonly Hole[];
  /** Devices whose seq went backwards (reset or replaced): each starts a new epoch. */
  readonly resets: number;
}

/** Readings of one device lost at the device (it no longer had them when asked): seqs fromSeq..toSeq of its epoch. */
export interface Hole {
  readonly deviceId: string;
  readonly epoch: number;
  readonly fromSeq: number;
  readonly toSeq: number;
  /** When the device took the last reading we had before the hole (null when unknown), and the first after it. */
  readonly afterTakenAtMs: number | null;
  readonly beforeTakenAtMs: number;
}

/** A fetch as the poller hands it over. */
export interface NewFetch {
  readonly flatId: string;
  readonly fetchedAtMs: number;
  readonly readings: readonly DeviceReading[];
}

/** A row fetched less than this before a peek is fresh: peek sends the fresh ones first, newest first (see there). */
export const FRESH_MS = 2000;

/** An outbox row as peek reads it. */
interface PeekRow {
  readonly id: number;
  readonly flat_id: string;
  readonly fetched_at_ms: number;
  readonly readings: string;
  readonly reading_count: number;
  readonly bytes: number;
}

/** A kept reading; epoch is absent for 0 (rows of older versions have none). */
type ReadingRow = [deviceId: string, seq: number, takenAtMs: number, quantity: string, unit: string, value: number, epoch?: number];

function readingOf([deviceId, seq, takenAtMs, quantity, unit, value, epoch]: ReadingRow): OutboxReading {
  return { deviceId, seq, takenAtMs, quantity, unit, value, epoch: epoch ?? 0 };
}

interface Cursor {
  readonly lastSeq: number;
  readonly epoch: number;
  /** When the reading at lastSeq was taken (unknown for cursors of older versions). */
  readonly lastTakenAtMs: number | null;
}

/**
 * Most readings in one outbox row. A fetch with more (a device back after a
 * long outage, a takeover by a replica with no cursor) is kept as several
 * rows of the same fetch, so that any one row fits in an Append: storage
 * takes at most 10,000 readings and 4 MiB per call.
 */
export const MAX_ROW_READINGS = 1000;

/**
 * Bytes budget of one peek: the JSON kept here plus what the Append adds per
 * reading (the flat id and field tags); under the 4 MiB gRPC message limit
 * with room to spare.
 */
export const MAX_BATCH_BYTES = 3 * 1024 * 1024;
const APPEND_BYTES_PER_READING = 32;

/** The outbox has no room for more: the fetch is not kept (the devices still hold it for their window). */
export class OutboxFullError extends Error {
  override name = 'OutboxFullError';
}

/** A fetch storage refused, kept aside with the reason. */
export interface DeadLetter extends OutboxFetch {
  readonly reason: string;
}

/** Outbox options. */
export interface OutboxOptions {
  /** Largest size of the outbox's database in bytes; recording stops there (OutboxFullError). */
  readonly maxBytes: number;
}

/** The outbox of one ingestion replica. */
export class Outbox {
  private readonly db: Database.Database;
  private readonly insertFetch: Database.Statement<[string, number, string, number]>;
  private readonly readCursor: Database.Statement<[string], { device_id: string; last_seq: number; epoch: number; last_taken_at_ms: number | null }>;
  private readonly writeCursor: Database.Statement<[string, string, number, number, number]>;
  private readonly writeLastFetch: Database.Statement<[string, number]>;
  private readonly selectNewest: Database.Statement<[number], PeekRow>;
  private readonly selectOldest: Database.Statement<[number, number], PeekRow>;
  private readonly deleteIds: Database.Statement<[string], { reading_count: number }>;
  private readonly countRows: Database.Statement<[], { rows: number; readings: number | null }>;
  /**
   * What the outbox holds, kept as rows come and go: counting them is a scan
   * of the table, and the forwarder reads the size every second, so a backlog
   * of 500,000 rows made each second's count cost more. Recounted when
   * another connection changed the file (a dead-letter replay from the CLI).
   */
  private held = { fetches: 0, readings: 0 };
  /** Rows inserted by the transaction under way, added to held when it commits. */
  private inserting = { fetches: 0, readings: 0 };
  private heldVersion = -1;
  private readonly recordMany: (fetches: ReadonlyArray<NewFetch>) => Recorded[];

  private readonly maxBytes: number;

  constructor(file: string, options: OutboxOptions = { maxBytes: Number.MAX_SAFE_INTEGER }) {
    this.maxBytes = options.maxBytes;
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
      CREATE TABLE IF NOT EXISTS last_fetch (
        flat_id TEXT PRIMARY KEY,
        fetched_at_ms INTEGER NOT NULL
      ) WITHOUT ROWID;
    `);
    const cursorColumns = new Set((this.db.prepare('PRAGMA table_info(cursors)').all() as Array<{ name: string }>).map((c) => c.name));
    if (!cursorColumns.has('epoch')) this.db.exec('ALTER TABLE cursors ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0');
    if (!cursorColumns.has('last_taken_at_ms')) this.db.exec('ALTER TABLE cursors ADD COLUMN last_taken_at_ms INTEGER');
    this.insertFetch = this.db.prepare('INSERT INTO outbox (flat_id, fetched_at_ms, readings, reading_count) VALUES (?, ?, ?, ?)');
    this.readCursor = this.db.prepare('SELECT device_id, last_seq, epoch, last_taken_at_ms FROM cursors WHERE flat_id = ?');
    // A newer epoch replaces the cursor; within an epoch it only moves forward.
    this.writeCursor = this.db.prepare(`
      INSERT INTO cursors (flat_id, device_id, last_seq, epoch, last_taken_at_ms) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (flat_id, device_id) DO UPDATE SET
        last_taken_at_ms = CASE WHEN excluded.epoch > epoch OR excluded.last_seq > last_seq THEN excluded.last_taken_at_ms ELSE last_taken_at_ms END,
        last_seq = CASE WHEN excluded.epoch > epoch THEN excluded.last_seq ELSE max(last_seq, excluded.last_seq) END,
        epoch = max(epoch, excluded.epoch)
    `);
    // When each flat was last fetched and kept, whether or not storage has its readings yet (heldReadings' lastFetches reads it).
    this.writeLastFetch = this.db.prepare(
      'INSERT INTO last_fetch (flat_id, fetched_at_ms) VALUES (?, ?) ON CONFLICT (flat_id) DO UPDATE SET fetched_at_ms = max(fetched_at_ms, excluded.fetched_at_ms)',
    );
    this.selectNewest = this.db.prepare('SELECT id, flat_id, fetched_at_ms, readings, reading_count, length(readings) AS bytes FROM outbox ORDER BY id DESC LIMIT ?');
    this.selectOldest = this.db.prepare('SELECT id, flat_id, fetched_at_ms, readings, reading_count, length(readings) AS bytes FROM outbox WHERE id < ? ORDER BY id LIMIT ?');
    this.deleteIds = this.db.prepare('DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?)) RETURNING reading_count');
    this.countRows = this.db.prepare('SELECT count(*) AS rows, sum(reading_count) AS readings FROM outbox');
    this.recordMany = this.db.transaction((fetches: ReadonlyArray<NewFetch>) => fetches.map((f) => this.recordOne(f.flatId, f.fetchedAtMs, f.readings)));
    this.splitOversized();
    this.recount();
  }

  /** Counts what the file holds (a scan), as of now. */
  private recount(): void {
    const r = this.countRows.get();
    this.held = { fetches: r?.rows ?? 0, readings: r?.readings ?? 0 };
    this.heldVersion = this.dataVersion();
  }

  /** Changes when another connection commits to the file (SQLite's data_version). */
  private dataVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  /** Runs a transaction that inserts rows; what it inserted counts once it committed. */
  private inserts<T>(transaction: () => T): T {
    this.inserting = { fetches: 0, readings: 0 };
    try {
      const out = transaction();
      this.held.fetches += this.inserting.fetches;
      this.held.readings += this.inserting.readings;
      return out;
    } finally {
      this.inserting = { fetches: 0, readings: 0 };
    }
  }

  /** Takes deleted rows (their reading counts) off what the outbox holds. */
  private deleted(rows: ReadonlyArray<{ reading_count: number }>): void {
    this.held.fetches -= rows.length;
    for (const r of rows) this.held.readings -= r.reading_count;
  }

  /** Rows kept by an older version with more than MAX_ROW_READINGS readings become rows of that size. */
  private splitOversized(): void {
    const big = this.db.prepare('SELECT id, flat_id, fetched_at_ms, readings FROM outbox WHERE reading_count > ?').all(MAX_ROW_READINGS) as Array<{
      id: number;
      flat_id: string;
      fetched_at_ms: number;
      readings: string;
    }>;
    if (big.length === 0) return;
    this.db.transaction(() => {
      for (const row of big) {
        this.db.prepare('DELETE FROM outbox WHERE id = ?').run(row.id);
        this.insertRows(row.flat_id, row.fetched_at_ms, JSON.parse(row.readings) as ReadingRow[]);
      }
    })();
  }

  /** Inserts one fetch as rows of at most MAX_ROW_READINGS readings (one row when it has none). */
  private insertRows(flatId: string, fetchedAtMs: number, rows: readonly ReadingRow[]): void {
    for (let i = 0; i === 0 || i < rows.length; i += MAX_ROW_READINGS) {
      const part = rows.slice(i, i + MAX_ROW_READINGS);
      this.insertFetch.run(flatId, fetchedAtMs, JSON.stringify(part), part.length);
      this.inserting.fetches += 1;
      this.inserting.readings += part.length;
    }
  }

  /**
   * A device reset (or replaced) when its newest reading is older in seq than
   * the cursor, or when a reading at or below the cursor was taken after the
   * cursor's own reading (the new life already passed a few readings).
   * Either way its seq starts again: a new epoch, cursor from 0.
   */
  private static resetDevices(readings: readonly DeviceReading[], cursors: ReadonlyMap<string, Cursor>): Set<string> {
    const newest = new Map<string, number>();
    const reset = new Set<string>();
    for (const r of readings) {
      newest.set(r.deviceId, Math.max(newest.get(r.deviceId) ?? 0, r.seq));
      const c = cursors.get(r.deviceId);
      if (c !== undefined && c.lastTakenAtMs !== null && r.seq <= c.lastSeq && r.takenAtMs > c.lastTakenAtMs) reset.add(r.deviceId);
    }
    for (const [deviceId, seq] of newest) {
      const c = cursors.get(deviceId);
      if (c !== undefined && seq < c.lastSeq) reset.add(deviceId);
    }
    return reset;
  }

  private recordOne(flatId: string, fetchedAtMs: number, readings: readonly DeviceReading[]): Recorded {
    const cursors = new Map<string, Cursor>(
      this.readCursor.all(flatId).map((r) => [r.device_id, { lastSeq: r.last_seq, epoch: r.epoch, lastTakenAtMs: r.last_taken_at_ms }]),
    );
    const reset = Outbox.resetDevices(readings, cursors);
    for (const deviceId of reset) cursors.set(deviceId, { lastSeq: 0, epoch: cursors.get(deviceId)!.epoch + 1, lastTakenAtMs: null });
    const fresh: ReadingRow[] = [];
    const firstFresh = new Map<string, DeviceReading>();
    const newest = new Map<string, DeviceReading>();
    for (const r of readings) {
      const c = cursors.get(r.deviceId);
      if (r.seq <= (c?.lastSeq ?? 0)) continue;
      const epoch = c?.epoch ?? 0;
      fresh.push(epoch === 0 ? [r.deviceId, r.seq, r.takenAtMs, r.quantity, r.unit, r.value] : [r.deviceId, r.seq, r.takenAtMs, r.quantity, r.unit, r.value, epoch]);
      const first = firstFresh.get(r.deviceId);
      if (first === undefined || first.seq > r.seq) firstFresh.set(r.deviceId, r);
      const known = newest.get(r.deviceId);
      if (known === undefined || known.seq < r.seq) newest.set(r.deviceId, r);
    }
    let missed = 0;
    const holes: Hole[] = [];
    for (const [deviceId, first] of firstFresh) {
      const c = cursors.get(deviceId);
      // After a reset the new life starts at 1: what it took before this poll and no longer has is missed too.
      if (c === undefined || first.seq <= c.lastSeq + 1) continue;
      missed += first.seq - c.lastSeq - 1;
      holes.push({ deviceId, epoch: c.epoch, fromSeq: c.lastSeq + 1, toSeq: first.seq - 1, afterTakenAtMs: c.lastTakenAtMs, beforeTakenAtMs: first.takenAtMs });
    }
    this.insertRows(flatId, fetchedAtMs, fresh);
    this.writeLastFetch.run(flatId, fetchedAtMs);
    for (const [deviceId, r] of newest) this.writeCursor.run(flatId, deviceId, r.seq, cursors.get(deviceId)?.epoch ?? 0, r.takenAtMs);
    return { fresh: fresh.length, missed, holes, resets: reset.size };
  }

  /**
   * Records fetches durably, in one transaction; keeps only readings newer
   * than each device's cursor. Throws OutboxFullError (keeping nothing and
   * moving no cursor) once the outbox has reached its size bound.
   */
  record(fetches: ReadonlyArray<NewFetch>): Recorded[] {
    const used = this.usedBytes();
    if (used >= this.maxBytes) {
      throw new OutboxFullError(`outbox full: ${used} of ${this.maxBytes} bytes used (FLATLINE_OUTBOX_MAX_BYTES); ${fetches.length} fetch results not kept`);
    }
    return this.inserts(() => this.recordMany(fetches));
  }

  /** Bytes the outbox's database uses (its pages less the free ones; the WAL is checkpointed into them). */
  usedBytes(): number {
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    return (pages - free) * pageSize;
  }

  /** The size bound in bytes. */
  get limitBytes(): number {
    return this.maxBytes;
  }

  /**
   * A batch to send: the fresh fetches (fetched less than FRESH_MS before
   * nowMs), newest first; then, in the room they leave, the oldest ones,
   * oldest first; at most maxFetches, maxReadings readings and
   * MAX_BATCH_BYTES in all (but for the first fetch, which never has more
   * than MAX_ROW_READINGS).
   * Fresh first, because a flat's freshness is its newest fetch storage
   * took: after an outage it comes back with the first batches, and in a
   * backlog (the start-up burst at 10,000 flats, every flat's first answer a
   * minute of readings) the fetches being made keep their flats fresh while
   * the backlog drains behind them. The oldest next, not the next newest,
   * because newest-only left them behind: with the forwarder just keeping
   * up, rows that newer ones overtook at every slow Append waited up to 8 s.
   * Neither part takes room from the other while it has any: with a fixed
   * split (three quarters of every batch for the newest, a quarter of its
   * readings for the oldest that waited 2 s) one replica of the scale suite
   * stayed 19,000-28,000 readings behind for 70 s after the burst, freshness
   * p99 16-26 s; its fresh fetches had three quarters of what the forwarder
   * could send. Storage is idempotent and keeps the latest by seq, so the
   * order does not matter to what it stores.
   */
  peek(maxFetches: number, maxReadings: number, nowMs: number = Date.now()): OutboxFetch[] {
    const out: OutboxFetch[] = [];
    let readings = 0;
    let bytes = 0;
    const take = (row: PeekRow): boolean => {
      const rowBytes = row.bytes + row.reading_count * (row.flat_id.length + APPEND_BYTES_PER_READING);
      if (out.length > 0 && (readings + row.reading_count > maxReadings || bytes + rowBytes > MAX_BATCH_BYTES)) return false;
      readings += row.reading_count;
      bytes += rowBytes;
      out.push({ id: row.id, flatId: row.flat_id, fetchedAtMs: row.fetched_at_ms, readings: (JSON.parse(row.readings) as ReadingRow[]).map(readingOf) });
      return true;
    };
    let lowest = Number.MAX_SAFE_INTEGER;
    // Rows come in about the order they were fetched: the fresh part ends at the first that is not (a scan of an old backlog would cost every peek).
    for (const row of this.selectNewest.iterate(maxFetches)) {
      if (row.fetched_at_ms <= nowMs - FRESH_MS) break;
      if (!take(row)) return out;
      lowest = row.id;
    }
    if (out.length < maxFetches) for (const row of this.selectOldest.iterate(lowest, maxFetches - out.length)) if (!take(row)) break;
    return out;
  }

  /** Deletes the fetches of a batch peek() returned (what storage acknowledged): exactly those ids, not the rows between them. */
  ack(batch: ReadonlyArray<Pick<OutboxFetch, 'id'>>): void {
    if (batch.length > 0) this.deleted(this.deleteIds.all(JSON.stringify(batch.map((f) => f.id))));
  }

  /** Moves one fetch that storage refused as invalid out of the way, keeping it. */
  deadLetter(id: number, reason: string): void {
    const moved = this.db.transaction(() => {
      this.db
        .prepare('INSERT INTO dead_letter (id, flat_id, fetched_at_ms, readings, reason) SELECT id, flat_id, fetched_at_ms, readings, ? FROM outbox WHERE id = ?')
        .run(reason, id);
      return this.db.prepare('DELETE FROM outbox WHERE id = ? RETURNING reading_count').all(id) as Array<{ reading_count: number }>;
    })();
    this.deleted(moved);
  }

  /** The dead letters, oldest first (at most limit). */
  deadLetters(limit = 1000): DeadLetter[] {
    const rows = this.db
      .prepare('SELECT id, flat_id, fetched_at_ms, readings, reason FROM dead_letter ORDER BY id LIMIT ?')
      .all(limit) as Array<{ id: number; flat_id: string; fetched_at_ms: number; readings: string; reason: string }>;
    return rows.map((row) => ({
      id: row.id,
      flatId: row.flat_id,
      fetchedAtMs: row.fetched_at_ms,
      reason: row.reason,
      readings: (JSON.parse(row.readings) as ReadingRow[]).map(readingOf),
    }));
  }

  /**
   * Moves dead letters back into the outbox (all of them, or those with the
   * given ids), so the forwarder sends them again; returns how many moved.
   */
  replayDeadLetters(ids?: readonly number[]): number {
    return this.inserts(this.db.transaction(() => {
      const rows = this.db.prepare('SELECT id, flat_id, fetched_at_ms, readings FROM dead_letter ORDER BY id').all() as Array<{
        id: number;
        flat_id: string;
        fetched_at_ms: number;
        readings: string;
      }>;
      const wanted = ids === undefined ? undefined : new Set(ids);
      let moved = 0;
      for (const row of rows) {
        if (wanted !== undefined && !wanted.has(row.id)) continue;
        this.insertRows(row.flat_id, row.fetched_at_ms, JSON.parse(row.readings) as ReadingRow[]);
        this.db.prepare('DELETE FROM dead_letter WHERE id = ?').run(row.id);
        moved += 1;
      }
      return moved;
    }));
  }

  /** Fetch results and readings waiting. */
  size(): { fetches: number; readings: number } {
    if (this.dataVersion() !== this.heldVersion) this.recount();
    return { ...this.held };
  }

  /** Closes the database. */
  close(): void {
    this.db.close();
  }
}
