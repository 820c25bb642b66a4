/**
 * An in-memory copy of the flat-state documents (last fetch and latest
 * reading per device, a few dozen bucket documents), reloaded every refreshMs.
 * GetLatest and GetFreshness read it instead of asking the database per call:
 * the query bench measured one GetLatest at ~2 ms of FerretDB CPU, which held
 * the service to ~560 calls/s on 2 cores against ~9,500 for a trivial grpc-js
 * handler. An answer is at most refreshMs (plus one load) behind storage;
 * readings arrive every few seconds, so that is within the data's own
 * granularity. A copy older than maxAgeMs (the database away, or slow) is
 * not used: the store reads the database then, and fails as it always did.
 */
import type { Db } from 'mongodb';
import { deadline, type Logger, COLLECTIONS, stateBucket, type StateDoc } from '@flatline/platform';

/** The snapshot's settings. */
export interface SnapshotSettings {
  /** Milliseconds between reloads; 0 turns the snapshot off. */
  readonly refreshMs: number;
  /** Oldest copy still used. */
  readonly maxAgeMs: number;
  readonly timeoutMs: number;
}

/** The flat-state documents, kept in memory. */
export class StateSnapshot {
  private docs = new Map<string, StateDoc>();
  private loadedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private failing = false;

  constructor(
    private readonly db: Db,
    private readonly settings: SnapshotSettings,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts reloading (the first load at once). */
  start(): void {
    if (this.settings.refreshMs === 0) return;
    const tick = (): void => {
      void this.load().finally(() => {
        if (this.timer !== undefined) this.timer = setTimeout(tick, this.settings.refreshMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Stops reloading. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Reloads every state document now. */
  async load(): Promise<void> {
    const started = this.now();
    try {
      const docs = await this.db.collection<StateDoc>(COLLECTIONS.state).find({}, deadline(this.settings.timeoutMs)).toArray();
      this.docs = new Map(docs.map((d) => [d._id, d]));
      this.loadedAt = started;
      if (this.failing) this.logger.info('state snapshot reloads again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.logger.warn({ err }, 'cannot reload the state snapshot; reading the database per call until it can');
      this.failing = true;
    }
  }

  /** Whether the copy is recent enough to answer from. */
  usable(): boolean {
    return this.settings.refreshMs > 0 && this.loadedAt > 0 && this.now() - this.loadedAt <= this.settings.maxAgeMs;
  }

  /** The state document of flatId's bucket (undefined when that bucket has none yet). */
  bucketOf(flatId: string): StateDoc | undefined {
    return this.docs.get(stateBucket(flatId));
  }

  /** Every state document. */
  all(): StateDoc[] {
    return [...this.docs.values()];
  }
}
