/**
 * A repeating timer on the engine's clock, for the worker pool's safety-net poll and heartbeat.
 */
import type { Clock, ClockTimer } from '../clock.js';

/**
 * Calls `fn` every `ms` of `clock`'s time until cancelled. The next call is armed before `fn`
 * runs, so the cadence does not drift with `fn`'s duration (as `setInterval`'s does not); `fn`
 * must not throw.
 */
export function repeatEvery(clock: Clock, ms: number, fn: () => void): ClockTimer {
  let timer: ClockTimer | null = null;
  let cancelled = false;
  const arm = (): void => {
    timer = clock.setTimeout(() => {
      if (cancelled) return;
      arm();
      fn();
    }, ms);
  };
  arm();
  return {
    cancel() {
      cancelled = true;
      timer?.cancel();
    },
  };
}
