/**
 * The hand-off of an ended attempt to the result writer: what its end means (success, failure,
 * timeout, cancel, hand-back at shutdown, superseded), and writing it, tried again while the
 * database cannot be reached.
 */
import { isStoreConnectionError } from '../../store/connection-errors.js';
import { sleep } from '../clock.js';
import type { EngineContext } from '../context.js';
import { writeRetryPauseMs } from '../retry-pauses.js';
import type { EngineMetrics } from '../metrics/metrics.js';
import { errorText } from '../controller/advance.js';
import { PermanentSetupError, type AbortReason } from './attempt-errors.js';
import type { ClaimedTask } from './claim.js';
import type { ResultWriter } from './result-writer.js';
import { closeLostAttempt, type AttemptRef } from './results.js';

/** What a handler did: returned `output`, or threw `error`. */
export type HandlerOutcome = { ok: true; output: unknown } | { ok: false; error: unknown };

/** An ended attempt, as the attempt runner hands it over. */
export interface EndedAttempt {
  task: ClaimedTask;
  ref: AttemptRef;
  /** Why it was aborted, or null when its handler ended by itself. */
  reason: AbortReason | null;
  outcome: HandlerOutcome;
  /** The task's `timeout` in seconds, for the "timed out after" message. */
  timeoutSeconds: number | undefined;
  /** How long the handler ran (ms, from its preparation to its end), for the task duration metric. */
  durationMs?: number;
}

/** Records ended attempts through the result writer. */
export interface AttemptOutcome {
  /**
   * Writes `ended`'s result: a stale one (the attempt is no longer the task's live attempt) is
   * dropped and logged at debug level.
   * @throws the writer's error when the database stayed unreachable for 60 s, or another error
   *   came five tries in a row (the attempt then stops heart-beating and stall recovery retries
   *   its task).
   */
  record(ended: EndedAttempt): Promise<void>;
  /** Waits until every result handed to the writer is written. */
  drain(): Promise<void>;
}

/** Tries of a result write that fails for another reason than a lost database connection. */
const WRITE_TRIES = 5;

/**
 * How long (ms) a result write that fails because the database cannot be reached is tried again,
 * from its first failure: longer than a database restart or fail-over usually takes, and past the
 * default `stall_timeout` (30 s), after which stall recovery has handed the task on and the late
 * write is dropped as stale anyway.
 */
const UNREACHABLE_WRITE_WINDOW_MS = 60_000;

/** Creates the {@link AttemptOutcome} over `writer`. */
export function createAttemptOutcome(ctx: EngineContext, writer: ResultWriter): AttemptOutcome {
  /**
   * A result whose write fails is tried again: while the database cannot be reached, for up to
   * {@link UNREACHABLE_WRITE_WINDOW_MS}, so an outage of a few seconds does not leave the task to
   * stall recovery; for any other error, {@link WRITE_TRIES} times in all.
   */
  const writeWithRetries = async (ended: EndedAttempt, write: () => Promise<string>): Promise<void> => {
    let firstFailureAt: number | null = null;
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await write();
        if (ctx.metrics) recordAttemptMetrics(ctx.metrics, ended, result);
        if (result === 'stale')
          ctx.logger.debug(
            { jobId: ended.ref.jobId, taskId: ended.ref.taskId, attemptId: ended.ref.attemptId },
            'attempt result dropped: the attempt is no longer the running one',
          );
        return;
      } catch (err) {
        const now = ctx.clock.now().getTime();
        firstFailureAt ??= now;
        const retry = isStoreConnectionError(err)
          ? now - firstFailureAt < UNREACHABLE_WRITE_WINDOW_MS
          : attempt < WRITE_TRIES;
        if (!retry) throw err;
        ctx.logger.warn(
          { err, attemptId: ended.ref.attemptId },
          'writing an attempt result failed; retrying',
        );
        await sleep(ctx.clock, writeRetryPauseMs(attempt));
      }
    }
  };

  return {
    async record(ended) {
      const { ref, outcome } = ended;
      if (ended.reason === null && outcome.ok) {
        const json = outputJson(outcome.output);
        if ('json' in json) {
          await writeWithRetries(ended, () => writer.success({ ...ref, outputJson: json.json }));
          return;
        }
        const failure = { error: `the handler's output is not JSON: ${json.problem}`, permanent: true };
        await writeWithRetries(ended, () => writer.failure(ref, failure));
        return;
      }
      await writeWithRetries(ended, writeFor(ctx, writer, ended));
    },
    drain: () => writer.drain(),
  };
}

