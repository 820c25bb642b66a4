/** Devices configuration: the only reader of the environment in this service. */
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, hostPort, int, LOG_LEVEL_ENV, readEnv, text, type Variable } from '@flatline/platform';
import { isLoopbackAddress } from './http/listen.ts';

/** Upper bound of readings per device in one answer (window / period), so one answer stays small. */
export const MAX_READINGS_PER_DEVICE = 10_000;

const CREDENTIALS_DEFAULT = '<state dir>/credentials.json';

const DNS_NAME = /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Comma-separated DNS names or IP addresses, possibly none. */
function nameList(): Variable<string[]> {
  return {
    describe: 'extra DNS names or IP addresses of the server certificate, comma-separated (such as devices.flatline.svc)',
    fallback: '',
    schema: z
      .string()
      .transform((s) => s.split(',').map((n) => n.trim()).filter((n) => n !== ''))
      .pipe(z.array(z.string().refine((n) => isIP(n) !== 0 || (n.length <= 253 && DNS_NAME.test(n))))),
  };
}

/** The user name and password a Prometheus scrape job sends to every flat's /metrics. */
export interface ScrapeCredential {
  readonly username: string;
  readonly password: string;
}

/**
 * Reads FLATLINE_DEVICES_SCRAPE_CREDENTIAL ('' is unset). The error says what
 * is wrong but never echoes the value: it is a password.
 */
function parseScrapeCredential(raw: string): ScrapeCredential | undefined {
  if (raw === '') return undefined;
  const colon = raw.indexOf(':');
  const username = colon < 0 ? '' : raw.slice(0, colon);
  const password = colon < 0 ? '' : raw.slice(colon + 1);
  if (username === '' || username.length > 128 || password.length < 8 || password.length > 256) {
    throw new ConfigError(
      'FLATLINE_DEVICES_SCRAPE_CREDENTIAL',
      'expected user:password, a user name of 1 to 128 characters without ":" and a password of 8 to 256 characters (the value is not shown)',
    );
  }
  return { username, password };
}

/** The variables the simulator reads, with their defaults (which run locally). */
export const DEVICES_ENV = {
  FLATLINE_DEVICES_LISTEN: hostPort('127.0.0.1:8443'),
  FLATLINE_DEVICES_CONTROL_LISTEN: hostPort('127.0.0.1:8444'),
  FLATLINE_DEVICES_METRICS_LISTEN: hostPort('127.0.0.1:9104'),
  FLATLINE_DEVICES_STATE_DIR: text('.state/devices', 'folder of the CA, the server certificate and epoch.json (relative to the working directory)'),
  FLATLINE_DEVICES_CREDENTIALS: text(CREDENTIALS_DEFAULT, 'path of the device credentials file the stack writes (relative to the working directory)'),
  FLATLINE_DEVICES_PER_FLAT: int(3, 1, 16, 'devices per flat, cycling heat, power, water (1 to 16)'),
  FLATLINE_DEVICES_PERIOD_MS: int(1000, 100, 3_600_000, 'milliseconds between two readings of a device (100 to 3600000)'),
  FLATLINE_DEVICES_WINDOW_MS: int(60_000, 1000, 86_400_000, 'milliseconds of readings one answer holds (1000 to 86400000)'),
  FLATLINE_DEVICES_TLS_NAMES: nameList(),
  FLATLINE_DEVICES_SCRAPE_CREDENTIAL: {
    describe:
      'user:password also accepted on GET /flat/<ID>/metrics of every flat, besides the flat\'s own (a Prometheus scrape job carries one credential); unset: only the flat\'s own. Never logged',
    fallback: '',
    // Any text passes here: readEnv would quote a rejected value in its error, so loadConfig checks it without showing it.
    schema: z.string(),
  } satisfies Variable<string>,
  FLATLINE_SHUTDOWN_GRACE_MS: int(5000, 0, 60000, 'milliseconds answers in flight may take at shutdown (0 to 60000)'),
  ...LOG_LEVEL_ENV,
};

/** Typed simulator configuration. */
export type DevicesConfig = ReturnType<typeof loadConfig>;

/** Reads the configuration; throws a ConfigError naming a bad variable. */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env) {
  const e = readEnv(DEVICES_ENV, env);
  const controlHost = e.FLATLINE_DEVICES_CONTROL_LISTEN.slice(0, e.FLATLINE_DEVICES_CONTROL_LISTEN.lastIndexOf(':'));
  if (!isLoopbackAddress(controlHost)) {
    throw new ConfigError(
      'FLATLINE_DEVICES_CONTROL_LISTEN',
      `the control port makes devices misbehave and has no authentication: it binds only a loopback host (127.0.0.1, [::1], localhost), got ${JSON.stringify(e.FLATLINE_DEVICES_CONTROL_LISTEN)}`,
    );
  }
  const readingsPerDevice = Math.ceil(e.FLATLINE_DEVICES_WINDOW_MS / e.FLATLINE_DEVICES_PERIOD_MS);
  if (readingsPerDevice > MAX_READINGS_PER_DEVICE) {
    throw new ConfigError(
      'FLATLINE_DEVICES_WINDOW_MS',
      `a window of ${e.FLATLINE_DEVICES_WINDOW_MS} ms at a period of ${e.FLATLINE_DEVICES_PERIOD_MS} ms means ${readingsPerDevice} readings per device in each answer; at most ${MAX_READINGS_PER_DEVICE} are allowed`,
    );
  }
  const stateDir = resolve(e.FLATLINE_DEVICES_STATE_DIR);
  const scrapeCredential = parseScrapeCredential(e.FLATLINE_DEVICES_SCRAPE_CREDENTIAL);
  return {
    listen: e.FLATLINE_DEVICES_LISTEN,
    controlListen: e.FLATLINE_DEVICES_CONTROL_LISTEN,
    metricsListen: e.FLATLINE_DEVICES_METRICS_LISTEN,
    stateDir,
    credentialsPath: e.FLATLINE_DEVICES_CREDENTIALS === CREDENTIALS_DEFAULT ? join(stateDir, 'credentials.json') : resolve(e.FLATLINE_DEVICES_CREDENTIALS),
    devicesPerFlat: e.FLATLINE_DEVICES_PER_FLAT,
    periodMs: e.FLATLINE_DEVICES_PERIOD_MS,
    windowMs: e.FLATLINE_DEVICES_WINDOW_MS,
    tlsNames: e.FLATLINE_DEVICES_TLS_NAMES,
    scrapeCredential,
    shutdownGraceMs: e.FLATLINE_SHUTDOWN_GRACE_MS,
    logLevel: e.FLATLINE_LOG_LEVEL,
  };
}
