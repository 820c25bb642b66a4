/** HTTP Basic authentication of a flat's devices against the credentials file. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { CredentialsMap } from '@flatline/platform/credentials.js';

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

  constructor(credentials: CredentialsMap) {
    for (const [flatId, c] of credentials) this.digests.set(flatId, { user: digest(c.username), password: digest(c.password) });
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
    const match = header === undefined ? null : BASIC.exec(header);
    if (expected === undefined || match === null) return false;
    const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    const userOk = timingSafeEqual(digest(decoded.slice(0, colon)), expected.user);
    const passwordOk = timingSafeEqual(digest(decoded.slice(colon + 1)), expected.password);
    return userOk && passwordOk;
  }
}
