/**
 * The device credentials file: one Basic-auth user and password per flat.
 * The stack generates it; the simulator checks against it and ingestion
 * polls with it. On Kubernetes it is a Secret mounted as a file.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { z } from 'zod';

const FLAT_ID = /^[A-Za-z0-9_-]{1,64}$/;

const fileSchema = z.object({
  version: z.literal(1),
  flats: z.record(
    z.string().regex(FLAT_ID),
    z.object({ username: z.string().min(1).max(128).regex(/^[^:]+$/), password: z.string().min(8).max(256) }),
  ),
});

/** Basic-auth credentials of one flat's device gateway. */
export interface FlatCredentials {
  readonly username: string;
  readonly password: string;
}

/** Flat id → credentials, in file order. */
export type CredentialsMap = ReadonlyMap<string, FlatCredentials>;

/** Reads and checks a credentials file; the error names the file and the problem, never a password. */
export function loadCredentials(path: string): CredentialsMap {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read credentials file ${path}: ${(err as Error).message}`, { cause: err });
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`credentials file ${path} is malformed at ${issue?.path.join('.') ?? '?'}: ${issue?.message ?? 'invalid'}`);
  }
  return new Map(Object.entries(parsed.data.flats));
}

/** The ids "1" … "count". */
export function flatIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => String(i + 1));
}

/** Writes a new credentials file (mode 0600, atomically) with a random password per flat. */
export function writeCredentials(path: string, ids: readonly string[]): CredentialsMap {
  const flats: Record<string, FlatCredentials> = {};
  for (const id of ids) flats[id] = { username: `flat-${id}`, password: randomBytes(18).toString('base64url') };
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ version: 1, flats }, null, 1)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
  return new Map(Object.entries(flats));
}
