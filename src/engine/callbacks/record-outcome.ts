/**
 * Recording how an attempt of a callback delivery ended (SPEC section 7): delivered, retried
 * later with backoff, or given up after `callback_retry_limit` retries — decided by the pure
 * {@link planDeliveryOutcome}, then written in one transaction with the job's log lines.
 */
import type { Logger } from 'pino';
import type { Queryable } from '../../store/executor.js';
import {
  handBackDelivery,
  hasPendingSuccessor,
  markDeliveryDelivered,
  markDeliveryFailed,
  scheduleDeliveryRetry,
  type ClaimedDeliveryRow,
} from '../../store/queries/callbacks.js';
import { appendLog, SEVERITY } from '../jobs/job-log.js';
import { readSettings } from '../settings.js';
import { CHANNELS, notify } from '../signals.js';
import { callbackBackoffMs, shouldRetryCallback } from './backoff.js';
import { describeCallback, formatSeconds } from './describe.js';
import type { AttemptOutcome } from './post-callback.js';

/** What to write for one attempt: the delivery's next state and the job log line. */
export type DeliveryOutcomePlan = { severity: number; message: string } & (
  | { kind: 'delivered' }
  | { kind: 'retry'; delayMs: number; lastError: string | null }
  | { kind: 'failed'; lastError: string | null }
);

/** Whether an attempt counts as delivered: a 2xx answer. */
export function isDelivered(outcome: AttemptOutcome): boolean {
  return outcome.status !== null && outcome.status >= 200 && outcome.status < 300;
}

/**
 * Decides what an attempt's outcome means: a 2xx answer is `delivered`; anything else (another
 * status, a redirect, a network error, a timeout) is a `retry` after {@link callbackBackoffMs}
 * while {@link shouldRetryCallback} allows, else `failed`. Pure.
 * @param retryLimit - the `callback_retry_limit` setting (not used for a 2xx answer).
 * @param random - source of backoff jitter in [0, 1).
 */
export function planDeliveryOutcome(
  row: Pick<ClaimedDeliveryRow, 'attempts' | 'body' | 'kind' | 'event' | 'target_url'>,
  outcome: AttemptOutcome,
  retryLimit: number,
  random: () => number,
): DeliveryOutcomePlan {
  const what = describeCallback(row);
  const result = outcome.status !== null ? `HTTP ${outcome.status}` : (outcome.error ?? 'no answer');
  if (isDelivered(outcome)) {
    return {
      kind: 'delivered',
      severity: SEVERITY.INFO,
      message: `${what} delivered: ${result} (attempt ${row.attempts}, ${outcome.durationMs} ms)`,
    };
  }
  const lastError = outcome.error ?? (outcome.status !== null ? `HTTP ${outcome.status}` : null);
  if (shouldRetryCallback(row.attempts, retryLimit)) {
    const delayMs = callbackBackoffMs(row.attempts, random);
    return {
      kind: 'retry',
      delayMs,
      lastError,
      severity: SEVERITY.WARN,
      message:
        `${what} attempt ${row.attempts} of ${retryLimit + 1} failed: ${result}; ` +
        `retrying in ${formatSeconds(delayMs)}`,
    };
  }
  return {
    kind: 'failed',
    lastError,
    severity: SEVERITY.ERROR,
    message:
      `${what} attempt ${row.attempts} failed: ${result}; giving up after ${row.attempts} ` +
      `attempt${row.attempts === 1 ? '' : 's'} (callback_retry_limit ${retryLimit})`,
  };
}

/**
 * Writes the outcome of one attempt in `tx`: the delivery's new state (only if this attempt still
 * holds its claim), the job's log lines (the definitions line before the first attempt's), and a
 * wake-up on `CHANNELS.callbacks` when a later callback of the job to that target is now the head.
 * A lost lease (another dispatcher took the delivery over, or the job was deleted) writes nothing
 * and is noted in the process log only.
 * @param now - the engine clock's time of the outcome.
 */
export async function recordDeliveryOutcome(
  tx: Queryable,
  row: ClaimedDeliveryRow,
  outcome: AttemptOutcome,
  { now, random, log }: { now: Date; random: () => number; log: Logger },
): Promise<void> {
  const retryLimit = isDelivered(outcome) ? 0 : (await readSettings(tx)).known.callback_retry_limit;
  const plan = planDeliveryOutcome(row, outcome, retryLimit, random);
  const claim = { id: row.id, attempts: row.attempts };
  let updated: number;
  switch (plan.kind) {
    case 'delivered':
      ({ rowCount: updated } = await markDeliveryDelivered.run(tx, {
        ...claim,
        now,
        status: outcome.status,
      }));
      break;
    case 'retry':
      ({ rowCount: updated } = await scheduleDeliveryRetry.run(tx, {
        ...claim,
        nextAttemptAt: new Date(now.getTime() + plan.delayMs),
        status: outcome.status,
        lastError: plan.lastError,
      }));
      break;
    case 'failed':
      ({ rowCount: updated } = await markDeliveryFailed.run(tx, {
        ...claim,
        status: outcome.status,
        lastError: plan.lastError,
      }));
      break;
  }
  if (updated === 0) {
    // The lease ran out and another dispatcher took the delivery over (or the job was deleted):
    // that dispatcher owns the outcome now; this late answer is only noted in the process log.
    const result = outcome.status !== null ? `HTTP ${outcome.status}` : (outcome.error ?? 'no answer');
    log.warn(
      { deliveryId: row.id, jobId: row.job_id, result },
      'callback dispatcher: lease lost; outcome dropped',
    );
    return;
  }
  await appendLog(tx, {
    now,
    jobId: row.job_id,
    taskId: row.task_id,
    progname: 'callback',
    severity: plan.severity,
    message: plan.message,
  });
  // The next callback of this job for this target is now the head: wake every dispatcher.
  const next = await hasPendingSuccessor.first(tx, {
    jobId: row.job_id,
    targetUrl: row.target_url,
    id: row.id,
  });
  if (next?.more) await notify(tx, CHANNELS.callbacks, row.job_id);
}

/**
 * Puts a delivery whose request was cut by shutdown back to `pending`, due at `now`, with the
 * attempt not counted, so the next dispatcher sends it.
 */
export async function handBack(db: Queryable, row: ClaimedDeliveryRow, now: Date): Promise<void> {
  await handBackDelivery.run(db, { id: row.id, attempts: row.attempts, now });
}
