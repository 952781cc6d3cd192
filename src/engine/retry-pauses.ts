/**
 * The pauses before a failed database step is tried again, shared by the engine's loops so they
 * back off alike.
 */

/**
 * Back-off after `failures` failed passes in a row (admission, claims), in ms: 200, 400, 800 …
 * doubling, capped at 5 000.
 * @param failures - failures in a row, from 1.
 */
export function backoffAfterFailuresMs(failures: number): number {
  return Math.min(5_000, 100 * 2 ** Math.min(failures, 6));
}

/**
 * Pause before the `n`th new try of a write the database could not take (an attempt result, a
 * callback outcome), in ms: 200 ms more each time, at most 2 000, so a write lands soon after the
 * database is back.
 * @param n - the try about to be made again, from 1.
 */
export function writeRetryPauseMs(n: number): number {
  return Math.min(200 * n, 2_000);
}
