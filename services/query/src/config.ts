/** Query configuration: the only reader of the environment in this service. */
import { DATABASE_ENV, hostPort, int, LOG_LEVEL_ENV, readEnv, SHUTDOWN_ENV } from '@flatline/platform/config.js';

/** The variables query reads, with their defaults (which run locally). */
export const QUERY_ENV = {
  FLATLINE_QUERY_LISTEN: hostPort('127.0.0.1:7102'),
  FLATLINE_QUERY_METRICS_LISTEN: hostPort('127.0.0.1:9102'),
  ...DATABASE_ENV,
  FLATLINE_DB_PING_MS: int(1000, 100, 60000, 'milliseconds between database health pings (100 to 60000)'),
  FLATLINE_QUERY_SNAPSHOT_MS: int(
    500,
    0,
    60000,
    'milliseconds between reloads of the in-memory copy of the flat state that GetLatest and GetFreshness answer from (0: read the database per call; answers are at most this much behind storage)',
  ),
  ...SHUTDOWN_ENV,
  ...LOG_LEVEL_ENV,
};

/** Typed query configuration. */
export type QueryConfig = ReturnType<typeof loadConfig>;

/** Reads the configuration; throws a ConfigError naming a bad variable. */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env) {
  const e = readEnv(QUERY_ENV, env);
  return {
    listen: e.FLATLINE_QUERY_LISTEN,
    metricsListen: e.FLATLINE_QUERY_METRICS_LISTEN,
    mongoUri: e.FLATLINE_MONGODB_URI,
    dbTimeoutMs: e.FLATLINE_DB_TIMEOUT_MS,
    dbPingMs: e.FLATLINE_DB_PING_MS,
    snapshotMs: e.FLATLINE_QUERY_SNAPSHOT_MS,
    shutdownGraceMs: e.FLATLINE_SHUTDOWN_GRACE_MS,
    logLevel: e.FLATLINE_LOG_LEVEL,
  };
}
