/** HTTP Basic authentication of a flat's devices against the credentials file. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { CredentialsMap } from '@flatline/platform';

/** The challenge sent with every 401. */
export const CHALLENGE = 'Basic realm="flatline devices", charset="UTF-8"';

const BASIC = /^Basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i;

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/**
 * Checks Authorization headers. Only SHA-256 digests of each flat's user
 * name and password are kept, and they are compared at a fixed length with
 * timingSafeEqual, user name and password both, whatever the first result:
 * the time taken tells nothing about how much of either was right.
 */
export class BasicAuth {
  private readonly digests = new Map<string, { user: Buffer; password: Buffer }>();
  private readonly shared: { user: Buffer; password: Buffer } | undefined;

  /** shared: one more user name and password accepted by verifyScrape for every flat (a Prometheus job's). */
  constructor(credentials: CredentialsMap, shared?: { readonly username: string; readonly password: string }) {
    for (const [flatId, c] of credentials) this.digests.set(flatId, { user: digest(c.username), password: digest(c.password) });
    this.shared = shared === undefined ? undefined : { user: digest(shared.username), password: digest(shared.password) };
  }

  /** Whether flatId is in the credentials file. */
  has(flatId: string): boolean {
    return this.digests.has(flatId);
  }

  /** Number of flats. */
  get size(): number {
    return this.digests.size;
  }

  /** Whether header carries flatId's own user name and password (another flat's are refused). */
  verify(flatId: string, header: string | undefined): boolean {
    const expected = this.digests.get(flatId);
    const given = decode(header);
    return expected !== undefined && given !== undefined && matches(given, expected);
  }

  /**
   * Whether header carries flatId's own credential or, when one is
   * configured, the shared scrape credential (for /metrics only). Both are
   * compared every time, so the time taken does not tell which one matched.
   */
  verifyScrape(flatId: string, header: string | undefined): boolean {
    const expected = this.digests.get(flatId);
    const given = decode(header);
    if (expected === undefined || given === undefined) return false;
    const own = matches(given, expected);
    const shared = this.shared !== undefined && matches(given, this.shared);
    return own || shared;
  }
}

/** The digests of the user name and password of a Basic header; undefined when it is not one. */
function decode(header: string | undefined): { user: Buffer; password: Buffer } | undefined {
  const match = header === undefined ? null : BASIC.exec(header);
  if (match === null) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: digest(decoded.slice(0, colon)), password: digest(decoded.slice(colon + 1)) };
}

/** Compares user name and password both, whatever the first result. */
function matches(given: { user: Buffer; password: Buffer }, expected: { user: Buffer; password: Buffer }): boolean {
  const userOk = timingSafeEqual(given.user, expected.user);
  const passwordOk = timingSafeEqual(given.password, expected.password);
  return userOk && passwordOk;
}
