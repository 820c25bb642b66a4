/**
 * `npm run synth`'s options, from its arguments and the environment: the
 * only reader of the environment in the cdk8s app. A production synth (the
 * default profile) refuses to run without the operator's own seed and the
 * JWT issuer of the callers through the gateway; nothing is written then.
 * The dev profile falls back to the public seed, and says so.
 */
import { parseArgs } from 'node:util';
import { DEV_SEED, DEV_SETTINGS, MIN_PRODUCTION_SEED_LENGTH, PROFILES, withSettings, type JwtIssuer, type Profile, type Settings } from './settings.ts';

/** The environment variables synth reads, each the fallback of a flag. */
export const SYNTH_ENV = {
  FLATLINE_SECRET_SEED: '--seed',
  FLATLINE_JWT_ISSUER: '--jwt-issuer',
  FLATLINE_JWKS_URI: '--jwks-uri',
  FLATLINE_JWT_AUDIENCES: '--jwt-audience (comma-separated)',
} as const;

/** What one synth run was asked for. */
export interface SynthOptions {
  readonly help: boolean;
  /** Where to write (undefined: the app's own dist/). */
  readonly outdir: string | undefined;
  /** Print a token of the dev profile's issuer instead of writing manifests. */
  readonly printDevToken: boolean;
  /** Undefined only with help. */
  readonly settings: Settings | undefined;
  /** What the operator must know before applying the output (stderr). */
  readonly warnings: readonly string[];
}

type Env = Readonly<Record<string, string | undefined>>;

function integer(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new Error(`--${name} must be a whole number, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

/** A flag, else its variable; an empty value counts as unset. */
function flagOrEnv(flag: string | undefined, env: Env, name: keyof typeof SYNTH_ENV): string | undefined {
  const value = flag ?? env[name];
  return value === undefined || value === '' ? undefined : value;
}

const SEED_MISSING =
  `a production synth needs a secret seed of your own: pass --seed <text> or set FLATLINE_SECRET_SEED ` +
  `(at least ${MIN_PRODUCTION_SEED_LENGTH} characters, e.g. from openssl rand -base64 32; the variable keeps it out of the process list and the shell history). ` +
  'Keep it outside the repository and reuse it for the same cluster: another seed means other MongoDB passwords, replica-set key and device CA. ' +
  `For a throwaway local cluster use --profile dev (a fixed, public seed, ${JSON.stringify(DEV_SEED)}).`;

const JWT_MISSING =
  'a production synth needs the JWT issuer whose tokens callers through the ingress gateway present: ' +
  'pass --jwt-issuer <iss> and --jwks-uri <https://…>, or set FLATLINE_JWT_ISSUER and FLATLINE_JWKS_URI.';

function devWarning(seed: string, devIssuer: boolean): string {
  const secrets =
    seed === DEV_SEED
      ? `every Secret (MongoDB passwords, the replica-set key, the device CA key and credentials) is derived from the public seed ${JSON.stringify(DEV_SEED)}: anyone can recompute them`
      : 'the Secrets are labelled flatline.dev/profile: dev';
  const tokens = devIssuer ? '; query admits through the gateway any token of the dev issuer, whose key is derived from the same seed' : '';
  return `dev profile: ${secrets}${tokens}. Never apply these manifests to a cluster others can reach; for a real cluster drop --profile dev and give FLATLINE_SECRET_SEED (see --help).`;
}

/** Parses synth's arguments and environment; throws with every problem found (nothing has been written then). */
export function loadSynthOptions(argv: readonly string[], env: Env = process.env): SynthOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      outdir: { type: 'string' },
      profile: { type: 'string' },
      namespace: { type: 'string' },
      registry: { type: 'string' },
      tag: { type: 'string' },
      replicas: { type: 'string' },
      flats: { type: 'string' },
      'poll-interval': { type: 'string' },
      seed: { type: 'string' },
      'jwt-issuer': { type: 'string' },
      'jwks-uri': { type: 'string' },
      'jwt-audience': { type: 'string', multiple: true },
      'print-dev-token': { type: 'boolean' },
      toxiproxy: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return { help: true, outdir: undefined, printDevToken: false, settings: undefined, warnings: [] };

  const profile = (values.profile ?? 'production') as Profile;
  if (!PROFILES.includes(profile)) throw new Error(`--profile must be ${PROFILES.join(' or ')}, got ${JSON.stringify(values.profile)}`);

  const problems: string[] = [];
  const givenSeed = flagOrEnv(values.seed, env, 'FLATLINE_SECRET_SEED');
  if (profile === 'production' && givenSeed === undefined) problems.push(SEED_MISSING);

  const issuer = flagOrEnv(values['jwt-issuer'], env, 'FLATLINE_JWT_ISSUER');
  const jwksUri = flagOrEnv(values['jwks-uri'], env, 'FLATLINE_JWKS_URI');
  const audiences = values['jwt-audience'] ?? (flagOrEnv(undefined, env, 'FLATLINE_JWT_AUDIENCES') ?? '').split(',').map((a) => a.trim()).filter((a) => a !== '');
  let jwt: JwtIssuer | undefined;
  if (issuer !== undefined && jwksUri !== undefined) jwt = { issuer, jwksUri, audiences };
  else if (issuer !== undefined || jwksUri !== undefined) problems.push('give both --jwt-issuer and --jwks-uri (or FLATLINE_JWT_ISSUER and FLATLINE_JWKS_URI), not one of them.');
  else if (profile === 'production') problems.push(JWT_MISSING);
  if (jwt === undefined && audiences.length > 0) problems.push('--jwt-audience (FLATLINE_JWT_AUDIENCES) needs --jwt-issuer and --jwks-uri.');

  const printDevToken = values['print-dev-token'] === true;
  if (printDevToken && (profile !== 'dev' || jwt !== undefined)) problems.push('--print-dev-token needs --profile dev and no --jwt-issuer: only the dev issuer\'s key is known to synth.');
  if (problems.length > 0) throw new Error(problems.join('\n'));

  const d = DEV_SETTINGS;
  const replicas = integer('replicas', values.replicas);
  const flats = integer('flats', values.flats);
  const pollIntervalMs = integer('poll-interval', values['poll-interval']);
  const seed = givenSeed ?? DEV_SEED;
  const settings = withSettings({
    profile,
    seed,
    gateway: { ...d.gateway, jwt },
    ...(values.namespace !== undefined ? { namespace: values.namespace } : {}),
    ...(values.registry !== undefined || values.tag !== undefined ? { image: { ...d.image, registry: values.registry ?? d.image.registry, tag: values.tag ?? d.image.tag } } : {}),
    ...(replicas !== undefined ? { replicas } : {}),
    ...(values.toxiproxy === true ? { toxiproxy: true } : {}),
    ...(flats !== undefined ? { flats } : {}),
    // The poll timeout stays at most 60 % of a short interval, as the local stack does.
    ...(pollIntervalMs !== undefined ? { pollIntervalMs, pollTimeoutMs: Math.min(d.pollTimeoutMs, Math.floor(pollIntervalMs * 0.6)) } : {}),
  });
  const warnings = profile === 'dev' ? [devWarning(seed, jwt === undefined)] : [];
  return { help: false, outdir: values.outdir, printDevToken, settings, warnings };
}
