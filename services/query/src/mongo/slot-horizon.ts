/**
 * The slot horizon: the time from which every stored reading has a slot
 * (ReadingDoc.slot), as the first storage replica that wrote slots recorded
 * it (READING_SLOTS in the migrations collection): -Infinity when the
 * database held no reading then, its start time otherwise. Query reads the
 * part of a range before it the old way and the rest slot by slot.
 *
 * The record is written once and never changes, so it is read at start and
 * again every retryMs only until it is found (storage may start after query).
 * Until then ListMeasurements reads the old way.
 *
 * Turn slot reads on once every storage replica writes slots: a replica of an
 * older release that still writes readings without one after the record was
 * made hides them from slot reads.
 */
import type { Db } from 'mongodb';
import { COLLECTIONS, deadline, READING_SLOTS, type Logger, type SlotsRecord } from '@flatline/platform';

/** Where slot reads may start; see the module comment. */
export class SlotHorizon {
  private horizonMs: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failing = false;

  constructor(
    private readonly db: Db,
    private readonly settings: { readonly retryMs: number; readonly timeoutMs: number },
    private readonly logger: Logger,
  ) {}

  /** Every reading taken at or after this time (ms) has a slot; -Infinity when every reading has one; undefined until the record is found. */
  get(): number | undefined {
    return this.horizonMs;
  }

  /** Reads the record now and every retryMs until it is found. */
  start(): void {
    const tick = (): void => {
      void this.refresh().then(
        (found) => {
          if (!found && this.timer !== undefined) this.timer = setTimeout(tick, this.settings.retryMs);
        },
        () => {
          if (this.timer !== undefined) this.timer = setTimeout(tick, this.settings.retryMs);
        },
      );
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Stops reading. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Reads the record; resolves whether it was found (a failed read logs once and rejects). */
  async refresh(): Promise<boolean> {
    try {
      const record = await this.db.collection<SlotsRecord>(COLLECTIONS.migrations).findOne({ _id: READING_SLOTS }, deadline(this.settings.timeoutMs));
      this.failing = false;
      if (record === null) return false;
      this.horizonMs = record.since === undefined ? -Infinity : record.since.getTime();
      this.logger.info({ horizon: record.since === undefined ? 'every reading has a slot' : record.since.toISOString() }, 'ListMeasurements reads slot by slot from the horizon on');
      return true;
    } catch (err) {
      if (!this.failing) this.logger.warn({ err }, 'cannot read when storage began to write slots; ListMeasurements reads the old way until it can');
      this.failing = true;
      throw err;
    }
  }
}
