/**
 * The simulator's clock. Device readings are derived from time alone: a
 * device takes its j-th reading of a segment at start + phase + j × period,
 * where phase is a hash of its identity, so no device needs a timer or any
 * state. A segment begins at the epoch, and again whenever the simulator
 * restarts with another period; sequence numbers carry on across segments
 * without a gap, so seq never repeats and loss stays countable.
 */

/** A stretch of time in which every device reads once per periodMs. */
export interface Segment {
  readonly startMs: number;
  readonly periodMs: number;
}

/** Segments in order; the first starts at the epoch. */
export type Timeline = readonly Segment[];

/** A new timeline that starts now. */
export function startTimeline(periodMs: number, nowMs: number): Timeline {
  return [{ startMs: nowMs, periodMs }];
}

/**
 * The timeline to run with a configured period: the same one when the period
 * is unchanged, otherwise with a new segment from now (never before the last
 * segment's start, should the clock have gone back).
 */
export function continueTimeline(timeline: Timeline, periodMs: number, nowMs: number): Timeline {
  const last = timeline[timeline.length - 1];
  if (last === undefined) return startTimeline(periodMs, nowMs);
  if (last.periodMs === periodMs) return timeline;
  return [...timeline, { startMs: Math.max(nowMs, last.startMs + 1), periodMs }];
}

/** Throws unless timeline is non-empty with whole, increasing starts and positive whole periods. */
export function checkTimeline(timeline: Timeline): Timeline {
  if (timeline.length === 0) throw new Error('a timeline needs at least one segment');
  timeline.forEach((s, i) => {
    if (!Number.isSafeInteger(s.startMs) || !Number.isSafeInteger(s.periodMs) || s.periodMs < 1) {
      throw new Error(`segment ${i}: start and period must be whole milliseconds, period at least 1`);
    }
    const prev = timeline[i - 1];
    if (prev !== undefined && s.startMs <= prev.startMs) throw new Error(`segment ${i}: starts must increase`);
  });
  return timeline;
}

/**
 * Calls take(seq, takenAtMs) for each reading of the device whose identity
 * hash is seed taken in (fromMs, toMs], oldest first. seq is 1 for the
 * first reading after the epoch and grows by one per reading.
 */
export function forEachReading(timeline: Timeline, seed: number, fromMs: number, toMs: number, take: (seq: number, takenAtMs: number) => void): void {
  let base = 0;
  for (let i = 0; i < timeline.length; i++) {
    const { startMs, periodMs } = timeline[i]!;
    const first = startMs + (seed % periodMs);
    const next = timeline[i + 1];
    // Readings of this segment: j = 0 … count-1 (unbounded for the last one).
    const count = next === undefined ? Infinity : Math.max(0, Math.ceil((next.startMs - first) / periodMs));
    const jMin = Math.max(0, Math.floor((fromMs - first) / periodMs) + 1);
    const jMax = Math.min(Math.floor((toMs - first) / periodMs), count - 1);
    for (let j = jMin; j <= jMax; j++) take(base + j + 1, first + j * periodMs);
    if (next === undefined) break;
    base += count;
  }
}
