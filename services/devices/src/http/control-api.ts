/**
 * The control API (plain HTTP, loopback only): set how chosen flats' devices
 * answer, for tests and chaos experiments.
 *
 *   GET    /behaviours              {"behaviours": {"17": {"mode": "slow-body", "delay_ms": 30000}}}
 *   PUT    /behaviours              {"flats": ["1","2"], "mode": "http-503"}   → {"flats": 2, "mode": …}
 *   DELETE /behaviours              every flat back to ok                      → {"removed": n}
 *   GET    /behaviours/<flat>       {"flat_id": "17", "mode": …}
 *   PUT    /behaviours/<flat>       {"mode": "slow-body", "delay_ms": 300}     → {"flat_id": "17", "mode": …}
 *   DELETE /behaviours/<flat>       back to ok                                 → {"flat_id": "17", "mode": "ok", "removed": true}
 *
 * Bad input is a 400 whose "error" names the field; an unknown flat is a 404.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '@flatline/platform';
import { BadInputError, behaviourJson, parseBehaviour, parseBulkBehaviour, type BehaviourTable } from '../domain/behaviours.ts';
import { BodyTooLargeError, readBody, sendJson } from './respond.ts';

const BODY_LIMIT = 4 * 1024 * 1024;
const ONE = /^\/behaviours\/([^/?#]+)\/?(?:\?.*)?$/;
const ALL = /^\/behaviours\/?(?:\?.*)?$/;

/** What the control API acts on. */
export interface ControlApiDeps {
  readonly behaviours: BehaviourTable;
  readonly isKnownFlat: (flatId: string) => boolean;
  readonly logger: Logger;
}

async function jsonBody(req: IncomingMessage): Promise<unknown> {
  const text = await readBody(req, BODY_LIMIT);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BadInputError(`body: not valid JSON (${(err as Error).message})`);
  }
}

/** The request handler of the control server. */
export function controlApi(deps: ControlApiDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const log = deps.logger.child({ component: 'control-api' });
  const { behaviours } = deps;

  async function one(req: IncomingMessage, res: ServerResponse, flatId: string): Promise<void> {
    if (!['GET', 'PUT', 'DELETE'].includes(req.method ?? '')) {
      return sendJson(res, 405, { error: `method ${req.method ?? '?'} not allowed` }, { allow: 'GET, PUT, DELETE' });
    }
    if (!deps.isKnownFlat(flatId)) return sendJson(res, 404, { error: `unknown flat ${JSON.stringify(flatId.slice(0, 80))} (not in the credentials file)` });
    if (req.method === 'GET') return sendJson(res, 200, { flat_id: flatId, ...behaviourJson(behaviours.get(flatId) ?? { mode: 'ok' }) });
    if (req.method === 'DELETE') {
      const removed = behaviours.delete(flatId);
      log.info({ flat: flatId, mode: 'ok' }, 'behaviour removed');
      return sendJson(res, 200, { flat_id: flatId, mode: 'ok', removed });
    }
    const behaviour = parseBehaviour(await jsonBody(req));
    behaviours.set(flatId, behaviour);
    log.info({ flat: flatId, ...behaviourJson(behaviour) }, 'behaviour set');
    return sendJson(res, 200, { flat_id: flatId, ...behaviourJson(behaviour) });
  }

  async function all(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'GET') return sendJson(res, 200, { behaviours: behaviours.toJSON() });
    if (req.method === 'DELETE') {
      const removed = behaviours.clear();
      log.info({ removed }, 'every behaviour removed');
      return sendJson(res, 200, { removed });
    }
    if (req.method === 'PUT') {
      const { flats, behaviour } = parseBulkBehaviour(await jsonBody(req), deps.isKnownFlat);
      for (const id of flats) behaviours.set(id, behaviour);
      log.info({ flats: flats.length, ...behaviourJson(behaviour) }, 'behaviour set');
      return sendJson(res, 200, { flats: flats.length, ...behaviourJson(behaviour) });
    }
    return sendJson(res, 405, { error: `method ${req.method ?? '?'} not allowed` }, { allow: 'GET, PUT, DELETE' });
  }

  return (req, res) => {
    const url = req.url ?? '';
    const flatId = ONE.exec(url)?.[1];
    const handled = flatId !== undefined ? one(req, res, flatId) : ALL.test(url) ? all(req, res) : Promise.resolve(sendJson(res, 404, { error: 'not found: try /behaviours' }));
    handled.catch((err: unknown) => {
      if (res.headersSent) return;
      if (err instanceof BadInputError) return sendJson(res, 400, { error: err.message });
      if (err instanceof BodyTooLargeError) return sendJson(res, 413, { error: err.message }, { connection: 'close' });
      log.error({ err }, 'control request failed');
      sendJson(res, 500, { error: 'internal error' });
    });
  };
}
