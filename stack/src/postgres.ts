/**
 * PostgreSQL 15 as FerretDB's backend on this machine (issue [P]): initdb
 * into a folder of the state once, the server on loopback only, FerretDB on
 * top of it, and the one index FerretDB v1 cannot make for itself.
 *
 * Why PostgreSQL: FerretDB v1 pushes down nothing but top-level equality
 * (SQLite: only `{_id: <scalar>}`; PostgreSQL: `_jsonb->'<key>' @> '<value>'`),
 * no ranges and no sort, so a ListMeasurements page scans the whole readings
 * collection. Storage writes a `slot` ("<flat>/<minute>") on every reading and
 * query can read a range slot by slot with equality; on PostgreSQL a GIN index
 * on `(_jsonb->'slot')` answers that equality (ensureSlotIndex). FerretDB's own
 * createIndex makes a btree on the same expression, which `@>` cannot use.
 *
 * Traps this module works around:
 * - PostgreSQL refuses to run as root: the .tools/bin wrappers of initdb and
 *   postgres run them in a user namespace then (tools/install-postgresql.sh).
 * - postgres has no "port 0": a free port is picked by binding one and
 *   closing it, and a start that loses the race for it is tried again.
 * - SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client to
 *   leave, and FerretDB keeps a pool open: stop() sends SIGINT (fast
 *   shutdown: sessions are ended, a checkpoint is written), SIGKILL after the
 *   grace period.
 * - FerretDB (pgx) runs each query as a cached prepared statement whose
 *   field names are parameters too (`_jsonb -> $1 @> $2`). After five runs
 *   PostgreSQL may switch a statement to a generic plan, in which `_jsonb ->
 *   $1` cannot match the index on `_jsonb -> 'slot'`; it does so for good
 *   when the statement ran before the index existed (measured: 0 index scans,
 *   ~100 ms per slot lookup at 518,400 readings). plan_cache_mode =
 *   force_custom_plan plans every run with its values.
 * - A lookup by _id (`_jsonb->'_id' @> '"b12"'`) on a table of few, large
 *   documents (the 64 flat-state buckets, ~46 KB each at 10,000 flats; the
 *   flat-state log) is planned as a sequential scan even with a GIN index on
 *   `(_jsonb->'_id')` (ensureIdIndexes): the planner counts a handful of
 *   rows and not the unpacking of each out-of-line document that evaluating
 *   the filter takes (EXPLAIN ANALYZE: 121 ms per bucket lookup, 8.7 ms in a
 *   log of 31 documents; 0.13 ms and 0.05 ms through the index). The server
 *   runs with enable_seqscan=off: a query with a usable index uses it, one
 *   without (a find with no filter, the gap counts on `->>` expressions
 *   that no index has) still scans.
 * - Every duplicate key storage expects would be logged as an ERROR with its
 *   statement: the server logs from LOG up (log_min_messages=log keeps start,
 *   stop, checkpoints and FATAL/PANIC; errors go to the client, FerretDB).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { MongoClient, MongoServerError } from 'mongodb';
import { COLLECTIONS, STATE_LOG_COLLECTIONS } from '@flatline/platform';
import { freePort } from './haproxy.ts';
import { TOOLS_BIN } from './paths.ts';
import { spawnReady, type ManagedProcess } from './processes.ts';
import { gapsOfHoles, type GapReport, type Held, type SeqHole } from './probes.ts';

const run = promisify(execFile);

/** The PostgreSQL server, from tools/install-postgresql.sh (a wrapper: libraries from the cache, a user namespace as root). */
export const POSTGRES = join(TOOLS_BIN, 'postgres');
/** initdb, beside it. */
export const INITDB = join(TOOLS_BIN, 'initdb');
/** psql, beside it. */
export const PSQL = join(TOOLS_BIN, 'psql');

/** The superuser initdb creates (trust authentication, loopback only). */
export const POSTGRES_USER = 'flatline';
/** The database FerretDB keeps its schemas in (one schema per MongoDB database). */
export const POSTGRES_DATABASE = 'flatline';

/** Something PostgreSQL or its set-up refused; the message says what was expected and what was got. */
export class PostgresError extends Error {
  override name = 'PostgresError';
}

