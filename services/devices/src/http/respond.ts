/** Small helpers for answering and reading HTTP messages. */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** Sends body (already JSON text) with the given status. */
export function sendJsonText(res: ServerResponse, status: number, body: string, headers: OutgoingHttpHeaders = {}): void {
  res
    .writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers })
    .end(body);
}

/** Sends body as text of contentType with the given status. */
export function sendText(res: ServerResponse, status: number, body: string, contentType: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' }).end(body);
}

/** Sends value as JSON with the given status. */
export function sendJson(res: ServerResponse, status: number, value: unknown, headers: OutgoingHttpHeaders = {}): void {
  sendJsonText(res, status, `${JSON.stringify(value)}\n`, headers);
}

/** A request body larger than the limit. */
export class BodyTooLargeError extends Error {
  override name = 'BodyTooLargeError';
}

/**
 * The request body as text; past limitBytes the rest is read and dropped,
 * so the caller can still answer 413, and the promise rejects with
 * BodyTooLargeError.
 */
export function readBody(req: IncomingMessage, limitBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limitBytes) chunks.push(chunk);
    });
    req.once('end', () => (size > limitBytes ? reject(new BodyTooLargeError(`body larger than ${limitBytes} bytes`)) : resolve(Buffer.concat(chunks).toString('utf8'))));
    req.once('error', reject);
  });
}
