/**
 * The device API: GET /flat/<ID>/measurements/ with HTTP Basic auth,
 * answered from the clock (see domain/timeline.ts) or, for flats set to a
 * behaviour, like a broken third party would.
 *
 * GET /flat/<ID>/metrics serves the same readings in the Prometheus text
 * format (the benchmark's Prometheus scrapes it), with the flat's own
 * credential or the shared scrape credential when one is configured.
 * Behaviours apply to /measurements/ only: they are faults of the answer
 * flatline parses.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '@flatline/platform';
import { CHALLENGE, type BasicAuth } from '../basic-auth.ts';
import type { Behaviour, BehaviourTable } from '../domain/behaviours.ts';
import { EXPOSITION_CONTENT_TYPE, expositionOf, latestReadings } from '../domain/exposition.ts';
import { measurementsOf, withWrongTypes, type MeasurementsInput } from '../domain/measurements.ts';
import type { DevicesMetrics, Outcome } from '../devices-metrics.ts';
import { sendJson, sendJsonText, sendText } from './respond.ts';

const PATH = /^\/flat\/([^/?#]+)\/(measurements|metrics)\/?(?:\?.*)?$/;

/** What the device API answers from. */
export interface DeviceApiDeps {
  readonly auth: BasicAuth;
  readonly behaviours: BehaviourTable;
  readonly measurements: MeasurementsInput;
  readonly metrics: DevicesMetrics;
  readonly logger: Logger;
  readonly now?: () => number;
}

/** Bytes slow-body sends before it pauses. */
const SLOW_FIRST_BYTES = 16;

/** Answers with a configured fault; the body is the real answer (body) spoiled as the mode says. */
function sendFault(res: ServerResponse, behaviour: Behaviour, body: () => string, wrongTypes: () => string): void {
  switch (behaviour.mode) {
    case 'http-500':
      return sendJson(res, 500, { error: 'internal error (simulated device fault)' });
    case 'http-503':
      return sendJson(res, 503, { error: 'service unavailable (simulated device fault)' });
    case 'malformed-json': {
      // Cut in the middle: the framing is intact, the JSON is not.
      const text = body();
      return sendJsonText(res, 200, text.slice(0, Math.floor(text.length / 2)));
    }
    case 'wrong-types':
      return sendJsonText(res, 200, wrongTypes());
    case 'truncated-body': {
      const bytes = Buffer.from(body());
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length, 'cache-control': 'no-store' });
      // Half of what content-length promises, then the connection closes.
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => res.socket?.end());
      return;
    }
    case 'slow-body': {
      const bytes = Buffer.from(body());
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length, 'cache-control': 'no-store' });
      res.write(bytes.subarray(0, SLOW_FIRST_BYTES));
      // The only timer in the simulator, and only while such an answer is open.
      const timer = setTimeout(() => res.end(bytes.subarray(SLOW_FIRST_BYTES)), behaviour.delayMs ?? 0);
      res.once('close', () => clearTimeout(timer));
      return;
    }
    case 'ok':
      throw new Error('ok is not a fault');
  }
}

/** The request handler of the HTTPS server. */
export function deviceApi(deps: DeviceApiDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const log = deps.logger.child({ component: 'device-api' });
  const now = deps.now ?? Date.now;
  const done = (outcome: Outcome, flatId?: string): void => {
    deps.metrics.requests.inc({ outcome });
    log.debug({ flat: flatId, outcome }, 'request');
  };
  return (req, res) => {
    try {
      const path = PATH.exec(req.url ?? '');
      const flatId = path?.[1];
      const scrape = path?.[2] === 'metrics';
      // An unknown flat is a 404 before any credential check, with the same
      // body as an unknown path. Flat ids are building addresses that
      // ingestion and the query service show anyway, so the 404 gives away
      // nothing secret, and no credential is looked at for it. Answering 401
      // instead would only make a typo in a flat id look like a bad password.
      if (flatId === undefined || !deps.auth.has(flatId)) {
        sendJson(res, 404, { error: 'not found' });
        return done('not_found', flatId);
      }
      if (req.method !== 'GET') {
        sendJson(res, 405, { error: `method ${req.method ?? '?'} not allowed: use GET` }, { allow: 'GET' });
        return done('method_not_allowed', flatId);
      }
      const authorized = scrape ? deps.auth.verifyScrape(flatId, req.headers.authorization) : deps.auth.verify(flatId, req.headers.authorization);
      if (!authorized) {
        sendJson(res, 401, { error: 'unauthorized: this flat wants its own user name and password (HTTP Basic)' }, { 'www-authenticate': CHALLENGE });
        return done('unauthorized', flatId);
      }
      const nowMs = now();
      if (scrape) {
        sendText(res, 200, expositionOf(flatId, latestReadings(flatId, deps.measurements, nowMs)), EXPOSITION_CONTENT_TYPE);
        return done('ok', flatId);
      }
      const doc = () => measurementsOf(flatId, deps.measurements, nowMs);
      const behaviour = deps.behaviours.get(flatId);
      if (behaviour !== undefined && behaviour.mode !== 'ok') {
        sendFault(res, behaviour, () => `${JSON.stringify(doc())}\n`, () => `${JSON.stringify(withWrongTypes(doc()))}\n`);
        deps.metrics.faults.inc({ mode: behaviour.mode });
        return done('faulted', flatId);
      }
      sendJsonText(res, 200, `${JSON.stringify(doc())}\n`);
      done('ok', flatId);
    } catch (err) {
      log.error({ err, url: req.url }, 'cannot answer');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
      done('error');
    }
  };
}
