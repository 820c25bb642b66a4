/**
 * Page tokens of ListMeasurements: the position after the last reading of a
 * page, bound to the query it came from. A token that was not made by this
 * code for the same query is refused, so a forged or altered one is an
 * INVALID_ARGUMENT rather than a silently wrong page.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '@flatline/platform/status.js';

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

function digest(text: string): string {
  return createHash('sha256').update(`flatline.page.v1\n${text}`).digest('base64url').slice(0, 22);
}

function queryDigest(q: QueryKey): string {
  return digest(JSON.stringify([q.flatId, q.deviceId, q.fromMs ?? null, q.toMs ?? null]));
}

/** Encodes the cursor for query as an opaque token. */
export function encodePageToken(cursor: Cursor, query: QueryKey): string {
  const body = Buffer.from(JSON.stringify([cursor.takenAtMs, cursor.deviceId, cursor.seq, queryDigest(query)])).toString('base64url');
  return `${body}.${digest(body)}`;
}

const refused = (why: string): InvalidArgumentError =>
  new InvalidArgumentError(`page_token is not a next_page_token of this query (${why}); start again with an empty page_token`);

/** Decodes a token made by encodePageToken for the same query; throws INVALID_ARGUMENT otherwise. */
export function decodePageToken(token: string, query: QueryKey): Cursor {
  const [body, mac, extra] = token.split('.');
  if (body === undefined || mac === undefined || extra !== undefined || token.length > 512) throw refused('malformed');
  if (digest(body) !== mac) throw refused('checksum mismatch');
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
}