/** How to start PostgreSQL. */
export interface PostgresOptions {
  /** The cluster's folder: initdb runs into it once (when it holds no PG_VERSION yet). */
  readonly dataDir: string;
  /** Where the server listens; loopback only (default 127.0.0.1). */
  readonly host?: string;
  /** TCP port; 0 (the default) picks a free one. */
  readonly port?: number;
  /** Where initdb's and the server's output go (appended). */
  readonly logFile: string;
  /** In its own process group (see SpawnSpec.detached). */
  readonly detached?: boolean;
  /** Default 60 s (initdb included). */
  readonly readyTimeoutMs?: number;
}

/** A running PostgreSQL. */
export interface RunningPostgres {
  readonly process: ManagedProcess;
  readonly host: string;
  readonly port: number;
  /** postgres://flatline@host:port/flatline: for FerretDB's --postgresql-url and for psql. */
  readonly url: string;
  /** SIGINT (fast shutdown), then SIGKILL after graceMs (default 10 s); resolves with the exit code or signal. */
  stop(graceMs?: number): Promise<number | string>;
}

/** Runs psql on url with one SQL command; resolves with its unaligned, tuples-only output (trimmed). */
export async function psql(url: string, sql: string, timeoutMs = 60000): Promise<string> {
  try {
    const { stdout } = await run(PSQL, ['--no-psqlrc', '--quiet', '--tuples-only', '--no-align', '--set', 'ON_ERROR_STOP=1', '--dbname', url, '--command', sql], {
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout.trim();
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new PostgresError(`psql ${JSON.stringify(sql.slice(0, 200))} failed: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}

/** initdb into dataDir: C locale, UTF-8, trust authentication for 127.0.0.1 only. */
async function initCluster(dataDir: string, logFile: string): Promise<void> {
  mkdirSync(dirname(dataDir), { recursive: true });
  try {
    const { stdout, stderr } = await run(
      INITDB,
      ['--pgdata', dataDir, '--username', POSTGRES_USER, '--auth-local=trust', '--auth-host=trust', '--locale=C', '--encoding=UTF8', '--no-instructions'],
      { timeout: 120000 },
    );
    appendFileSync(logFile, stdout + stderr);
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    appendFileSync(logFile, `${e.stdout ?? ''}${e.stderr ?? ''}`);
    throw new PostgresError(`initdb into ${dataDir} failed: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
  // Only IPv4 loopback may connect, and without a password: the server listens on 127.0.0.1 alone, with no Unix socket.
  writeFileSync(join(dataDir, 'pg_hba.conf'), ['# flatline: trust on loopback only (stack/src/postgres.ts)', 'host all all 127.0.0.1/32 trust', ''].join('\n'));
  appendFileSync(
    join(dataDir, 'postgresql.conf'),
    [
      '',
      '# flatline (stack/src/postgres.ts): durable, no JIT (libllvm is not installed), quiet about the errors clients handle',
      'fsync = on',
      'synchronous_commit = on',
      'full_page_writes = on',
      'jit = off',
      // FerretDB passes even the field name as a parameter (`_jsonb -> $1 @> $2`) of a cached prepared statement: a generic plan can never match an expression index such as the slot index.
      'plan_cache_mode = force_custom_plan',
      'log_min_messages = log',
      'log_min_error_statement = panic',
      "log_line_prefix = '%m [%p] '",
      '',
    ].join('\n'),
  );
}

/**
 * Starts PostgreSQL on dataDir (running initdb there first if it holds no
 * cluster yet), listening on host (127.0.0.1) only, over TCP: no Unix
 * socket, whose path may not pass 107 bytes, which a deep state folder does
 * (a chaos run's did); resolves once it accepts a connection and the
 * database `flatline` exists.
 */
export async function startPostgres(options: PostgresOptions): Promise<RunningPostgres> {
  if (!existsSync(POSTGRES)) throw new PostgresError(`${POSTGRES} is missing: bash tools/install.sh postgresql`);
  const host = options.host ?? '127.0.0.1';
  const started = Date.now();
  const readyTimeoutMs = options.readyTimeoutMs ?? 60000;
  mkdirSync(dirname(options.logFile), { recursive: true });
  if (!existsSync(join(options.dataDir, 'PG_VERSION'))) await initCluster(options.dataDir, options.logFile);

  for (let attempt = 1; ; attempt++) {
    const port = options.port !== undefined && options.port !== 0 ? options.port : await freePort(host);
    let child: ManagedProcess;
    try {
      ({ process: child } = await spawnReady({
        name: 'postgres',
        command: POSTGRES,
        // enable_seqscan=off: see the traps above (lookups by _id on tables of few, large documents).
        args: ['-D', options.dataDir, '-c', `listen_addresses=${host}`, '-c', `port=${port}`, '-c', 'unix_socket_directories=', '-c', 'enable_seqscan=off'],
        logFile: options.logFile,
        detached: options.detached ?? false,
        readyTimeoutMs: Math.max(1000, readyTimeoutMs - (Date.now() - started)),
        ready: (line) => (/database system is ready to accept connections/.test(line) ? 'ready' : undefined),
      }));
    } catch (err) {
      // Another process took the port between freePort and the bind: pick another.
      if (options.port === undefined || options.port === 0) {
        if (attempt < 3 && /could not bind|Address already in use/.test((err as Error).message)) continue;
      }
      throw err;
    }
    const url = `postgres://${POSTGRES_USER}@${host}:${port}/${POSTGRES_DATABASE}`;
    const stop = async (graceMs = 10000): Promise<number | string> => {
      child.expected = true;
      if (!child.running) return child.exited;
      child.signal('SIGINT');
      child.signal('SIGCONT');
      const timer = setTimeout(() => child.signal('SIGKILL'), graceMs);
      try {
        return await child.exited;
      } finally {
        clearTimeout(timer);
      }
    };
    try {
      const admin = `postgres://${POSTGRES_USER}@${host}:${port}/postgres`;
      const exists = await psql(admin, `SELECT 1 FROM pg_database WHERE datname = '${POSTGRES_DATABASE}'`);
      if (exists !== '1') await psql(admin, `CREATE DATABASE ${POSTGRES_DATABASE}`);
      await psql(url, 'SELECT 1');
    } catch (err) {
      await stop(2000);
      throw new PostgresError(`postgres on ${host}:${port} started but does not answer: ${(err as Error).message}; last output:\n${child.lastLines()}`, { cause: err });
    }
    return { process: child, host, port, url, stop };
  }
}

/** "x" → "\"x\"": a PostgreSQL identifier, quoted. */
function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** 'x' → "'x'": a PostgreSQL string literal. */
function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** What ensureSlotIndex found or made. */
export interface SlotIndex {
  /** FerretDB's table of the collection, in the schema named after the MongoDB database. */
  readonly table: string;
  readonly index: string;
  /** False when a valid index was there already. */
  readonly created: boolean;
}

/** The index ensureSlotIndex makes on a FerretDB table. */
export function slotIndexName(table: string): string {
  // PostgreSQL identifiers hold 63 bytes; FerretDB's table names are shorter than that, but not by a fixed margin.
  return `${table.slice(0, 50)}_slot_gin`;
}

/** FerretDB's PostgreSQL table of collection in database (a schema), from FerretDB's own metadata table. */
export async function collectionTable(psqlUrl: string, database: string, collection: string): Promise<string> {
  const table = await psql(psqlUrl, `SELECT _jsonb->>'table' FROM ${ident(database)}._ferretdb_database_metadata WHERE _jsonb->>'_id' = ${literal(collection)}`).catch((err: unknown) => {
    throw new PostgresError(`no FerretDB metadata for database ${JSON.stringify(database)} at ${psqlUrl} (has storage created its collections?): ${(err as Error).message}`, { cause: err });
  });
  if (table === '') throw new PostgresError(`FerretDB has no collection ${JSON.stringify(collection)} in database ${JSON.stringify(database)} yet: storage creates it (with its indexes) when it starts`);
  return table;
}

/**
 * SQL of every stored reading (flat f, device d, epoch e, seq s) of FerretDB's
 * table of the readings, each once, those taken at or after since only when
 * given: a document of one reading gives its fields; a fetch document
 * (FetchDoc) gives the rows of its readings_json, its flat from its slot
 * ("<flat>/<minute>"). Once each: two fetch results may carry the same
 * reading (a replica that took a flat over fetches the devices' whole window
 * again), and before fetch documents the unique index ruled that out.
 */
export function storedReadingsSql(database: string, table: string, since?: Date): string {
  if (since !== undefined && !Number.isFinite(since.getTime())) throw new PostgresError(`storedReadingsSql: since is not a time (${String(since)})`);
  const from = `${ident(database)}.${ident(table)}`;
  const when = since === undefined ? '' : ` WHERE t >= ${since.getTime()}`;
  return (
    `SELECT DISTINCT f, d, e, s FROM (` +
    `SELECT _jsonb->>'flat_id' AS f, _jsonb->>'device_id' AS d, coalesce((_jsonb->>'epoch')::bigint, 0) AS e, (_jsonb->>'seq')::bigint AS s, (_jsonb->>'taken_at')::bigint AS t ` +
    `FROM ${from} WHERE NOT _jsonb ? 'readings_json' ` +
    `UNION ALL SELECT regexp_replace(_jsonb->>'slot', '/[^/]*$', ''), x->>0, (x->>1)::bigint, (x->>2)::bigint, (x->>3)::bigint ` +
    `FROM ${from} CROSS JOIN LATERAL jsonb_array_elements((_jsonb->>'readings_json')::jsonb) AS x WHERE _jsonb ? 'readings_json'` +
    `) AS a${when}`
  );
}

/** What readingGapsSql found. */
export interface SqlGapReport {
  /** (flat, device, epoch) runs with readings. */
  readonly runs: number;
  readonly readings: number;
  /** Seqs missing between each run's lowest and highest stored seq, summed. */
  readonly missing: number;
  /** Runs with at least one missing seq. */
  readonly runsWithGaps: number;
}

/**
 * The gap count of probes.ts's seqGaps, computed by PostgreSQL itself over
 * FerretDB's table of the readings: per (flat, device, epoch), highest seq −
 * lowest seq + 1 − readings (each counted once: storedReadingsSql). At a
 * scale run's millions of readings FerretDB v1 would sort them all in its own
 * memory (it pushes no sort down); this is one aggregate in the database.
 */
export async function readingGapsSql(psqlUrl: string, database: string, timeoutMs = 10 * 60_000): Promise<SqlGapReport> {
  const table = await collectionTable(psqlUrl, database, COLLECTIONS.readings);
  const out = await psql(
    psqlUrl,
    `SELECT count(*), coalesce(sum(n), 0), coalesce(sum(hi - lo + 1 - n), 0), count(*) FILTER (WHERE hi - lo + 1 > n) FROM (` +
      `SELECT count(*) AS n, min(s) AS lo, max(s) AS hi FROM (${storedReadingsSql(database, table)}) AS r GROUP BY f, d, e) AS runs`,
    timeoutMs,
  );
  const [runs, readings, missing, runsWithGaps] = out.split('|').map(Number);
  if ([runs, readings, missing, runsWithGaps].some((n) => n === undefined || !Number.isFinite(n))) throw new PostgresError(`readingGapsSql: psql answered ${JSON.stringify(out)}`);
  return { runs: runs!, readings: readings!, missing: missing!, runsWithGaps: runsWithGaps! };
}

/**
 * probes.ts's seqGaps (the same GapReport, the same holes, the same outbox
 * check), asked of PostgreSQL over FerretDB's table of the readings: a
 * window over each (flat, device, epoch) ordered by seq finds the holes in
 * the database, and only they come back. FerretDB v1 pushes no sort down:
 * seqGaps through it sorts every reading in FerretDB's memory (seconds per
 * count at a few hundred thousand readings, and every chaos experiment
 * counts gaps every few seconds). Readings taken before since are left out,
 * as seqGaps does.
 */
export async function readingGapsPostgres(psqlUrl: string, database: string, since?: Date, held?: Held, timeoutMs = 60_000): Promise<GapReport> {
  const table = await collectionTable(psqlUrl, database, COLLECTIONS.readings);
  const out = await psql(
    psqlUrl,
    `WITH r AS (${storedReadingsSql(database, table, since)}), ` +
      `w AS (SELECT f, d, e, s, lag(s) OVER (PARTITION BY f, d, e ORDER BY s) AS p FROM r) ` +
      `SELECT json_build_object('readings', (SELECT count(*) FROM r), 'devices', (SELECT count(*) FROM (SELECT DISTINCT f, d FROM r) AS x), ` +
      `'holes', (SELECT coalesce(json_agg(json_build_array(f, d, e, p, s) ORDER BY f, d, e, s), '[]'::json) FROM w WHERE s - p > 1))`,
    timeoutMs,
  );
  let answer: { readings: number; devices: number; holes: Array<[string, string, number, number, number]> };
  try {
    answer = JSON.parse(out) as typeof answer;
  } catch {
    throw new PostgresError(`readingGapsPostgres: psql answered ${JSON.stringify(out.slice(0, 200))}`);
  }
  const holes: SeqHole[] = answer.holes.map(([flat, device, epoch, after, before]) => ({ flat, device, epoch, after, before }));
  return gapsOfHoles(holes, answer.devices, answer.readings, held);
}

/**
 * Makes sure FerretDB's PostgreSQL table of collection (in the schema named
 * database, the MongoDB database) has a GIN index on `(_jsonb->'slot')`, the
 * form FerretDB v1 pushes an equality on `slot` down as
 * (`_jsonb->'slot' @> '"<flat>/<minute>"'`). FerretDB names each
 * collection's table in the `_ferretdb_database_metadata` table of that
 * schema (`_jsonb->>'_id'` is the collection, `_jsonb->>'table'` its
 * table); it does not know of this index and leaves it alone (it drops it
 * with the table). Built CONCURRENTLY, so that a table with a day of history
 * keeps taking inserts while it builds; an index left invalid by a failed
 * build is dropped and built again. The collection must exist (storage
 * creates it with its indexes at start). Without fast updates: with them,
 * inserts go to a pending list that every lookup scans until a vacuum merges
 * it, so under a steady stream of readings the slot lookups slow down.
 */
export async function ensureSlotIndex(psqlUrl: string, database: string, collection: string): Promise<SlotIndex> {
  const table = await collectionTable(psqlUrl, database, collection);
  return ensureGinIndex(psqlUrl, database, table, 'slot', slotIndexName(table));
}

/** A GIN index on `(_jsonb->'<field>')` of a FerretDB table (see ensureSlotIndex), made CONCURRENTLY, without fast updates. */
async function ensureGinIndex(psqlUrl: string, database: string, table: string, field: string, index: string): Promise<SlotIndex> {
  const state = await psql(
    psqlUrl,
    `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ${literal(database)} AND c.relname = ${literal(index)}`,
  );
  if (state === 't') {
    // An index of an earlier release may take fast updates: turn them off (the pending list is merged by the next vacuum).
    await psql(psqlUrl, `ALTER INDEX ${ident(database)}.${ident(index)} SET (fastupdate = off)`);
    return { table, index, created: false };
  }
  if (state === 'f') await psql(psqlUrl, `DROP INDEX CONCURRENTLY IF EXISTS ${ident(database)}.${ident(index)}`);
  await psql(psqlUrl, `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${ident(index)} ON ${ident(database)}.${ident(table)} USING gin ((_jsonb->${literal(field)})) WITH (fastupdate = off)`, 30 * 60_000);
  return { table, index, created: true };
}

/**
 * The collections read and written one document at a time by _id: the flat
 * state's buckets, its log and writers, ingestion's leases and members.
 * FerretDB v1 pushes `{_id: x}` down to PostgreSQL as
 * `_jsonb->'_id' @> 'x'`, which its own unique btree index on
 * `(_jsonb->'_id')` cannot answer (a btree serves =, not @>): every lookup
 * and every update was a scan of the table that unpacks each document. On
 * the 64 bucket documents at 10,000 flats (~46 KB each, stored out of line)
 * that took 121 ms per lookup; with a GIN index on `(_jsonb->'_id')`, 0.13 ms
 * (EXPLAIN ANALYZE on this machine).
 */
export const ID_LOOKUP_COLLECTIONS = [COLLECTIONS.state, STATE_LOG_COLLECTIONS.log, STATE_LOG_COLLECTIONS.writers, STATE_LOG_COLLECTIONS.locks, 'ingestion_leases', 'ingestion_members'] as const;

/** The index ensureIdIndexes makes on a FerretDB table. */
export function idIndexName(table: string): string {
  return `${table.slice(0, 50)}_id_gin`;
}

/** A GIN index on `(_jsonb->'_id')` of each of ID_LOOKUP_COLLECTIONS (created first where missing) of the database at mongoUri. */
export async function ensureIdIndexes(mongoUri: string, psqlUrl: string): Promise<SlotIndex[]> {
  const client = new MongoClient(mongoUri, { serverSelectionTimeoutMS: 10000 });
  try {
    const db = client.db();
    const made: SlotIndex[] = [];
    for (const collection of ID_LOOKUP_COLLECTIONS) {
      await db.createCollection(collection).catch((err: unknown) => {
        if (!(err instanceof MongoServerError && err.code === NAMESPACE_EXISTS)) throw err;
      });
      const table = await collectionTable(psqlUrl, db.databaseName, collection);
      made.push(await ensureGinIndex(psqlUrl, db.databaseName, table, '_id', idIndexName(table)));
    }
    return made;
  } finally {
    await client.close();
  }
}

const NAMESPACE_EXISTS = 48;

/**
 * The slot index of the readings collection of the database at mongoUri
 * (FerretDB on PostgreSQL at psqlUrl): creates the collection first when
 * storage has not yet (so that the index is there before the first reading),
 * then ensureSlotIndex.
 */
export async function ensureReadingsSlotIndex(mongoUri: string, psqlUrl: string): Promise<SlotIndex> {
  const client = new MongoClient(mongoUri, { serverSelectionTimeoutMS: 10000 });
  try {
    const db = client.db();
    await db.createCollection(COLLECTIONS.readings).catch((err: unknown) => {
      if (!(err instanceof MongoServerError && err.code === NAMESPACE_EXISTS)) throw err;
    });
    const index = await ensureSlotIndex(psqlUrl, db.databaseName, COLLECTIONS.readings);
    await quietStatistics(psqlUrl, db.databaseName, index.table);
    return index;
  } finally {
    await client.close();
  }
}

/**
 * Has ANALYZE of a FerretDB table collect no statistics of its values: of
 * the `_jsonb` column and of every expression of its indexes (the ones there
 * now: the stack calls it again once storage has made its own). The
 * readings table only grows, so autovacuum analyzes it every minute or two
 * while it is young, and each ANALYZE sorted and compared 30,000 sampled
 * documents and their index expressions: 0.9-1.2 s of CPU within 2-3.7 s
 * at 10,000 flats, and knowledge freshness p99 rose above 8 s in the
 * seconds after (17 % of the 3-s samples over 8 s, 7 % once it was quiet:
 * the two halves of one `flatline up --flats 10000`). Nothing reads those statistics:
 * FerretDB's lookups are the index ones (`enable_seqscan = off`, custom
 * plans). The row and page counts ANALYZE keeps are still kept.
 */
export async function quietStatistics(psqlUrl: string, database: string, table: string): Promise<void> {
  const rel = literal(`${ident(database)}.${ident(table)}`);
  await psql(
    psqlUrl,
    `ALTER TABLE ${ident(database)}.${ident(table)} ALTER COLUMN _jsonb SET STATISTICS 0;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT i.indexrelid::regclass AS idx, i.indnatts AS n, i.indkey AS keys FROM pg_index i WHERE i.indrelid = ${rel}::regclass LOOP
    FOR k IN 1..r.n LOOP
      IF r.keys[k - 1] = 0 THEN
        EXECUTE format('ALTER INDEX %s ALTER COLUMN %s SET STATISTICS 0', r.idx, k);
      END IF;
    END LOOP;
  END LOOP;
END $$;`,
  );
}

/** quietStatistics of the readings collection's table (after storage has made its indexes). */
export async function quietReadingsStatistics(mongoUri: string, psqlUrl: string): Promise<void> {
  const client = new MongoClient(mongoUri, { serverSelectionTimeoutMS: 10000 });
  try {
    const db = client.db();
    await quietStatistics(psqlUrl, db.databaseName, await collectionTable(psqlUrl, db.databaseName, COLLECTIONS.readings));
  } finally {
    await client.close();
  }
}
