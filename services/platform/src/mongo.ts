/**
 * The MongoDB client as flatline's services use it: bounded waits everywhere,
 * so a missing database turns into UNAVAILABLE within a known time, and a
 * health watch that follows the database going away and coming back.
 */
import {
  MongoClient,
  MongoNetworkError,
  MongoOperationTimeoutError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  MongoNotConnectedError,
  type Db,
} from 'mongodb';
import { concatMap, exhaustMap, from, map, catchError, of, timer, type Subscription } from 'rxjs';
import type { Logger } from './logger.ts';
import { redactUrl } from './logger.ts';
import { UnavailableError } from './status.ts';

/**
 * A MongoClient that can start while the database is away. mongodb 7.9 keeps
 * the topology of a failed first connect after closing it, so every later
 * operation of that client fails with "Topology is closed", for ever, even
 * once the database is back: a service started during an outage never
 * recovered. A failed connect here forgets that topology, so the next
 * operation connects afresh.
 */
class RestartableMongoClient extends MongoClient {
  override async connect(): Promise<this> {
    try {
      return await super.connect();
    } catch (err) {
      (this as unknown as { topology: unknown }).topology = undefined;
      throw err;
    }
  }
}

/**
 * Closes client's topology (its monitors, pools and connections) and forgets
 * it, so that its next operation connects afresh. Not client.close(): a
 * closed MongoClient refuses every later operation ("Client must be connected
 * before running operations") until connect() succeeds, which a database
 * that is away again would not let it do.
 */
export function reconnectOnNextOperation(client: MongoClient): void {
  const held = client as unknown as { topology?: { close: () => unknown } };
  const topology = held.topology;
  held.topology = undefined;
  topology?.close();
}

/** Whether db's server is FerretDB: its buildInfo names FerretDB's version (`ferretdbVersion`), MongoDB's has no such field. */
export async function isFerretDb(db: Db, timeoutMs: number): Promise<boolean> {
  const info = await db.admin().command({ buildInfo: 1 }, deadline(timeoutMs));
  return Object.hasOwn(info, 'ferretdbVersion');
}

/** MongoDB's error code of a duplicate key (E11000). */
export const DUPLICATE_KEY = 11000;

/** A client whose every wait is bounded by timeoutMs, and that connects whenever the database can be reached. */
export function createMongoClient(uri: string, timeoutMs: number): MongoClient {
  return new RestartableMongoClient(uri, {
    serverSelectionTimeoutMS: timeoutMs,
    connectTimeoutMS: timeoutMs,
    socketTimeoutMS: 0,
    heartbeatFrequencyMS: 1000,
    // FerretDB v1 has no sessions for retryable writes; Append is idempotent
    // and its caller retries instead.
    retryWrites: false,
    appName: 'flatline',
  });
}

/**
 * options with a deadline: the driver aborts the operation once timeoutMs
 * passes, wherever it waits (server selection, a pooled connection, the
 * server's answer), and closes the connection it used. The only per-operation
 * bound there is: mongodb 7.8+ ignores timeoutMS ("has no effect", NODE-7974),
 * so an operation given only timeoutMS waits for as long as the server takes
 * (stack/test/toxiproxy.test.ts pins that). Writes honour the signal too,
 * though their option types do not declare it.
 */
export function deadline<T extends object = object>(timeoutMs: number, options?: T): T {
  return { ...options, signal: AbortSignal.timeout(timeoutMs) } as T;
}

/**
 * Whether err means the database cannot be reached in time (as opposed to a
 * bad request): a network failure, or a deadline() that passed. Bulk writes
 * wrap the error they met, so causes are followed.
 */
export function isUnreachable(err: unknown, depth = 0): boolean {
  if (depth > 5 || !(err instanceof Error)) return false;
  const wrapped = [err.cause, (err as { errorResponse?: unknown }).errorResponse];
  if (wrapped.some((inner) => inner !== err && isUnreachable(inner, depth + 1))) return true;
  return (
    err instanceof MongoServerSelectionError ||
    err instanceof MongoNetworkError ||
    err instanceof MongoOperationTimeoutError ||
    err instanceof MongoTopologyClosedError ||
    err instanceof MongoNotConnectedError ||
    // no connection of the pool came free before the deadline (the driver does not export its class)
    err.name === 'MongoWaitQueueTimeoutError' ||
    err.name === 'MongoPoolClearedError' ||
    // deadline()'s signal, thrown as it is when it fires before the driver sends anything
    err.name === 'TimeoutError'
  );
}

/** Runs a database operation; an unreachable database becomes UnavailableError. */
export async function guard<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (isUnreachable(err)) {
      throw new UnavailableError(`database unavailable: ${what} failed: ${(err as Error).message}`);
    }
    throw err;
  }
}

/** The shortest bound of a health ping (ms), whatever FLATLINE_DB_TIMEOUT_MS says. */
export const PING_FLOOR_MS = 5000;

/** Every how many failed pings in a row the watch logs why again. */
const PING_FAILURE_LOG_EVERY = 10;

/** How long past its deadline a ping may take to settle before the watch counts it as failed. */
const PING_GRACE_MS = 1000;

/** promise, or a rejection once ms pass without it settling (logged: the driver ignored its deadline). */
function settleWithin<T>(promise: Promise<T>, ms: number, log: Logger, what = 'a database ping'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      log.warn({ afterMs: ms }, `${what} did not settle by its deadline: counted as failed (the driver did not honour it)`);
      reject(new Error(`${what} did not settle within ${ms} ms`));
    }, ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Options of watchDatabase. */
