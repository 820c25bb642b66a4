/** Storage configuration: the only reader of the environment in this service. */
import { DATABASE_ENV, hostPort, int, LOG_LEVEL_ENV, readEnv, SHUTDOWN_ENV } from '@flatline/platform/config.js';

/** The variables storage reads, with their defaults (which run locally). */
export const STORAGE_ENV = {
  FLATLINE_STORAGE_LISTEN: hostPort('127.0.0.1:7101'),
  FLATLINE_STORAGE_METRICS_LISTEN: hostPort('127.0.0.1:9101'),
  ...DATABASE_ENV,
  FLATLINE_DB_PING_MS: int(1000, 100, 60000, 'milliseconds between database health pings (100 to 60000)'),
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
    shutdownGraceMs: e.FLATLINE_SHUTDOWN_GRACE_MS,
    logLevel: e.FLATLINE_LOG_LEVEL,
  };
}
