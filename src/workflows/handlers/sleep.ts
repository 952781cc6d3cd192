/**
 * The `sleep` built-in handler (SPEC section 12): waits `seconds`, ending early with an error when
 * the attempt is aborted.
 */
import { PermanentTaskError } from '../../errors/task-errors.js';
import type { HandlerContext } from '../types.js';
import { abortError, readSeconds } from './inputs.js';

/** Inputs `sleep` accepts. `seconds` is required. */
export const SLEEP_INPUTS = ['seconds'] as const;

/** Longest accepted sleep: 7 days (setTimeout's own limit is about 24.8 days). */
export const MAX_SLEEP_SECONDS = 7 * 24 * 3600;

/**
 * Waits `inputs.seconds` (a number >= 0, or a numeric string; fractions allowed); 0 only yields
 * to the event loop once.
 * @returns `{ slept_seconds }`.
 * @throws PermanentTaskError for a missing or bad `seconds`; Error when `ctx.signal` aborts.
 */
export async function sleepHandler(ctx: HandlerContext): Promise<{ slept_seconds: number }> {
  const seconds = readSeconds('sleep', 'seconds', ctx.inputs.seconds);
  if (seconds > MAX_SLEEP_SECONDS)
    throw new PermanentTaskError(
      `sleep: input "seconds" must be at most ${MAX_SLEEP_SECONDS} (7 days), got ${seconds}`,
    );
  const { signal } = ctx;
  if (signal.aborted) throw abortError(signal, 'sleep');
  if (seconds === 0) {
    // A zero sleep only yields: a timer of 0 ms would wait Node's 1 ms minimum.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (signal.aborted) throw abortError(signal, 'sleep');
    return { slept_seconds: 0 };
  }
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal, 'sleep'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, seconds * 1000);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return { slept_seconds: seconds };
}
