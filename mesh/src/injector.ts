/**
 * What the local plane does to one request, decided as Istio's fault filter
 * would: among the active faults for the destination host whose match fits
 * the request, the first one applies; its delay (sampled by its percentage)
 * comes first, then its abort (sampled by its own percentage). Each action
 * is counted per fault, so an experiment can prove a fault took effect.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { durationMs, type Fault, type Host } from './fault.ts';

/** What to do to a request. */
export interface Decision {
  readonly fault: string;
  readonly delayMs: number;
  readonly abort: { readonly httpStatus?: number; readonly grpcStatus?: string } | undefined;
}

/** A request as the matchers see it. */
export interface RequestView {
  /** URI path (HTTP) or /package.Service/Method (gRPC). */
  readonly path: string;
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string | undefined>>;
}

type StringMatch = { exact?: string | undefined; prefix?: string | undefined; regex?: string | undefined };

function fits(m: StringMatch, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (m.exact !== undefined) return value === m.exact;
  if (m.prefix !== undefined) return value.startsWith(m.prefix);
  // Istio matches regexes against the whole value (RE2 full match).
  return m.regex !== undefined && new RegExp(`^(?:${m.regex})$`).test(value);
}

/** Whether fault applies to a request to host. */
export function faultMatches(fault: Fault, host: Host, request: RequestView): boolean {
  if (fault.host !== host) return false;
  if (fault.match.length === 0) return true;
  return fault.match.some(
    (m) => (m.uri === undefined || fits(m.uri, request.path)) && Object.entries(m.headers ?? {}).every(([name, hm]) => fits(hm, request.headers[name])),
  );
}

/** Requests each fault touched: in all, and in the last minute. */
export interface FaultCounter {
  inc(labels: { fault: string; action: string }): void;
}

/** Registers the fault metrics in registry: a counter, and a gauge of the last 60 s. */
export function createFaultCounter(registry: Registry): FaultCounter {
  const total = new Counter({
    name: 'flatline_fault_requests_total',
    help: 'Requests the local fault injector delayed or aborted, by fault',
    labelNames: ['fault', 'action'],
    registers: [registry],
  });
  // Per fault and action, one count per second of the last minute.
  const seconds = new Map<string, Map<number, number>>();
  new Gauge({
    name: 'flatline_fault_requests_last_minute',
    help: 'Requests the local fault injector delayed or aborted in the last 60 s, by fault',
    labelNames: ['fault', 'action'],
    registers: [registry],
    collect() {
      this.reset();
      const now = Math.floor(Date.now() / 1000);
      for (const [key, perSecond] of seconds) {
        let n = 0;
        for (const [s, count] of perSecond) {
          if (s <= now - 60) perSecond.delete(s);
          else n += count;
        }
        const [fault, action] = key.split('\u0000') as [string, string];
        this.set({ fault, action }, n);
      }
    },
  });
  return {
    inc(labels) {
      total.inc(labels);
      const key = `${labels.fault}\u0000${labels.action}`;
      const now = Math.floor(Date.now() / 1000);
      const perSecond = seconds.get(key) ?? new Map<number, number>();
      perSecond.set(now, (perSecond.get(now) ?? 0) + 1);
      if (perSecond.size > 120) for (const s of perSecond.keys()) if (s <= now - 60) perSecond.delete(s);
      seconds.set(key, perSecond);
    },
  };
}

/** Decides per request from the active faults; random() in [0, 1) samples the percentages. */
export class Injector {
  constructor(
    private readonly host: Host,
    private readonly faults: () => readonly Fault[],
    private readonly counter: FaultCounter | undefined,
    private readonly random: () => number = Math.random,
  ) {}

  /** The decision for one request, or undefined when no fault applies. */
  decide(request: RequestView): Decision | undefined {
    const fault = this.faults().find((f) => faultMatches(f, this.host, request));
    if (fault === undefined) return undefined;
    const { delay, abort } = fault.fault;
    const delayMs = delay !== undefined && this.random() * 100 < delay.percentage.value ? durationMs(delay.fixedDelay) : 0;
    const aborted = abort !== undefined && this.random() * 100 < abort.percentage.value;
    if (delayMs === 0 && !aborted) return undefined;
    if (delayMs > 0) this.counter?.inc({ fault: fault.name, action: 'delayed' });
    if (aborted) this.counter?.inc({ fault: fault.name, action: 'aborted' });
    return {
      fault: fault.name,
      delayMs,
      abort: aborted ? { ...(abort.httpStatus !== undefined ? { httpStatus: abort.httpStatus } : {}), ...(abort.grpcStatus !== undefined ? { grpcStatus: abort.grpcStatus } : {}) } : undefined,
    };
  }
}

/** A seeded generator in [0, 1) (mulberry32), for reproducible sampling in tests. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
