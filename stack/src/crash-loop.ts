/**
 * The restart bookkeeping of one supervised process, as a kubelet keeps it
 * for a container: how many times it was restarted, how it last ended, and
 * the back-off before the next start. The back-off is cockatiel's
 * exponential one (doubling, half jitter, capped), so a process that keeps
 * crashing is retried less and less often but never given up on; one that
 * ran healthy (ready) for resetAfterMs starts again from the first delay.
 */
import { ExponentialBackoff, halfJitterGenerator, type IBackoff } from 'cockatiel';

/** How the supervisor restarts a process that died on its own. */
export interface RestartPolicy {
  /** The first back-off; each crash in a row doubles it (half jitter: between half of it and all of it). */
  readonly initialDelayMs: number;
  /** The cap of the back-off. */
  readonly maxDelayMs: number;
  /** A process ready this long counts as healthy: its next crash starts from initialDelayMs again. */
  readonly resetAfterMs: number;
}

/** The defaults of `flatline up`: a first restart within a second, at most one every 30 s in a crash loop. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = { initialDelayMs: 1000, maxDelayMs: 30_000, resetAfterMs: 60_000 };

/** Where a supervised process stands. */
export type SupervisedState = 'starting' | 'running' | 'back-off' | 'stopped';

/** How a process last ended. */
export interface LastExit {
  /** Exit code or signal name, or why its start failed. */
  readonly code: string;
  /** When, ISO time. */
  readonly at: string;
  /** How long it had been ready (0 when it never was). */
  readonly ranSeconds: number;
}

/** What stack.json and `flatline status` show of a supervised process. */
export interface SupervisedStatus {
  readonly name: string;
  readonly state: SupervisedState;
  readonly pid?: number;
  /** Starts by the supervisor after an unexpected exit (a kubelet's restartCount). */
  readonly restarts: number;
  readonly lastExit?: LastExit;
  /** When the next start is due, while in back-off. */
  readonly nextStartAt?: string;
}

/** The restart state of one process. */
export class CrashLoop {
  private state: SupervisedState = 'starting';
  private restarts = 0;
  private pid: number | undefined;
  private readyAt: number | undefined;
  private lastExit: LastExit | undefined;
  private nextStartAt: number | undefined;
  private backoff: IBackoff<unknown> | undefined;
  private readonly factory: ExponentialBackoff<unknown>;

  constructor(
    readonly name: string,
    readonly policy: RestartPolicy = DEFAULT_RESTART_POLICY,
    private readonly now: () => number = Date.now,
  ) {
    this.factory = new ExponentialBackoff({ initialDelay: policy.initialDelayMs, maxDelay: policy.maxDelayMs, generator: halfJitterGenerator });
  }

  /** The process (pid) is up and ready. */
  ready(pid: number | undefined): void {
    this.state = 'running';
    this.pid = pid;
    this.readyAt = this.now();
    this.nextStartAt = undefined;
  }

  /**
   * The process ended on its own (code: exit code or signal) or its start
   * failed (code: why); returns the back-off in ms before the next start.
   */
  crashed(code: number | string): number {
    const now = this.now();
    const ranMs = this.readyAt === undefined ? 0 : now - this.readyAt;
    if (ranMs >= this.policy.resetAfterMs) this.backoff = undefined;
    this.backoff = this.backoff === undefined ? this.factory.next() : this.backoff.next(undefined);
    const delayMs = this.backoff.duration;
    this.lastExit = { code: String(code), at: new Date(now).toISOString(), ranSeconds: Math.round(ranMs / 100) / 10 };
    this.state = 'back-off';
    this.pid = undefined;
    this.readyAt = undefined;
    this.nextStartAt = now + delayMs;
    return delayMs;
  }

  /** The supervisor starts it again (counted as a restart). */
  restarting(): void {
    this.restarts++;
    this.state = 'starting';
    this.nextStartAt = undefined;
  }

  /**
   * It was stopped on purpose (a node drained or crashed, the stack
   * stopping) or its node is down, or code says how it ended while nobody
   * would restart it; no restart is due.
   */
  stopped(code?: number | string): void {
    if (code !== undefined) {
      const ranMs = this.readyAt === undefined ? 0 : this.now() - this.readyAt;
      this.lastExit = { code: String(code), at: new Date(this.now()).toISOString(), ranSeconds: Math.round(ranMs / 100) / 10 };
    }
    this.state = 'stopped';
    this.pid = undefined;
    this.readyAt = undefined;
    this.nextStartAt = undefined;
  }

  /** What to show. */
  status(): SupervisedStatus {
    return {
      name: this.name,
      state: this.state,
      ...(this.pid === undefined ? {} : { pid: this.pid }),
      restarts: this.restarts,
      ...(this.lastExit === undefined ? {} : { lastExit: this.lastExit }),
      ...(this.nextStartAt === undefined ? {} : { nextStartAt: new Date(this.nextStartAt).toISOString() }),
    };
  }
}