export interface WatchOptions {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly logger: Logger;
  readonly uri: string;
  /**
   * The client db belongs to. Given, a watch whose pings keep failing asks a
   * fresh client whether the database answers it, and if it does drops this
   * one's connections, so that its next operation connects afresh.
   */
  readonly client?: MongoClient;
}

/** After how many failed pings in a row the watch asks a fresh client (then at most once per PING_FLOOR_MS, one at a time). */
export const STUCK_AFTER_PINGS = 3;

/** Failed pings after a fresh client reached the database that make this client stuck. */
const STUCK_CONFIRM_PINGS = 2;

/** Whether the database at uri answers a ping from a client made for the question, within timeoutMs. */
export async function answersFreshClient(uri: string, timeoutMs: number, log: Logger): Promise<boolean> {
  const fresh = new MongoClient(uri, { serverSelectionTimeoutMS: timeoutMs, connectTimeoutMS: timeoutMs, maxPoolSize: 1, retryWrites: false, appName: 'flatline-probe' });
  try {
    await settleWithin(fresh.db().command({ ping: 1 }, deadline(timeoutMs)), timeoutMs + PING_GRACE_MS, log, 'a fresh client\'s ping');
    return true;
  } catch {
    return false;
  } finally {
    await settleWithin(fresh.close(true), timeoutMs, log, 'closing a fresh client').catch(() => undefined);
  }
}

/**
 * mongodb 7.9 can leave a client failing every server selection after the
 * database went away and came back: the server's description keeps the error
 * of a closed connection ("connection 3 … closed") while other clients of the
 * same database work again. Seen in CI (query answered UNAVAILABLE for
 * minutes after FerretDB restarted while storage recovered) and reproduced
 * by a kill -9 of FerretDB followed by freezes: one of four clients stayed
 * down until this reset. A database that answers a fresh client while this
 * one fails is this client's fault: its topology is dropped, and its next
 * operation connects afresh. still() says whether the watch still sees it
 * down once the fresh client answered (a ping may have come back meanwhile).
 */
async function resetIfStuck(client: MongoClient, options: WatchOptions, log: Logger, still: () => { down: boolean; failures: number; err: unknown }): Promise<void> {
  const timeoutMs = Math.max(options.timeoutMs, PING_FLOOR_MS);
  if (!(await answersFreshClient(options.uri, timeoutMs, log))) return;
  // A database that just came back (a freeze ends) answers a fresh client a heartbeat before this one sees it:
  // stuck is still failing STUCK_CONFIRM_PINGS more pings after the fresh client got its answer.
  const answered = still().failures;
  const until = Date.now() + STUCK_CONFIRM_PINGS * (timeoutMs + options.intervalMs + PING_GRACE_MS);
  let now = still();
  while (now.down && now.failures < answered + STUCK_CONFIRM_PINGS && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
    now = still();
  }
  if (!now.down || now.failures < answered + STUCK_CONFIRM_PINGS) return;
  log.error({ err: now.err, failedPings: now.failures }, 'the database answers a fresh client but not this one: dropping its connections, its next operation connects afresh');
  reconnectOnNextOperation(client);
}

/**
 * Pings the database every intervalMs and hands each result to onPing (the
 * next ping waits for it); logs when reachability changes. Returns the
 * subscription to stop watching.
 */
export function watchDatabase(db: Db, options: WatchOptions, onPing: (up: boolean) => Promise<void> | void): Subscription {
  const log = options.logger.child({ component: 'db-watch', uri: redactUrl(options.uri) });
  let last: boolean | undefined;
  let failures = 0;
  let probing = false;
  let lastProbe = 0;
  let lastErr: unknown;
  return timer(0, options.intervalMs)
    .pipe(
      exhaustMap(() =>
        // At least PING_FLOOR_MS: a slow ping is not a database that is away, and a cut one closes its
        // connection, so under load a short bound cut fresh connections for ever and the service stayed
        // NOT_SERVING long after the database was back (seen at load 15 after a FerretDB restart).
        // And settled by a timer too: a ping the driver never settles (seen once in a campaign: a query
        // replica NOT_SERVING for good after two FerretDB kills) must not stop the watch for ever.
        from(settleWithin(db.command({ ping: 1 }, deadline(Math.max(options.timeoutMs, PING_FLOOR_MS))), Math.max(options.timeoutMs, PING_FLOOR_MS) + PING_GRACE_MS, log)).pipe(
          map((): unknown => undefined),
          catchError((err: unknown) => of(err ?? new Error('ping failed'))),
          concatMap(async (err) => {
            const up = err === undefined;
            if (!up) lastErr = err;
            if (up !== last) {
              if (up) log.info({ failedPings: failures }, 'database reachable');
              else log.warn({ err }, 'database unreachable');
              last = up;
              failures = 0;
            }
            // While it stays away, why, now and then: a database back for the others but not for this
            // client (a driver's pool stuck) reads differently from a database still down.
            if (!up && ++failures % PING_FAILURE_LOG_EVERY === 0) log.warn({ err, failedPings: failures }, 'database still unreachable');
            // Beside the pings, not in their way: a frozen database holds a fresh client's ping for its whole deadline too.
            const client = options.client;
            if (!up && client !== undefined && failures >= STUCK_AFTER_PINGS && !probing && Date.now() - lastProbe >= PING_FLOOR_MS) {
              probing = true;
              lastProbe = Date.now();
              void resetIfStuck(client, options, log, () => ({ down: last === false, failures, err: lastErr }))
                .catch((probeErr: unknown) => log.warn({ err: probeErr }, 'asking a fresh client failed'))
                .finally(() => (probing = false));
            }
            await onPing(up);
          }),
        ),
      ),
    )
    .subscribe();
}
