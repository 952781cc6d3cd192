/**
 * Driving a {@link ManualClock} while real work (queries, notifications, HTTP) catches up.
 */
import type { ManualClock } from '../../src/engine/clock.js';
import { waitFor } from './wait-for.js';

/**
 * Polls `condition` as {@link waitFor} does, moving `clock` on by `stepMs` before each poll (0:
 * only fire the timers already due), so timers fire as soon as the work they wait for is done.
 * The deadline is real time: it bounds the I/O, not the clock.
 * @returns the truthy value of `condition`.
 * @throws Error naming `what` when the deadline passes.
 */
export function advanceUntil<T>(
  clock: ManualClock,
  condition: () => T | Promise<T>,
  options: { stepMs?: number; timeoutMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const stepMs = options.stepMs ?? 0;
  return waitFor(
    async () => {
      await clock.advance(stepMs);
      return condition();
    },
    { timeoutMs: options.timeoutMs, what: options.what, intervalMs: 10 },
  );
}
