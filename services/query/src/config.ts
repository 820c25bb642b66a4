/** Query configuration: the only reader of the environment in this service. */
import { ConfigError, DATABASE_ENV, DATABASE_PING_ENV, hostPort, int, LOG_LEVEL_ENV, readEnv, SHUTDOWN_ENV, text } from '@flatline/platform';
import { MIN_PAGE_TOKEN_KEY_LENGTH } from './domain/page-token.ts';

/**
 * The page-token key of a local run. It is public (it is in this file), so
 * anyone can sign page tokens for a deployment that keeps it: set
 * FLATLINE_QUERY_PAGE_TOKEN_KEY (the same secret on every replica) anywhere
 * else. main.ts warns at start while this key is in use.
 */
export const DEV_PAGE_TOKEN_KEY = 'flatline-dev-page-token-key (public: set FLATLINE_QUERY_PAGE_TOKEN_KEY)';

/** The variables query reads, with their defaults (which run locally). */
export const QUERY_ENV = {
  FLATLINE_QUERY_LISTEN: hostPort('127.0.0.1:7102'),
  FLATLINE_QUERY_METRICS_LISTEN: hostPort('127.0.0.1:9102'),
  ...DATABASE_ENV,
  ...DATABASE_PING_ENV,
  FLATLINE_QUERY_SNAPSHOT_MS: int(
    500,
    0,
    60000,
    'milliseconds between reloads of the in-memory copy of the flat state that GetLatest and GetFreshness answer from (0: read the database per call; answers are at most this much behind storage)',
  ),
  FLATLINE_QUERY_MAX_STREAMS: int(
    64,
    1,
    10000,
    'WatchFreshness streams this process serves at once (1 to 10000); one more is refused with RESOURCE_EXHAUSTED. Each costs a report per interval (down to 0.1 s) and at most two reports of memory however slowly its caller reads',
  ),
  FLATLINE_QUERY_PAGE_TOKEN_KEY: text(
    DEV_PAGE_TOKEN_KEY,
    `the secret that signs ListMeasurements page tokens (HMAC-SHA256), at least ${MIN_PAGE_TOKEN_KEY_LENGTH} characters, the same on every replica; the default is a public dev key`,
  ),
  FLATLINE_QUERY_SLOT_READS: int(
    0,
    0,
    1,
    'ListMeasurements reads a time range minute by minute by the slot storage writes on each reading (an equality that FerretDB on PostgreSQL answers from an index; on SQLite each is a scan, so leave it off there), and the old way only before the time storage began to write slots; 1 on, 0 off. flatline up --db postgresql turns it on. Turn it on once every storage replica writes slots',
  ),
  ...SHUTDOWN_ENV,
  ...LOG_LEVEL_ENV,
};

/** Typed query configuration. */
export type QueryConfig = ReturnType<typeof loadConfig>;

/** Reads the configuration; throws a ConfigError naming a bad variable. */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env) {
  const e = readEnv(QUERY_ENV, env);
  const pageTokenKey = e.FLATLINE_QUERY_PAGE_TOKEN_KEY;
  if (pageTokenKey.length < MIN_PAGE_TOKEN_KEY_LENGTH) {
    throw new ConfigError('FLATLINE_QUERY_PAGE_TOKEN_KEY', `expected at least ${MIN_PAGE_TOKEN_KEY_LENGTH} characters, got ${pageTokenKey.length} (the value is not shown)`);
  }
  return {
    listen: e.FLATLINE_QUERY_LISTEN,
    metricsListen: e.FLATLINE_QUERY_METRICS_LISTEN,
    mongoUri: e.FLATLINE_MONGODB_URI,
    dbTimeoutMs: e.FLATLINE_DB_TIMEOUT_MS,
    dbPingMs: e.FLATLINE_DB_PING_MS,
    snapshotMs: e.FLATLINE_QUERY_SNAPSHOT_MS,
    maxStreams: e.FLATLINE_QUERY_MAX_STREAMS,
    pageTokenKey,
    /** Whether the public dev key signs page tokens (no FLATLINE_QUERY_PAGE_TOKEN_KEY given). */
    pageTokenKeyIsDev: pageTokenKey === DEV_PAGE_TOKEN_KEY,
    /** Whether ListMeasurements reads by slots (FLATLINE_QUERY_SLOT_READS=1). */
    slotReads: e.FLATLINE_QUERY_SLOT_READS === 1,
    shutdownGraceMs: e.FLATLINE_SHUTDOWN_GRACE_MS,
    logLevel: e.FLATLINE_LOG_LEVEL,
  };
}
