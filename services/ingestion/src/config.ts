/** Ingestion configuration: the only reader of the environment in this service. */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { ConfigError, DATABASE_ENV, grpcTarget, hostPort, int, isXdsTarget, LOG_LEVEL_ENV, oneOf, readEnv, SHUTDOWN_ENV, text, type Variable } from '@flatline/platform';
import { z } from 'zod';

/**
 * The device gateway's base URL: https://host[:port] (ingestion does the TLS,
 * trusting FLATLINE_DEVICES_CA), or http://host[:port] for a sidecar that
 * originates TLS itself (Istio must read the requests to fault them); no
 * path, user, query or fragment.
 */
function devicesUrl(fallback: string): Variable<string> {
  return {
    describe: 'the device gateway\'s base URL: https://host[:port], or http://host[:port] when a sidecar (Istio) originates the TLS',
    fallback,
    schema: z
      .string()
      .regex(/^https?:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(:\d{1,5})?\/?$/)
      .refine((u) => {
        const port = /:(\d+)\/?$/.exec(u.replace(/^https?:\/\/\[[^\]]*\]/, ''))?.[1];
        return port === undefined || (Number(port) >= 1 && Number(port) <= 65535);
      }),
  };
}

/** The variables ingestion reads, with their defaults (which run locally). */
export const INGESTION_ENV = {
  FLATLINE_INGESTION_ID: text(`${hostname()}-${process.pid}`, 'this replica\'s name, unique among replicas (default host-pid)'),
  FLATLINE_INGESTION_LISTEN: hostPort('127.0.0.1:7103'),
  FLATLINE_INGESTION_METRICS_LISTEN: hostPort('127.0.0.1:9103'),
  FLATLINE_INGESTION_STATE_DIR: text('.state/ingestion', 'folder of this replica\'s outbox (one folder per replica)'),
  FLATLINE_DEVICES_URL: devicesUrl('https://127.0.0.1:8443'),
  FLATLINE_DEVICES_CA: text('.state/devices/ca.pem', 'PEM file of the CA that signed the device gateway\'s certificate (https:// only; unused with http://)'),
  FLATLINE_DEVICES_CREDENTIALS: text('.state/devices/credentials.json', 'the flats\' credentials file (which flats exist, and how to log in)'),
  FLATLINE_STORAGE_ADDR: grpcTarget('127.0.0.1:7101'),
  FLATLINE_FAULTS_FILE: text('.state/faults.json', 'the local fault file (flatline fault on/off writes it; absent means no fault)'),
  FLATLINE_DEVICES_XDS_BOOTSTRAP: {
    describe:
      "an xDS bootstrap file (GRPC_XDS_BOOTSTRAP's format) of Istio's control plane: the device faults are then the routes istiod generates for a sidecar of that node identity (asked over ADS for the devices host), not the fault file; empty (the default): the fault file",
    fallback: '',
    schema: z.string(),
  } satisfies Variable<string>,
  FLATLINE_DEVICE_LINKS_FILE: text('.state/device-links.json', 'the local plane\'s per-flat device links: flats polled through a proxy of their own (flatline fault on with --flats and a TCP scenario writes it; absent means none)'),
  FLATLINE_MONGODB_URI: DATABASE_ENV.FLATLINE_MONGODB_URI,
  FLATLINE_POLL_INTERVAL_MS: int(5000, 100, 3600000, 'milliseconds between two polls of a flat (100 to 3600000)'),
  FLATLINE_POLL_TIMEOUT_MS: int(2000, 50, 600000, 'milliseconds one poll may take (50 to 600000); keep it shorter than the interval (a longer one is accepted with a warning: a slow flat then misses polls and, with little concurrency, holds up the others)'),
  FLATLINE_POLL_CONCURRENCY: int(256, 1, 10000, 'polls in flight at once (1 to 10000)'),
  FLATLINE_BREAKER_FAILURES: int(3, 1, 1000, 'consecutive failures that open a flat\'s circuit breaker (1 to 1000)'),
  FLATLINE_BACKOFF_MAX_MS: int(20000, 100, 3600000, 'longest wait before a failing flat is polled again (100 to 3600000)'),
  FLATLINE_FORWARD_BATCH: int(500, 1, 1000, 'fetch results per Append (1 to 1000)'),
  FLATLINE_FORWARD_TIMEOUT_MS: int(5000, 100, 60000, 'deadline of one Append (100 to 60000)'),
  FLATLINE_FORWARD_ON_FAILURE: {
    ...oneOf('retry', ['retry', 'drop'] as const),
    // drop exists so the chaos experiments can show H3 failing without the outbox's guarantee.
    describe: 'retry (a failed Append stays in the outbox: nothing is lost) or drop (at-most-once; a weakened configuration for negative controls, never for production)',
  },
  FLATLINE_OUTBOX_WARN_ROWS: int(100000, 1, 100000000, 'outbox size (fetch results) that logs a warning'),
  FLATLINE_OUTBOX_MAX_BYTES: int(
    1024 * 1024 * 1024,
    1024 * 1024,
    Number.MAX_SAFE_INTEGER,
    'largest size of the outbox in bytes (keep it below its volume\'s size): from 90 % health turns NOT_SERVING; when full, new fetches are not kept and stay on the devices for their window (at least 1048576)',
  ),
  FLATLINE_INGESTION_REPLICAS: int(
    1,
    1,
    1000,
    'replicas of ingestion; with the ordinal at the end of FLATLINE_INGESTION_ID (ingestion-0, ingestion-1, …) it gives this replica its fallback share: the buckets it polls while the lease database cannot be read (without an ordinal, every bucket) (1 to 1000)',
  ),
  FLATLINE_LEASE_BUCKETS: int(64, 1, 4096, 'buckets the flats are hashed into for sharing between replicas (1 to 4096)'),
  FLATLINE_LEASE_TTL_MS: int(8000, 1000, 600000, 'milliseconds a replica\'s lease lasts without renewal (1000 to 600000)'),
  FLATLINE_LEASE_RENEW_MS: int(2000, 100, 600000, 'milliseconds between lease renewals; must be under a third of the TTL'),
  FLATLINE_LEASE_ON_OUTAGE: {
    ...oneOf('keep', ['keep', 'release'] as const),
    // release exists so the fault campaign can show its fetch-freshness invariant failing.
    describe:
      'keep (a replica that cannot reach the lease database keeps polling the flats it holds, and its fallback share: no flat goes unpolled) or release (it stops polling once its leases expire; a weakened configuration for negative controls, never for production)',
  },
  FLATLINE_DB_TIMEOUT_MS: int(3000, 100, 60000, 'milliseconds a lease database call may take (100 to 60000)'),
  ...SHUTDOWN_ENV,
  ...LOG_LEVEL_ENV,
};

