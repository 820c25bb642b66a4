/**
 * The poller: every flat on its own schedule, polled by one rxjs pipeline with
 * bounded concurrency. Each poll has a timeout (shorter than the interval unless configured otherwise);
 * each flat has its own circuit breaker and backoff with jitter (cockatiel),
 * so a device that takes 30 s never holds up another flat. Answers are
 * validated, then written to the outbox in small batches before anything else.
 */
import {
  BrokenCircuitError,
  ConsecutiveBreaker,
  ExponentialBackoff,
  TaskCancelledError,
  TimeoutStrategy,
  circuitBreaker,
  handleAll,
  timeout,
  type CircuitBreakerPolicy,
  type IBackoff,
} from 'cockatiel';
import { Subject, bufferTime, defer, filter, from, interval, mergeMap, takeUntil, EMPTY, catchError, type Subscription } from 'rxjs';
import type { Logger } from '@flatline/platform';
import { MalformedAnswerError, parseDeviceAnswer } from './domain/device-answer.ts';
import { stableFraction } from './domain/flat-schedule.ts';
import { PollError, type DeviceClient } from './devices/device-client.ts';
import type { IngestionMetrics } from './metrics.ts';
import { OutboxFullError, type NewFetch, type Outbox, type Recorded } from './outbox/outbox.ts';

/** Poller settings. */
export interface PollSettings {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly concurrency: number;
  readonly breakerFailures: number;
  readonly backoffMaxMs: number;
}

interface FlatState {
  readonly id: string;
  nextDueMs: number;
  busy: boolean;
  readonly breaker: CircuitBreakerPolicy;
  backoff: IBackoff<unknown> | undefined;
  /** When each failure kind was last logged for this flat. */
  readonly logged: Map<string, number>;
}

const TICK_MS = 50;
const LOG_EVERY_MS = 60000;
/** Holes named in one 'readings missed' line. */
const MISSED_HOLES_LOGGED = 10;

/** Polls the flats it is given. */
export class Poller {
  private readonly flats = new Map<string, FlatState>();
  private readonly stop$ = new Subject<void>();
  private readonly retryBackoff: ExponentialBackoff<unknown>;
  private readonly halfOpenBackoff: ExponentialBackoff<unknown>;
  private readonly timeoutPolicy;
  private inFlight = 0;
  private fullLoggedAt = -Infinity;
  private subscription: Subscription | undefined;

  constructor(
    private readonly settings: PollSettings,
    private readonly client: DeviceClient,
    private readonly outbox: Outbox,
    private readonly metrics: IngestionMetrics,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.retryBackoff = new ExponentialBackoff({ initialDelay: Math.min(1000, settings.intervalMs / 5), maxDelay: settings.backoffMaxMs });
    this.halfOpenBackoff = new ExponentialBackoff({ initialDelay: settings.intervalMs, maxDelay: settings.backoffMaxMs });
    // abortOnReturn off: aborting a poll's signal after it returned builds a
    // DOMException and runs undici's listeners for nothing, about 8 % of
    // ingestion's CPU at 3,000 flats (profile); a timeout still aborts.
    this.timeoutPolicy = timeout(settings.timeoutMs, { strategy: TimeoutStrategy.Aggressive, abortOnReturn: false });
  }

  /**
   * Sets the flats to poll. Flats new to this poller are polled soon: at once
   * (spread over a second) when taken over from another replica, else at a
   * stable offset in the interval so that many flats spread evenly.
   */
  setFlats(ids: Iterable<string>, takeover: boolean): void {
    const wanted = new Set(ids);
    for (const id of this.flats.keys()) if (!wanted.has(id)) this.flats.delete(id);
    const now = this.now();
    for (const id of wanted) {
      if (this.flats.has(id)) continue;
      const spread = takeover ? Math.min(1000, this.settings.intervalMs) : this.settings.intervalMs;
      this.flats.set(id, {
        id,
        nextDueMs: now + stableFraction(id) * spread,
        busy: false,
        breaker: circuitBreaker(handleAll, { halfOpenAfter: this.halfOpenBackoff, breaker: new ConsecutiveBreaker(this.settings.breakerFailures) }),
        backoff: undefined,
        logged: new Map(),
      });
    }
    this.metrics.flatsHeld.set(this.flats.size);
  }

  /** Flats polled now. */
  flatIds(): string[] {
    return [...this.flats.keys()];
  }

  /** Starts polling. */
  start(): void {
    this.subscription = interval(TICK_MS)
      .pipe(
        takeUntil(this.stop$),
        mergeMap(() => from(this.takeDue())),
        mergeMap((flat) => defer(() => this.poll(flat)), this.settings.concurrency),
        filter((f): f is NewFetch => f !== undefined),
        // One outbox transaction (one fsync: synchronous FULL) per 100 ms of
        // answers rather than per 25 ms: the profile at 2,000 flats showed a
        // quarter of the busy time in commits; 100 ms is nothing next to a 5 s interval.
        bufferTime(100, null, 1000),
        filter((batch) => batch.length > 0),
        mergeMap((batch) => {
          this.save(batch);
          return EMPTY;
        }),
        catchError((err: unknown) => {
          this.logger.fatal({ err }, 'poller pipeline failed');
          throw err;
        }),
      )
      .subscribe();
  }

