/** Storage configuration: the only reader of the environment in this service. */
import { DATABASE_ENV, DATABASE_PING_ENV, hostPort, int, LOG_LEVEL_ENV, readEnv, SHUTDOWN_ENV } from '@flatline/platform';

/** How far ahead of storage's clock a fetch time may be, by default (milliseconds). */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 5000;

/** The variables storage reads, with their defaults (which run locally). */
export const STORAGE_ENV = {
  FLATLINE_STORAGE_LISTEN: hostPort('127.0.0.1:7101'),
  FLATLINE_STORAGE_METRICS_LISTEN: hostPort('127.0.0.1:9101'),
  ...DATABASE_ENV,
  ...DATABASE_PING_ENV,
  FLATLINE_MAX_CLOCK_SKEW_MS: int(
    DEFAULT_MAX_CLOCK_SKEW_MS,
    100,
    60000,
    "milliseconds a fetch time may be ahead of storage's clock and still count as the flat's last fetch; a later one is counted and left out, its readings stored (100 to 60000)",
  ),
  FLATLINE_STATE_DEVICE_TTL_MS: int(
    86400000,
    60000,
    31536000000,
    'milliseconds after its last reading a device leaves the flat state (latest readings), which keeps the state documents bounded; its readings stay (60000 to 31536000000)',
  ),
  FLATLINE_STATE_PRUNE_MS: int(600000, 1000, 86400000, 'milliseconds between two passes of the flat-state pruner (1000 to 86400000)'),
  FLATLINE_STATE_COMPACT_MS: int(
    15000,
    100,
    600000,
    'milliseconds between two passes of the flat-state compactor, which moves the log of last fetches and latest readings into the bucket documents (100 to 600000)',
  ),
  FLATLINE_STATE_COMPACT_GRACE_MS: int(
    5000,
    0,
    600000,
    "milliseconds a flat-state log document stays before the compactor moves it into the buckets (0 to 600000): query replicas follow the log (every FLATLINE_QUERY_SNAPSHOT_MS), and one that finds a document moved before it read it loads every bucket again and misses that writer's changes until then; keep it well above query's refresh",
  ),
  FLATLINE_STORAGE_FETCH_DOCUMENTS: int(
    0,
    0,
    1,
    "stores each fetch result's readings of a minute as one document (one JSON field) instead of one document per reading: about a fifth of the database's CPU per reading on FerretDB on PostgreSQL; FerretDB only, and query must then read by slots (FLATLINE_QUERY_SLOT_READS=1; it refuses ranges otherwise). flatline up --db postgresql turns it on; 1 on, 0 off",
  ),
  ...SHUTDOWN_ENV,
  ...LOG_LEVEL_ENV,
};

/** Typed storage configuration. */
export type StorageConfig = ReturnType<typeof loadConfig>;

/** Reads the configuration; throws a ConfigError naming a bad variable. */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env) {
  const e = readEnv(STORAGE_ENV, env);
  return {
    listen: e.FLATLINE_STORAGE_LISTEN,
    metricsListen: e.FLATLINE_STORAGE_METRICS_LISTEN,
    mongoUri: e.FLATLINE_MONGODB_URI,
    dbTimeoutMs: e.FLATLINE_DB_TIMEOUT_MS,
    dbPingMs: e.FLATLINE_DB_PING_MS,
    maxClockSkewMs: e.FLATLINE_MAX_CLOCK_SKEW_MS,
    stateDeviceTtlMs: e.FLATLINE_STATE_DEVICE_TTL_MS,
    statePruneMs: e.FLATLINE_STATE_PRUNE_MS,
    stateCompactMs: e.FLATLINE_STATE_COMPACT_MS,
    stateCompactGraceMs: e.FLATLINE_STATE_COMPACT_GRACE_MS,
    /** Whether readings are stored one document per fetch result and minute (FLATLINE_STORAGE_FETCH_DOCUMENTS=1). */
    fetchDocuments: e.FLATLINE_STORAGE_FETCH_DOCUMENTS === 1,
    shutdownGraceMs: e.FLATLINE_SHUTDOWN_GRACE_MS,
    logLevel: e.FLATLINE_LOG_LEVEL,
  };
}
