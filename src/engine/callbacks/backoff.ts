/**
 * Retry policy of callback deliveries (SPEC section 7: exponential backoff, `callback_retry_limit`).
 */

/** Delay before the first retry, in milliseconds. */
export const CALLBACK_BACKOFF_BASE_MS = 1_000;
/** Longest delay between two attempts of one delivery, in milliseconds (5 minutes). */
export const CALLBACK_BACKOFF_CAP_MS = 300_000;
/** Share of the delay added at random so retries of many deliveries to one endpoint spread out. */
export const CALLBACK_BACKOFF_JITTER = 0.1;

/**
 * Delay before the next attempt after `attempts` attempts have failed: 1 s, 2 s, 4 s, 8 s …,
 * capped at {@link CALLBACK_BACKOFF_CAP_MS}, plus up to 10 % jitter.
 * @param attempts - attempts made so far (>= 1).
 * @param random - source of jitter in [0, 1); `Math.random` unless a test fixes it.
 * @returns milliseconds to wait.
 */
export function callbackBackoffMs(attempts: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, Math.min(attempts - 1, 30));
  const base = Math.min(CALLBACK_BACKOFF_BASE_MS * 2 ** exponent, CALLBACK_BACKOFF_CAP_MS);
  return Math.round(base * (1 + CALLBACK_BACKOFF_JITTER * random()));
}

/**
 * Whether a delivery that has failed `attempts` times is to be tried again: the first attempt
 * plus `retryLimit` retries are allowed (`callback_retry_limit` 5 → at most 6 attempts).
 */
export function shouldRetryCallback(attempts: number, retryLimit: number): boolean {
  return attempts <= retryLimit;
}
