/**
 * Sends the outbox to storage, the fetches of the last 2 s first (see Outbox.peek), and deletes only what storage
 * acknowledged. While storage is unavailable the outbox grows; the forwarder
 * retries with exponential backoff and jitter (cockatiel) and warns once when
 * the outbox passes its size threshold. Append is idempotent, so a batch that
 * was stored but whose answer was lost is simply sent again.
 *
 * A fetch result is set aside (dead-lettered, kept, listable, replayable)
 * only on storage's own verdict about it: an INVALID_ARGUMENT carrying the
 * index of the refused fetch result. Any other refusal, from whichever hop,
 * says nothing about the data: the batch is retried, smaller if the refusal
 * could be about its size, and never dropped.
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import { StorageServiceClient, type AppendRequest } from '@flatline/proto';
import { FAULT_INJECTED, unaryCall, REFUSED_FETCH_TRAILER, type Logger } from '@flatline/platform';
import type { IngestionMetrics } from '../metrics.ts';
import type { Outbox, OutboxFetch } from '../outbox/outbox.ts';

/** Forwarder settings. */
export interface ForwardSettings {
  readonly batch: number;
  readonly timeoutMs: number;
  readonly warnRows: number;
  /** retry keeps a failed batch in the outbox; drop deletes it anyway (at-most-once, for negative controls). */
  readonly onFailure: 'retry' | 'drop';
}

const MAX_READINGS_PER_APPEND = 10000;
const IDLE_MS = 100;

/** The index of the fetch result storage refused as invalid, if err is that verdict about one of batchSize fetches. */
export function refusedFetchIndex(err: ServiceError, batchSize: number): number | undefined {
  if (err.code !== status.INVALID_ARGUMENT) return undefined;
  const [value] = err.metadata?.get(REFUSED_FETCH_TRAILER) ?? [];
  const index = typeof value === 'string' && /^\d{1,4}$/.test(value) ? Number(value) : NaN;
  return Number.isInteger(index) && index < batchSize ? index : undefined;
}

/** Builds the Append request of a batch. */
export function toAppendRequest(batch: readonly OutboxFetch[]): AppendRequest {
  return {
    fetches: batch.map((f) => ({
      flatId: f.flatId,
      fetchedAt: new Date(f.fetchedAtMs),
      readings: f.readings.map((r) => ({
        flatId: f.flatId,
        deviceId: r.deviceId,
        seq: String(r.seq),
        takenAt: new Date(r.takenAtMs),
        quantity: r.quantity,
        unit: r.unit,
        value: r.value,
        epoch: r.epoch,
      })),
    })),
  };
}

