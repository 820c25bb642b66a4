/**
 * Runs the state pruner on a timer and says what it found: the size of the
 * largest bucket as a gauge, a warning from half of MongoDB's document limit
 * and an error from three quarters (long before a state write could fail),
 * and the device entries removed as a counter.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { exhaustMap, from, catchError, of, timer, type Subscription } from 'rxjs';
import type { Logger } from '@flatline/platform';
import { MAX_DOCUMENT_BYTES, type PruneOutcome, type StatePruner } from './state-pruner.ts';

/** Options of startStatePruning. */
export interface PruneScheduleOptions {
  readonly everyMs: number;
  readonly logger: Logger;
  readonly registry: Registry;
}

/** Prunes every everyMs (the first pass a tenth of that after start); returns the subscription to stop. */
export function startStatePruning(pruner: StatePruner, options: PruneScheduleOptions): Subscription {
  const { logger, registry } = options;
  const largest = new Gauge({
    name: 'flatline_storage_state_largest_bucket_bytes',
    help: `Size of the largest flat-state document at the last prune (MongoDB refuses documents over ${MAX_DOCUMENT_BYTES} bytes)`,
    registers: [registry],
  });
  const pruned = new Counter({
    name: 'flatline_storage_state_pruned_devices_total',
    help: 'Device entries removed from the flat state because the device was not seen for FLATLINE_STATE_DEVICE_TTL_MS',
    registers: [registry],
  });
  const report = (o: PruneOutcome): void => {
    largest.set(o.largestBytes);
    pruned.inc(o.removed);
    const share = o.largestBytes / MAX_DOCUMENT_BYTES;
    const fields = { largestBytes: o.largestBytes, limitBytes: MAX_DOCUMENT_BYTES, removed: o.removed };
    if (share >= 0.75) logger.error(fields, 'a flat-state bucket is past 3/4 of the document limit: lower FLATLINE_STATE_DEVICE_TTL_MS or split the flats over more deployments');
    else if (share >= 0.5) logger.warn(fields, 'a flat-state bucket is past half of the document limit');
    else if (o.removed > 0) logger.info(fields, 'pruned devices not seen for the TTL from the flat state');
  };
  return timer(Math.ceil(options.everyMs / 10), options.everyMs)
    .pipe(
      exhaustMap(() =>
        from(pruner.prune(Date.now())).pipe(
          catchError((err: unknown) => {
            logger.warn({ err }, 'state prune failed; trying again at the next pass');
            return of(undefined);
          }),
        ),
      ),
    )
    .subscribe((o) => {
      if (o !== undefined) report(o);
    });
}
