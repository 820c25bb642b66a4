/**
 * Page tokens of ListMeasurements: the position after the last reading of a
 * page, bound to the query it came from and signed with HMAC-SHA256 under a
 * key of the deployment (FLATLINE_QUERY_PAGE_TOKEN_KEY). Without the key a
 * caller cannot make a token that is accepted, so a forged or altered one is
 * an INVALID_ARGUMENT rather than a silently wrong page. The token is signed,
 * not encrypted: its cursor is readable (base64url JSON). Every replica of a
 * deployment must share the key, or a token from one is refused by another.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { InvalidArgumentError } from '@flatline/platform';

/** Where the next page starts: strictly after this (taken_at, device_id, seq). */
export interface Cursor {
  readonly takenAtMs: number;
  readonly deviceId: string;
  readonly seq: number;
}

/** The parts of a query a token is bound to. */
export interface QueryKey {
  readonly flatId: string;
  readonly deviceId: string;
  readonly fromMs: number | undefined;
  readonly toMs: number | undefined;
}

/** Makes and checks the page tokens of one deployment. */
export interface PageTokens {
  /** Encodes the cursor for query as an opaque, signed token. */
  encode(cursor: Cursor, query: QueryKey): string;
  /** Decodes a token made with the same key for the same query; throws INVALID_ARGUMENT otherwise. */
  decode(token: string, query: QueryKey): Cursor;
}

/** Shortest key accepted: 16 bytes of text. */
export const MIN_PAGE_TOKEN_KEY_LENGTH = 16;

const MAX_TOKEN_LENGTH = 512;

// Binds the token to its query; the HMAC over the body is what makes it unforgeable.
function queryDigest(q: QueryKey): string {
  return createHash('sha256')
    .update(JSON.stringify([q.flatId, q.deviceId, q.fromMs ?? null, q.toMs ?? null]))
    .digest('base64url')
    .slice(0, 22);
}

const refused = (why: string): InvalidArgumentError =>
  new InvalidArgumentError(`page_token is not a next_page_token of this query (${why}); start again with an empty page_token`);

/** Page tokens signed with key (at least MIN_PAGE_TOKEN_KEY_LENGTH characters). */
export function pageTokens(key: string): PageTokens {
  if (key.length < MIN_PAGE_TOKEN_KEY_LENGTH) throw new Error(`a page-token key needs at least ${MIN_PAGE_TOKEN_KEY_LENGTH} characters, got ${key.length}`);
  const mac = (body: string): Buffer => createHmac('sha256', key).update(`flatline.page.v2\n${body}`).digest();
  return {
    encode(cursor, query) {
      const body = Buffer.from(JSON.stringify([cursor.takenAtMs, cursor.deviceId, cursor.seq, queryDigest(query)])).toString('base64url');
      return `${body}.${mac(body).toString('base64url')}`;
    },
    decode(token, query) {
      const [body, signature, extra] = token.split('.');
      if (body === undefined || signature === undefined || extra !== undefined || token.length > MAX_TOKEN_LENGTH) throw refused('malformed');
      const given = Buffer.from(signature, 'base64url');
      const expected = mac(body);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw refused('signature mismatch');
      let parts: unknown;
      try {
        parts = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
      } catch {
        throw refused('malformed');
      }
      if (!Array.isArray(parts) || parts.length !== 4) throw refused('malformed');
      const [takenAtMs, deviceId, seq, q] = parts as unknown[];
      if (typeof takenAtMs !== 'number' || typeof deviceId !== 'string' || typeof seq !== 'number') throw refused('malformed');
      if (q !== queryDigest(query)) throw refused('made for another query');
      return { takenAtMs, deviceId, seq };
    },
  };
}
