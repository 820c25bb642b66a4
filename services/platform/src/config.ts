/**
 * Typed configuration from environment variables. Each service's own
 * `src/config.ts` is the only reader of `process.env`; it describes its
 * variables with these helpers and gets a typed object or a ConfigError that
 * names the variable.
 */
import { z } from 'zod';
import { redactUrl } from './logger.ts';

/** A bad configuration value: names the variable and says what is expected. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly reason: string,
  ) {
    super(`${variable}: ${reason}`);
    this.name = 'ConfigError';
  }
}

/** Exit code for bad configuration (sysexits EX_CONFIG). */
export const EXIT_CONFIG = 78;

type Env = Readonly<Record<string, string | undefined>>;

/** One variable: a default and a zod schema for its raw text. */
export interface Variable<T> {
  readonly describe: string;
  readonly fallback: string;
  readonly schema: z.ZodType<T, string>;
  /** How a refused value is shown in the error (a connection string without its password). */
  readonly shown?: (raw: string) => string;
}

/** An integer within [min, max]. */
export function int(fallback: number, min: number, max: number, describe = `an integer from ${min} to ${max}`): Variable<number> {
  return {
    describe,
    fallback: String(fallback),
    schema: z
      .string()
      .regex(/^-?\d+$/)
      .transform(Number)
      .pipe(z.number().int().min(min).max(max)),
  };
}

/** A host:port to listen on or dial; port 0 lets the system pick one. */
export function hostPort(fallback: string): Variable<string> {
  return {
    describe: 'host:port (such as 127.0.0.1:7101; port 0 picks a free port)',
    fallback,
    schema: z
      .string()
      .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/)
      .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535),
  };
}

/**
 * A gRPC target to dial: host:port, or xds:///host:port, a proxyless xDS
 * client of Istio's control plane (the bootstrap in GRPC_XDS_BOOTSTRAP or
 * GRPC_XDS_BOOTSTRAP_CONFIG).
 */
export function grpcTarget(fallback: string): Variable<string> {
  return {
    describe: 'host:port (such as 127.0.0.1:7101), or xds:///host:port to dial through Istio\'s control plane (bootstrap in GRPC_XDS_BOOTSTRAP)',
    fallback,
    schema: z
      .string()
      .regex(/^(xds:\/\/\/)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/)
      .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535),
  };
}

/** Whether a gRPC target dials through xDS (xds:///…). */
export function isXdsTarget(target: string): boolean {
  return target.startsWith('xds:///');
}

/** One of a fixed set of words. */
export function oneOf<const T extends readonly [string, ...string[]]>(fallback: T[number], values: T): Variable<T[number]> {
  return { describe: `one of ${values.join(', ')}`, fallback, schema: z.enum(values) };
}

/** A MongoDB connection string. */
export function mongoUri(fallback: string): Variable<string> {
  return {
    describe: 'a MongoDB connection string (mongodb://host:port/database)',
    fallback,
    schema: z.string().regex(/^mongodb(\+srv)?:\/\/[^/\s]+\/[A-Za-z0-9_-]+(\?\S*)?$/),
    // A refused URI may still carry a real password: never echo it.
    shown: redactUrl,
  };
}

/** Any non-empty text. */
export function text(fallback: string, describe = 'non-empty text'): Variable<string> {
  return { describe, fallback, schema: z.string().min(1) };
}

type Spec = Record<string, Variable<unknown>>;
type Parsed<S extends Spec> = { [K in keyof S]: S[K] extends Variable<infer T> ? T : never };

/** Edit distance (Levenshtein) of a and b. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next.push(Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    row = next;
  }
  return row[b.length]!;
}

/**
 * FLATLINE_* variables set in env that spec does not read but that are
 * within two edits of one it does: a misspelling, which would otherwise be
 * ignored without a word. (Variables of other services are far from these.)
 */
export function misspelledVariables(spec: Spec, env: Env): Array<{ name: string; meant: string }> {
  const known = Object.keys(spec);
  const out: Array<{ name: string; meant: string }> = [];
  for (const name of Object.keys(env)) {
    if (!name.startsWith('FLATLINE_') || name in spec) continue;
    const meant = known.find((k) => distance(name, k) <= 2);
    if (meant !== undefined) out.push({ name, meant });
  }
  return out;
}

/**
 * Reads every variable of spec from env (an unset or empty variable takes its
 * default) and throws a ConfigError naming the first bad one. A variable that
 * looks like a misspelling of one of spec's is named on stderr (warn).
 */
export function readEnv<S extends Spec>(spec: S, env: Env, warn: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): Parsed<S> {
  for (const { name, meant } of misspelledVariables(spec, env)) warn(`warning: ${name} is not a variable this program reads (ignored); did you mean ${meant}?`);
  const out: Record<string, unknown> = {};
  for (const [name, variable] of Object.entries(spec)) {
    const raw = env[name];
    const value = raw === undefined || raw === '' ? variable.fallback : raw;
    const result = variable.schema.safeParse(value);
    if (!result.success) {
      throw new ConfigError(name, `expected ${variable.describe}, got ${JSON.stringify(variable.shown ? variable.shown(value) : value)}`);
    }
    out[name] = result.data;
  }
  return out as Parsed<S>;
}

/** Lines for `--help`: each variable with its meaning and default. */
export function describeEnv(spec: Spec): string {
  return Object.entries(spec)
    .map(([name, v]) => `  ${name.padEnd(34)} ${v.describe} (default ${v.fallback})`)
    .join('\n');
}

/** The log level variable every service reads. */
export const LOG_LEVEL_ENV = {
  FLATLINE_LOG_LEVEL: oneOf('info', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const),
};

/** The database variables of the services that talk to MongoDB. */
export const DATABASE_ENV = {
  FLATLINE_MONGODB_URI: mongoUri('mongodb://127.0.0.1:27117/flatline'),
  FLATLINE_DB_TIMEOUT_MS: int(3000, 100, 60000, 'milliseconds a database call may take before UNAVAILABLE (100 to 60000)'),
};

/** The health ping of the services whose health follows the database (storage, query). */
export const DATABASE_PING_ENV = {
  FLATLINE_DB_PING_MS: int(1000, 100, 60000, 'milliseconds between database health pings (100 to 60000)'),
};

/** Shutdown grace of every service. */
export const SHUTDOWN_ENV = {
  FLATLINE_SHUTDOWN_GRACE_MS: int(5000, 0, 60000, 'milliseconds calls in flight may take at shutdown (0 to 60000)'),
};
