/**
 * What a failed attempt means for its task (SPEC section 6): run again after a delay, or fail for
 * good — decided here, purely, for handler failures, timeouts and stalled attempts alike.
 */
import { SEVERITY } from '../jobs/job-log.js';
import { taskFailedLine, taskRetryingLine, type FinalFailureReason } from '../jobs/log-messages.js';

/** Longest retry delay applied (a year); a larger setting must not overflow the timestamp. */
export const MAX_DELAY_SECONDS = 365 * 24 * 3600;

/** A failed attempt, as the worker (or stall recovery) saw it. */
export interface AttemptFailure {
  /** One-line reason, stored in `attempts.error` / `tasks.error` and logged. */
  error: string;
  /** No retry can help (PermanentTaskError, bad inputs): the task fails at once. */
  permanent?: boolean;
  /** Retry after this many seconds instead of the task's `retry_delay` (RetryAfterError). */
  retryAfterSeconds?: number;
  /** The attempt's final state: `failed` (default) or `stalled` (its worker stopped heart-beating). */
  attemptState?: 'failed' | 'stalled';
}

/** What the decision needs to know about the task and its job. */
export interface FailureFacts {
  /** The task's name (for the log line). */
  task: string;
  failure: AttemptFailure;
  /** The task's failed and stalled attempts, this one included (cancelled ones never count). */
  failedAttempts: number;
  /** The task's `retry_limit`, else the setting. */
  retryLimit: number;
  /** The task's `retry_delay`, else the setting (a RetryAfterError's delay wins over both). */
  retryDelay: number;
  /** The task has `continue_on_error`. */
  continues: boolean;
  /** The first other task (by position) that has already failed the job, if any. */
  failedBy: string | undefined;
}

/** The decision: retry after `delaySeconds`, or fail for good; with the log line to write. */
export type FailureDecision =
  | { retry: true; delaySeconds: number; message: string; severity: number }
  | { retry: false; message: string; severity: number };

/**
 * Decides a failed attempt. Retries remain while the task has had no more failed/stalled attempts
 * than `retry_limit` + 1 (this one included) and the failure is not permanent; even then there is
 * no retry when another task has already failed the job (a task that was running then may end,
 * but does not start again). A retry waits `retryAfterSeconds` if given, else `retryDelay`,
 * clamped to 0 … {@link MAX_DELAY_SECONDS} (the log line shows the delay as asked).
 */
export function decideFailure(f: FailureFacts): FailureDecision {
  const { failure } = f;
  const verb = failure.attemptState === 'stalled' ? 'stalled' : 'failed';
  const delay = failure.retryAfterSeconds ?? f.retryDelay;
  const retriesLeft = failure.permanent !== true && f.failedAttempts <= f.retryLimit;
  if (retriesLeft && f.failedBy === undefined)
    return {
      retry: true,
      delaySeconds: Math.min(Math.max(0, delay), MAX_DELAY_SECONDS),
      message: taskRetryingLine(f.task, verb, failure.error, delay, f.failedAttempts + 1, f.retryLimit + 1),
      severity: SEVERITY.WARN,
    };
  const reason: FinalFailureReason =
    failure.permanent === true
      ? { kind: 'permanent' }
      : retriesLeft
        ? { kind: 'sibling-failed', sibling: f.failedBy! }
        : { kind: 'retries-used', attempts: f.failedAttempts };
  return {
    retry: false,
    message: taskFailedLine(f.task, verb, failure.error, reason, f.continues),
    severity: f.continues ? SEVERITY.WARN : SEVERITY.ERROR,
  };
}
