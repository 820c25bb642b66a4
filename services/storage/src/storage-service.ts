/** The gRPC adapter of StorageService. */
import { Counter, type Registry } from 'prom-client';
import type { AppendRequest, AppendResponse, StorageServiceServer } from '@flatline/proto';
import { type GrpcHost, type Logger, budgetMs, UnavailableError } from '@flatline/platform';
import { toAppendBatch, type FutureFetch } from './domain/append-batch.ts';
import type { ReadingStore } from './mongo/reading-store.ts';

/** At most one log line per this many milliseconds about refused fetch times; the counter has every one. */
const FUTURE_FETCH_LOG_EVERY_MS = 60000;

/** Dependencies of the storage service. */
export interface StorageServiceDeps {
  readonly host: GrpcHost;
  readonly store: ReadingStore;
  /** Bound on every database call, shortened to the caller's deadline. */
  readonly dbTimeoutMs: number;
  /** Whether the last health ping reached the database (with indexes in place). */
  readonly isDatabaseUp: () => boolean;
  /** Called when a write found the database unreachable. */
  readonly onUnavailable: () => void;
  /** How far ahead of storage's clock a fetch time may be and still count as a flat's last fetch. */
  readonly maxClockSkewMs: number;
  /** The process registry, where storage's own counters are registered. */
  readonly registry: Registry;
  /** Where refused fetch times are reported. */
  readonly logger: Logger;
  /** Storage's clock (tests replace it). */
  readonly now?: () => Date;
}

/** Builds the StorageService implementation. */
export function storageService(deps: StorageServiceDeps): StorageServiceServer {
  const maxSkewMs = deps.maxClockSkewMs;
  const now = deps.now ?? (() => new Date());
  const futureFetches = new Counter({
    name: 'flatline_storage_future_fetches_total',
    help: "Fetch times more than FLATLINE_MAX_CLOCK_SKEW_MS ahead of storage's clock, not taken as a flat's last fetch (their readings are stored)",
    registers: [deps.registry],
  });
  let lastLogMs = -Infinity;
  let unlogged = 0;

  /** Counts refused fetch times once their Append is stored, and says so now and then. */
  const report = (refused: readonly FutureFetch[]): void => {
    if (refused.length === 0) return;
    futureFetches.inc(refused.length);
    const t = now().getTime();
    if (t - lastLogMs < FUTURE_FETCH_LOG_EVERY_MS) {
      unlogged += refused.length;
      return;
    }
    const worst = refused.reduce((a, b) => (b.aheadMs > a.aheadMs ? b : a));
    deps.logger.warn(
      { flatId: worst.flatId, fetchedAt: worst.fetchedAt.toISOString(), aheadMs: worst.aheadMs, maxClockSkewMs: maxSkewMs, refused: refused.length, refusedSinceLastLog: unlogged },
      "fetch time ahead of storage's clock by more than the allowed skew (a fast clock on an ingestion replica?): readings stored, fetch time not taken as the flat's last fetch",
    );
    lastLogMs = t;
    unlogged = 0;
  };

  return {
    append: deps.host.unary<AppendRequest, AppendResponse>('Append', async (request, ctx) => {
      const batch = toAppendBatch(request, { now: now(), maxSkewMs });
      // Answer at once rather than wait out the driver's timeout while the
      // health watch already knows the database is away.
      if (!deps.isDatabaseUp()) throw new UnavailableError('database unavailable: storage is waiting for it to come back; retry later');
      const timeout = budgetMs(ctx.deadline, deps.dbTimeoutMs);
      try {
        const outcome = await deps.store.append(batch, timeout);
        // Counted once stored: a failed Append is retried and would count twice.
        report(batch.futureFetches);
        return { inserted: outcome.inserted, duplicates: outcome.duplicates, fetches: batch.fetchCount };
      } catch (err) {
        if (err instanceof UnavailableError) deps.onUnavailable();
        throw err;
      }
    }),
  };
}