/**
 * The write of an aborted attempt or a handler's failure (everything but a success), batched
 * with the writer's other outcomes.
 */
function writeFor(ctx: EngineContext, writer: ResultWriter, ended: EndedAttempt): () => Promise<string> {
  const { ref, reason, outcome } = ended;
  switch (reason) {
    case 'shutdown':
      return () => writer.handBack(ref);
    case 'lost':
      return () =>
        writer.write(ref.jobId, async (tx) => {
          await closeLostAttempt(tx, ref.attemptId, 'attempt superseded', ctx.clock.now());
          return 'stale';
        });
    case 'timeout':
      return () => writer.failure(ref, { error: `timed out after ${ended.timeoutSeconds ?? '?'}s` });
    case 'cancel':
      return () => writer.failure(ref, { error: 'attempt cancelled' });
    case null:
      return () => writer.failure(ref, describeFailure(outcome.ok ? undefined : outcome.error));
  }
}

/**
 * Counts a written attempt result (after its commit): `recorded` → task succeeded; `retry` →
 * an attempt failure and a retry; `failed` → an attempt failure and a failed task. Stale results
 * and hand-backs count nothing.
 */
function recordAttemptMetrics(m: EngineMetrics, ended: EndedAttempt, result: string): void {
  const workflow = ended.task.job.workflow;
  const task = ended.task.name;
  const outcome =
    result === 'recorded'
      ? 'succeeded'
      : result === 'retry'
        ? 'retry'
        : result === 'failed'
          ? 'failed'
          : null;
  if (outcome === null) return;
  if (ended.durationMs !== undefined)
    m.taskDuration.labels(workflow, task, outcome).observe(ended.durationMs / 1000);
  if (outcome === 'succeeded') {
    m.tasksFinished.labels(workflow, task, 'succeeded').inc();
    return;
  }
  m.attemptFailures.labels(workflow, task).inc();
  if (outcome === 'retry') m.retries.labels(workflow, task).inc();
  else m.tasksFinished.labels(workflow, task, 'failed').inc();
}

/** The handler's output as JSON text (`undefined` counts as null), or why it is not JSON. */
function outputJson(output: unknown): { json: string } | { problem: string } {
  try {
    return { json: JSON.stringify(output === undefined ? null : output) };
  } catch (err) {
    return { problem: errorText(err) };
  }
}

/**
 * Maps a thrown value to a failure: a {@link PermanentSetupError}, or a `PermanentTaskError`
 * (by name, so a module handler's own copy of the class counts), is not retried; a
 * `RetryAfterError` sets the delay.
 */
export function describeFailure(err: unknown): {
  error: string;
  permanent?: boolean;
  retryAfterSeconds?: number;
} {
  const e = err as { name?: unknown; retryAfterSeconds?: unknown } | null;
  const error = errorText(err);
  if (err instanceof PermanentSetupError || (e && e.name === 'PermanentTaskError'))
    return { error, permanent: true };
  if (
    e &&
    e.name === 'RetryAfterError' &&
    typeof e.retryAfterSeconds === 'number' &&
    e.retryAfterSeconds >= 0
  )
    return { error, retryAfterSeconds: e.retryAfterSeconds };
  return { error };
}
