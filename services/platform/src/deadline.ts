/** Deadlines for outbound calls: never longer than the caller's own (STYLE.md rule 6). */
import { DeadlineExceededError } from './status.ts';

/**
 * Milliseconds an outbound call may take: the configured bound, shortened to
 * what is left of the caller's deadline. Throws when nothing is left.
 */
export function budgetMs(callerDeadline: Date | number | undefined, boundMs: number, now = Date.now()): number {
  let budget = boundMs;
  if (callerDeadline instanceof Date) {
    budget = Math.min(budget, callerDeadline.getTime() - now);
  } else if (typeof callerDeadline === 'number' && Number.isFinite(callerDeadline)) {
    budget = Math.min(budget, callerDeadline - now);
  }
  if (budget <= 0) throw new DeadlineExceededError('deadline exceeded before the call could be made');
  return Math.floor(budget);
}
