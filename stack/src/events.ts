/**
 * The fault log of a state folder (<state>/events.jsonl): every action that
 * injects or removes a fault (a mesh fault, a node failure, the database
 * frozen) appends one line, so a chaos run's report can say what was injected
 * and when from what the actions did, not from what the experiment meant.
 */
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** One line of events.jsonl. */
export interface FaultEvent {
  readonly t: string;
  readonly action: 'inject' | 'remove';
  /** A scenario, a node, "database", or "*" (remove everything). */
  readonly target: string;
  readonly detail: string;
}

/** Appends an event to stateDir's fault log (a single write: concurrent writers do not interleave lines). */
export function recordEvent(stateDir: string, action: FaultEvent['action'], target: string, detail = ''): void {
  const event: FaultEvent = { t: new Date().toISOString(), action, target, detail };
  mkdirSync(stateDir, { recursive: true });
  appendFileSync(join(stateDir, 'events.jsonl'), `${JSON.stringify(event)}\n`);
}

/** The events of stateDir's fault log at or after since. */
export function readEvents(stateDir: string, since = new Date(0)): FaultEvent[] {
  let text: string;
  try {
    text = readFileSync(join(stateDir, 'events.jsonl'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as FaultEvent)
    .filter((e) => new Date(e.t) >= since);
}