/** The ordinal at the end of a replica id such as ingestion-1 (undefined without one). */
export function ordinalOf(id: string): number | undefined {
  const m = /-(\d{1,6})$/.exec(id);
  return m === null ? undefined : Number(m[1]);
}

/** Typed ingestion configuration. */
export type IngestionConfig = ReturnType<typeof loadConfig>;

/** Reads the configuration; throws a ConfigError naming a bad variable (also for inconsistent pairs). */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env) {
  const e = readEnv(INGESTION_ENV, env);
  if (e.FLATLINE_LEASE_RENEW_MS * 3 > e.FLATLINE_LEASE_TTL_MS) {
    throw new ConfigError('FLATLINE_LEASE_RENEW_MS', `must be at most a third of FLATLINE_LEASE_TTL_MS (${e.FLATLINE_LEASE_TTL_MS}), got ${e.FLATLINE_LEASE_RENEW_MS}`);
  }
  // grpc-js-xds reads its bootstrap from the environment: an xds:/// target without one would hang in name resolution.
  if (isXdsTarget(e.FLATLINE_STORAGE_ADDR) && !env['GRPC_XDS_BOOTSTRAP'] && !env['GRPC_XDS_BOOTSTRAP_CONFIG']) {
    throw new ConfigError('FLATLINE_STORAGE_ADDR', `${e.FLATLINE_STORAGE_ADDR} dials through xDS, which needs GRPC_XDS_BOOTSTRAP (a bootstrap file) or GRPC_XDS_BOOTSTRAP_CONFIG; neither is set`);
  }
  return {
    id: e.FLATLINE_INGESTION_ID,
    listen: e.FLATLINE_INGESTION_LISTEN,
    metricsListen: e.FLATLINE_INGESTION_METRICS_LISTEN,
    stateDir: resolve(e.FLATLINE_INGESTION_STATE_DIR),
    devicesUrl: e.FLATLINE_DEVICES_URL.replace(/\/$/, ''),
    // With http:// the TLS to the device gateway is the sidecar's: no CA file is read.
    devicesCa: e.FLATLINE_DEVICES_URL.startsWith('https://') ? resolve(e.FLATLINE_DEVICES_CA) : undefined,
    credentialsFile: resolve(e.FLATLINE_DEVICES_CREDENTIALS),
    storageAddr: e.FLATLINE_STORAGE_ADDR,
    faultsFile: resolve(e.FLATLINE_FAULTS_FILE),
    devicesXdsBootstrap: e.FLATLINE_DEVICES_XDS_BOOTSTRAP === '' ? undefined : resolve(e.FLATLINE_DEVICES_XDS_BOOTSTRAP),
    deviceLinksFile: resolve(e.FLATLINE_DEVICE_LINKS_FILE),
    mongoUri: e.FLATLINE_MONGODB_URI,
    poll: {
      intervalMs: e.FLATLINE_POLL_INTERVAL_MS,
      timeoutMs: e.FLATLINE_POLL_TIMEOUT_MS,
      concurrency: e.FLATLINE_POLL_CONCURRENCY,
      breakerFailures: e.FLATLINE_BREAKER_FAILURES,
      backoffMaxMs: e.FLATLINE_BACKOFF_MAX_MS,
    },
    forward: { batch: e.FLATLINE_FORWARD_BATCH, timeoutMs: e.FLATLINE_FORWARD_TIMEOUT_MS, onFailure: e.FLATLINE_FORWARD_ON_FAILURE },
    outboxWarnRows: e.FLATLINE_OUTBOX_WARN_ROWS,
    outboxMaxBytes: e.FLATLINE_OUTBOX_MAX_BYTES,
    replicas: e.FLATLINE_INGESTION_REPLICAS,
    /** This replica's ordinal: the number at the end of its id (a StatefulSet pod's name), if any. */
    ordinal: ordinalOf(e.FLATLINE_INGESTION_ID),
    lease: { buckets: e.FLATLINE_LEASE_BUCKETS, ttlMs: e.FLATLINE_LEASE_TTL_MS, renewMs: e.FLATLINE_LEASE_RENEW_MS, onOutage: e.FLATLINE_LEASE_ON_OUTAGE },
    dbTimeoutMs: e.FLATLINE_DB_TIMEOUT_MS,
    shutdownGraceMs: e.FLATLINE_SHUTDOWN_GRACE_MS,
    logLevel: e.FLATLINE_LOG_LEVEL,
  };
}
