/**
 * A service's gRPC health follows its database: SERVING while the database
 * answers its pings (and, once, after what the service must prepare there,
 * such as its indexes, succeeded), NOT_SERVING while it does not. The one
 * wiring storage and query share.
 */
import type { Db } from 'mongodb';
import type { GrpcHost } from './grpc-host.ts';
import { watchDatabase, type WatchOptions } from './mongo.ts';

/** What the service must do in the database before it serves, retried at every ping until it succeeds. */
export interface Preparation {
  /** What it is, for the health reason and the log: "indexes". */
  readonly what: string;
  readonly run: () => Promise<void>;
}

/** The database's state as the service sees it. */
export interface DatabaseHealth {
  /** Whether the last ping reached the database and the preparation is done. */
  isUp(): boolean;
  /** A call found the database unreachable: NOT_SERVING until the next ping says otherwise. */
  markDown(): void;
  /** Stops watching. */
  stop(): void;
}

/** Watches db and sets host's health from it. */
export function followDatabase(host: GrpcHost, db: Db, options: WatchOptions, preparation?: Preparation): DatabaseHealth {
  let prepared = preparation === undefined;
  let up = false;
  const subscription = watchDatabase(db, options, async (reachable) => {
    up = reachable;
    if (reachable && !prepared && preparation !== undefined) {
      try {
        await preparation.run();
        prepared = true;
      } catch (err) {
        options.logger.error({ err }, `cannot prepare the database (${preparation.what}) yet; retrying at the next ping`);
      }
    }
    host.setServing(reachable && prepared, reachable ? (prepared ? 'database reachable' : `${preparation?.what ?? 'preparation'} not ready`) : 'database unreachable');
  });
  return {
    isUp: () => up && prepared,
    markDown: () => {
      up = false;
      host.setServing(false, 'database unreachable');
    },
    stop: () => subscription.unsubscribe(),
  };
}
