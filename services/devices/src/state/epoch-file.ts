/**
 * epoch.json: the simulator's timeline, written on first start so that seq
 * keeps growing across restarts (and a restart with another period goes on
 * from where the last one stopped).
 */
import { join } from 'node:path';
import { z } from 'zod';
import { checkTimeline, continueTimeline, startTimeline, type Timeline } from '../domain/timeline.ts';
import { readIfExists, writeFileAtomic } from './files.ts';

const fileSchema = z.object({
  version: z.literal(1),
  epoch: z.string(),
  segments: z.array(z.object({ start: z.string(), start_ms: z.number().int(), period_ms: z.number().int().positive() })).min(1),
});

function serialise(timeline: Timeline): string {
  const segments = timeline.map((s) => ({ start: new Date(s.startMs).toISOString(), start_ms: s.startMs, period_ms: s.periodMs }));
  return `${JSON.stringify({ version: 1, epoch: segments[0]!.start, segments }, null, 1)}\n`;
}

/** What loadTimeline found and did. */
export interface LoadedTimeline {
  readonly timeline: Timeline;
  readonly path: string;
  /** created: no epoch.json yet; extended: the period changed, a segment was added. */
  readonly change: 'created' | 'extended' | 'unchanged';
}

/** Reads epoch.json in stateDir (creating it on first start) and continues it with periodMs. */
export function loadTimeline(stateDir: string, periodMs: number, nowMs: number): LoadedTimeline {
  const path = join(stateDir, 'epoch.json');
  const raw = readIfExists(path);
  if (raw === undefined) {
    const timeline = startTimeline(periodMs, nowMs);
    writeFileAtomic(path, serialise(timeline), 0o644);
    return { timeline, path, change: 'created' };
  }
  let stored: Timeline;
  try {
    const parsed = fileSchema.parse(JSON.parse(raw));
    stored = checkTimeline(parsed.segments.map((s) => ({ startMs: s.start_ms, periodMs: s.period_ms })));
  } catch (err) {
    throw new Error(`${path} is malformed (${err instanceof z.ZodError ? (err.issues[0]?.message ?? 'invalid') : (err as Error).message}); restore it: deleting it restarts seq from 1, and storage would take the new readings for ones it already has`, { cause: err });
  }
  const timeline = continueTimeline(stored, periodMs, nowMs);
  if (timeline === stored) return { timeline, path, change: 'unchanged' };
  writeFileAtomic(path, serialise(timeline), 0o644);
  return { timeline, path, change: 'extended' };
}