  /** Stops scheduling and waits (at most graceMs) for polls in flight; what they fetched is saved. */
  async stop(graceMs: number): Promise<void> {
    this.stop$.next();
    const end = this.now() + graceMs;
    while (this.inFlight > 0 && this.now() < end) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 50));
    this.subscription?.unsubscribe();
  }

  private takeDue(): FlatState[] {
    const now = this.now();
    const due: FlatState[] = [];
    for (const flat of this.flats.values()) {
      if (!flat.busy && flat.nextDueMs <= now) {
        flat.busy = true;
        due.push(flat);
      }
    }
    return due;
  }

  private async poll(flat: FlatState): Promise<NewFetch | undefined> {
    const started = this.now();
    this.inFlight += 1;
    try {
      const readings = await flat.breaker.execute(() =>
        this.timeoutPolicy.execute(async (_ctx, signal) => {
          const stop = this.metrics.pollSeconds.startTimer();
          try {
            return parseDeviceAnswer(await this.client.fetch(flat.id, signal), flat.id);
          } finally {
            stop();
          }
        }),
      );
      flat.backoff = undefined;
      flat.nextDueMs = Math.max(started + this.settings.intervalMs, this.now());
      this.metrics.polls.inc({ outcome: 'ok' });
      return { flatId: flat.id, fetchedAtMs: this.now(), readings };
    } catch (err) {
      const kind = this.kindOf(err);
      this.metrics.polls.inc({ outcome: kind });
      if (kind === 'circuit_open') {
        flat.nextDueMs = this.now() + Math.min(this.settings.intervalMs, 1000);
      } else {
        flat.backoff = flat.backoff === undefined ? this.retryBackoff.next() : flat.backoff.next(undefined);
        flat.nextDueMs = this.now() + Math.min(flat.backoff.duration, this.settings.backoffMaxMs);
        this.logFailure(flat, kind, err);
      }
      return undefined;
    } finally {
      this.inFlight -= 1;
      flat.busy = false;
    }
  }

  private kindOf(err: unknown): string {
    if (err instanceof BrokenCircuitError) return 'circuit_open';
    if (err instanceof TaskCancelledError) return 'timeout';
    if (err instanceof MalformedAnswerError) return 'malformed';
    if (err instanceof PollError) return err.kind;
    return 'error';
  }

  private logFailure(flat: FlatState, kind: string, err: unknown): void {
    const now = this.now();
    if (now - (flat.logged.get(kind) ?? -Infinity) < LOG_EVERY_MS) return;
    flat.logged.set(kind, now);
    const message = err instanceof Error ? err.message : String(err);
    this.logger.warn({ flat: flat.id, outcome: kind, reason: message }, 'poll failed (logged once a minute per flat and outcome)');
  }

  /**
   * Readings lost at the device (it was not fetched for longer than it keeps
   * readings) are a loss no retry can heal: always logged, naming the first
   * holes (flat, device, seqs, and the time they span).
   */
  private logMissed(batch: readonly NewFetch[], recorded: readonly Recorded[], missed: number): void {
    const holes: string[] = [];
    let flats = 0;
    recorded.forEach((r, i) => {
      if (r.missed === 0) return;
      flats += 1;
      for (const h of r.holes) {
        if (holes.length >= MISSED_HOLES_LOGGED) return;
        const span = h.afterTakenAtMs === null ? '' : ` (${((h.beforeTakenAtMs - h.afterTakenAtMs) / 1000).toFixed(1)} s between the readings either side)`;
        const epoch = h.epoch === 0 ? '' : ` epoch ${h.epoch}`;
        holes.push(`flat ${batch[i]!.flatId} ${h.deviceId}${epoch}: seq ${h.fromSeq}..${h.toSeq}${span}`);
      }
    });
    this.logger.warn({ readings: missed, flats, holes }, 'readings missed: the devices no longer had them when fetched (unreachable for longer than they keep readings)');
  }

  private save(batch: NewFetch[]): void {
    try {
      const recorded = this.outbox.record(batch);
      let fresh = 0;
      let missed = 0;
      let resets = 0;
      for (const r of recorded) {
        fresh += r.fresh;
        missed += r.missed;
        resets += r.resets;
      }
      if (resets > 0) {
        this.metrics.resets.inc(resets);
        this.logger.warn({ devices: resets }, 'device seq went backwards (meter reset or replaced): its readings continue in a new epoch');
      }
      this.metrics.readings.inc(fresh);
      if (missed > 0) {
        this.metrics.missed.inc(missed);
        this.logMissed(batch, recorded, missed);
      }
    } catch (err) {
      // Nothing was kept and the cursors did not move: the next poll fetches
      // the same readings again (devices answer a window of them).
      if (err instanceof OutboxFullError) {
        this.metrics.outboxFull.inc(batch.length);
        const now = this.now();
        if (now - this.fullLoggedAt >= LOG_EVERY_MS) {
          this.fullLoggedAt = now;
          this.logger.error({ reason: err.message }, 'outbox full: fetch results not kept until storage takes some (logged once a minute; counted in flatline_ingestion_outbox_full_fetches_total)');
        }
        return;
      }
      this.metrics.outboxErrors.inc();
      this.logger.error({ err, fetches: batch.length }, 'cannot write the outbox');
    }
  }
}
