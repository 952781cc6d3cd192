/**
 * The two error classes a handler uses to steer retries (see ARCHITECTURE.md, "Engine").
 * Any other thrown error is an ordinary failure, retried per `retry_limit` / `retry_delay`.
 */

/** A failure that no retry can fix (bad input, missing file): the task fails at once. */
export class PermanentTaskError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentTaskError';
  }
}

/** A failure worth retrying after `retryAfterSeconds` instead of the task's `retry_delay`. */
export class RetryAfterError extends Error {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RetryAfterError';
  }
}