/** The outbox → storage loop. */
export class Forwarder {
  private running = false;
  private loop: Promise<void> | undefined;
  private backoff: IBackoff<unknown> | undefined;
  /** Whether Appends are smaller than the setting because one did not finish within its deadline (they grow back by doubling). */
  private slowed = false;
  // Storage refuses at once (UNAVAILABLE) while its database is away, so a
  // retry a second costs little, and the outbox starts draining within a
  // second of the database's return rather than after a long backoff.
  private readonly backoffFactory = new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 });
  private warned = false;
  private sizeObservedAt = 0;
  private wake: (() => void) | undefined;

  constructor(
    private readonly outbox: Outbox,
    private readonly client: StorageServiceClient,
    private readonly settings: ForwardSettings,
    private readonly metrics: IngestionMetrics,
    private readonly logger: Logger,
    /** Told, once a second, how full the outbox is (used bytes / limit). */
    private readonly onFill: (fraction: number) => void = () => undefined,
  ) {}

  /** Starts forwarding in the background. */
  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  /** Stops after the call in flight; with drainMs > 0 first tries to empty the outbox for that long. */
  async stop(drainMs = 0): Promise<void> {
    const end = Date.now() + drainMs;
    while (drainMs > 0 && this.outbox.size().fetches > 0 && Date.now() < end && this.backoff === undefined) {
      await new Promise((r) => setTimeout(r, 20));
    }
    this.running = false;
    this.wake?.();
    await this.loop;
  }

  private async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = undefined;
  }

  private async run(): Promise<void> {
    // Fetch results per Append: halved after a refusal that may be about the
    // size of the call, back to the setting after a success; halved after a
    // deadline exceeded too, and doubled back after each success. An Append
    // that storage cannot finish within the deadline (a loaded database) is
    // sent again whole, its stored part now duplicates, which FerretDB
    // inserts one at a time: at 10,000 flats Appends of 500 fetch results
    // timed out again and again while the database did that work for
    // nothing. Smaller ones finish, and the outbox drains.
    let limit = this.settings.batch;
    while (this.running) {
      this.observeSize();
      const batch = this.outbox.peek(limit, MAX_READINGS_PER_APPEND);
      if (batch.length === 0) {
        await this.sleep(IDLE_MS);
        continue;
      }
      const started = performance.now();
      try {
        await unaryCall(this.client, this.client.append, toAppendRequest(batch), this.settings.timeoutMs);
        this.metrics.appendSeconds.add((performance.now() - started) / 1000);
        this.outbox.ack(batch);
        this.metrics.forwarded.inc(batch.reduce((n, f) => n + f.readings.length, 0));
        if (this.backoff !== undefined) this.logger.info('storage accepts appends again');
        this.backoff = undefined;
        limit = this.slowed ? Math.min(this.settings.batch, limit * 2) : this.settings.batch;
        this.slowed = this.slowed && limit < this.settings.batch;
      } catch (err) {
        const e = err as ServiceError;
        this.metrics.appendSeconds.add((performance.now() - started) / 1000);
        this.metrics.forwardErrors.inc({ code: status[e.code] ?? 'UNKNOWN' });
        if (e.details === FAULT_INJECTED) this.metrics.faultAborted.add();
        const refused = refusedFetchIndex(e, batch.length);
        if (refused !== undefined) {
          // Storage's verdict about one fetch result: set it aside, send the rest at once.
          this.deadLetter(batch[refused]!, e.details);
          continue;
        }
        if ((e.code === status.INVALID_ARGUMENT || e.code === status.RESOURCE_EXHAUSTED) && batch.length > 1) {
          // Not a verdict about the data: perhaps about the size of the call (a hop with smaller limits).
          limit = Math.max(1, Math.floor(batch.length / 2));
          this.logger.warn({ code: status[e.code], reason: e.details, fetches: batch.length, next: limit }, 'Append refused without naming a fetch result; retrying smaller batches');
          continue;
        }
        if (e.code === status.DEADLINE_EXCEEDED && batch.length > 1) {
          limit = Math.max(1, Math.floor(batch.length / 2));
          if (!this.slowed) this.logger.warn({ fetches: batch.length, next: limit, timeoutMs: this.settings.timeoutMs }, 'Append did not finish within its deadline; sending smaller batches until they do');
          this.slowed = true;
        }
        if (this.settings.onFailure === 'drop') {
          this.logger.warn({ code: status[e.code], readings: batch.reduce((n, f) => n + f.readings.length, 0) }, 'Append failed; FLATLINE_FORWARD_ON_FAILURE=drop: batch dropped');
          this.metrics.dropped.inc(batch.reduce((n, f) => n + f.readings.length, 0));
          this.outbox.ack(batch);
          await this.sleep(IDLE_MS);
          continue;
        }
        if (this.backoff === undefined) {
          const refusal = e.code === status.INVALID_ARGUMENT || e.code === status.RESOURCE_EXHAUSTED;
          if (refusal) this.logger.error({ code: status[e.code], reason: e.details }, 'a single fetch result was refused without storage\'s verdict (a proxy? a version skew?): kept in the outbox and retried, never dropped');
          else this.logger.warn({ code: status[e.code], reason: e.details }, 'storage does not accept appends; the outbox keeps everything and retries');
        }
        this.backoff = this.backoff === undefined ? this.backoffFactory.next() : this.backoff.next(undefined);
        await this.sleep(this.backoff.duration);
      }
    }
  }

  private deadLetter(fetch: OutboxFetch, reason: string): void {
    this.logger.error({ flat: fetch.flatId, readings: fetch.readings.length, reason }, 'storage refused a fetch result as invalid; kept in the dead-letter table');
    this.outbox.deadLetter(fetch.id, reason);
    this.metrics.deadLetters.inc();
  }

  private observeSize(): void {
    // A count over the outbox scans it: once a second is enough for a gauge
    // and a warning, not once per batch while a backlog drains.
    const now = Date.now();
    if (now - this.sizeObservedAt < 1000) return;
    this.sizeObservedAt = now;
    const size = this.outbox.size();
    this.metrics.outboxFetches.set(size.fetches);
    this.metrics.outboxReadings.set(size.readings);
    const usedBytes = this.outbox.usedBytes();
    this.metrics.outboxBytes.set(usedBytes);
    this.metrics.outboxLimitBytes.set(this.outbox.limitBytes);
    this.onFill(usedBytes / this.outbox.limitBytes);
    if (size.fetches >= this.settings.warnRows && !this.warned) {
      this.warned = true;
      this.logger.warn({ fetches: size.fetches, readings: size.readings, threshold: this.settings.warnRows }, 'outbox passed its warning size');
    } else if (size.fetches < this.settings.warnRows / 2) {
      this.warned = false;
    }
  }
}
