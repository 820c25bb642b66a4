/**
 * Runs the flat-state compactor on a timer (the first pass at a random point
 * of the first interval, so that replicas started together take turns) and
 * says what it did: log documents compacted as a counter, failed passes as a
 * counter and a warning (an error from the third in a row: the log grows
 * until a pass succeeds).
 */
import { Counter, type Registry } from 'prom-client';
import { exhaustMap, from, catchError, of, timer, type Subscription } from 'rxjs';
import type { Logger } from '@flatline/platform';
import type { CompactOutcome, StateCompactor } from './state-compactor.ts';

/** Options of startStateCompaction. */
export interface CompactScheduleOptions {
  readonly everyMs: number;
  readonly logger: Logger;
  readonly registry: Registry;
}

/** Compacts every everyMs; returns the subscription to stop. */
export function startStateCompaction(compactor: StateCompactor, options: CompactScheduleOptions): Subscription {
  const { logger, registry } = options;
  const compacted = new Counter({
    name: 'flatline_storage_state_log_compacted_total',
    help: 'Flat-state log documents moved into the bucket documents by this replica',
    registers: [registry],
  });
  const failed = new Counter({
    name: 'flatline_storage_state_compactions_failed_total',
    help: 'Passes of the flat-state compactor that failed (the log stays for the next pass)',
    registers: [registry],
  });
  let failing = 0;
  return timer(Math.floor(Math.random() * options.everyMs), options.everyMs)
    .pipe(
      exhaustMap(() =>
        from(compactor.compact(Date.now())).pipe(
          catchError((err: unknown) => {
            failed.inc();
            failing += 1;
            const say = failing >= 3 ? logger.error.bind(logger) : logger.warn.bind(logger);
            say({ err, failedInARow: failing }, 'flat-state compaction failed; the log stays and the next pass tries again');
            return of(undefined);
          }),
        ),
      ),
    )
    .subscribe((o: CompactOutcome | undefined) => {
      if (o === undefined) return;
      if (failing > 0) logger.info({ applied: o.applied }, 'flat-state compaction works again');
      failing = 0;
      compacted.inc(o.applied);
      if (o.forgotten > 0) logger.info({ forgotten: o.forgotten }, 'forgot flat-state writers gone for an hour');
    });
}
