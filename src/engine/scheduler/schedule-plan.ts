/**
 * The pure timing decisions of the schedule runner (SPEC section 8), apart so they are tested
 * without a database or a clock.
 */

/** Longest single timer; longer waits re-check (Node timers overflow at 2^31 ms). */
export const MAX_TIMER_MS = 3_600_000;
/**
 * How early a schedule timer may fire and still run: a run found more than this before its
 * `next_run_at` re-arms instead (a long wait was cut into pieces, or the plan changed).
 */
export const EARLY_TOLERANCE_MS = 20;

/**
 * The next run of a schedule whose run (or last run) started at `startedAt`: `everyMs` later, but
 * never in the past (a run that took longer than its interval is followed at once).
 */
export function nextRunAt(startedAt: Date, everyMs: number, now: Date): Date {
  return new Date(Math.max(startedAt.getTime() + everyMs, now.getTime()));
}

/** Milliseconds to wait for a run planned at `next`: 0 when due, at most {@link MAX_TIMER_MS}. */
export function scheduleWaitMs(next: Date, now: Date): number {
  return Math.min(Math.max(0, next.getTime() - now.getTime()), MAX_TIMER_MS);
}

/** Whether a timer that fired at `now` came too early for the plan `next` (see {@link EARLY_TOLERANCE_MS}). */
export function firedEarly(next: Date | null, now: Date): boolean {
  return next !== null && next.getTime() > now.getTime() + EARLY_TOLERANCE_MS;
}

/** Longest wait of the run_at timer before it looks again (a safety net for lost notifications). */
export const MAX_DUE_TIMER_MS = 60_000;
/** Wait before looking again when due jobs were found but none could be moved (rows locked). */
export const DUE_LOCKED_RETRY_MS = 250;

/**
 * What the run_at timer does for the earliest `run_at` `next` of a scheduled job: move due jobs
 * now (`{ moveNow: true }`), or wait `waitMs` and look again (at most {@link MAX_DUE_TIMER_MS},
 * also when no job waits).
 */
export function dueTimerStep(
  next: Date | null,
  now: Date,
): { moveNow: true } | { moveNow: false; waitMs: number } {
  if (next === null) return { moveNow: false, waitMs: MAX_DUE_TIMER_MS };
  const wait = next.getTime() - now.getTime();
  if (wait <= 0) return { moveNow: true };
  return { moveNow: false, waitMs: Math.min(wait, MAX_DUE_TIMER_MS) };
}
