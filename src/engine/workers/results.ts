/**
 * Recording the end of a task attempt (SPEC section 6): success, failure (retry or final), and
 * hand-back at worker shutdown. Each is one transaction that first locks the job row — the same
 * lock that break, pause and `advanceJob` take — and then changes the task only
 * `WHERE current_attempt_id = <attempt> AND state = 'running'` with the attempt still `running`:
 * zero rows means a newer attempt, a break or a stall recovery got there first, and the late
 * result is dropped (`stale`), never written over the newer state.
 */
import type { Queryable } from '../../store/executor.js';
import { callbackTargets, enqueueTaskEvent, type TaskEventBody } from '../callbacks/enqueue.js';
import type { EngineContext } from '../context.js';
import { advanceJob, advanceLockedJobs, emptyEffects, type AdvanceTaskRow } from '../controller/advance.js';
import { taskDefinition, type RuntimeJob, RUNTIME_JOB_COLUMNS } from '../controller/job-scope.js';
import { appendLog, SEVERITY } from '../jobs/job-log.js';
import { readSettings } from '../settings.js';
import { CHANNELS, notify } from '../signals.js';

/** Longest retry delay applied (a year); a larger setting must not overflow the timestamp. */
export const MAX_DELAY_SECONDS = 365 * 24 * 3600;

/** Which attempt a result belongs to. */
export interface AttemptRef {
  attemptId: number;
  taskId: number;
  jobId: number;
}

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

/** Outcome of recording a failure. */
export type FailureOutcome = 'retry' | 'failed' | 'stale';

interface LockedTask {
  job: RuntimeJob;
  name: string;
  queue: string;
  number: number;
}

/**
 * Locks the job row (the lock every writer of a job's tasks takes first) and checks, in the same
 * statement, that `ref` is still the task's live attempt: task `running` with
 * `current_attempt_id = ref.attemptId`, attempt `running`. Returns null (and closes the attempt
 * as `closeAs` if it is somehow still `running`) when it is not.
 */
async function lockLiveAttempt(
  tx: Queryable,
  ref: AttemptRef,
  closeAs: 'cancelled' | 'failed' | 'stalled',
  closeError: string,
): Promise<LockedTask | null> {
  // The lock first, in a statement of its own: the check below then reads with a snapshot taken
  // after the lock was granted, so it sees what the previous holder of the lock committed.
  await tx.query(`SELECT 1 FROM jobs WHERE id = $1 FOR NO KEY UPDATE`, [ref.jobId]);
  const { rows } = await tx.query<
    RuntimeJob & { task_name: string | null; task_queue: string; attempt_number: number | null }
  >(
    `SELECT ${RUNTIME_JOB_COLUMNS}, t.name AS task_name, t.queue AS task_queue, a.number AS attempt_number
       FROM jobs j
       LEFT JOIN tasks t ON t.id = $2 AND t.job_id = j.id AND t.current_attempt_id = $1 AND t.state = 'running'
       LEFT JOIN attempts a ON a.id = $1 AND a.task_id = t.id AND a.state = 'running'
      WHERE j.id = $3`,
    [ref.attemptId, ref.taskId, ref.jobId],
  );
  const row = rows[0];
  if (!row || row.task_name === null || row.attempt_number === null) {
    await tx.query(
      `UPDATE attempts SET state = $2, finished_at = now(), error = COALESCE(error, $3) WHERE id = $1 AND state = 'running'`,
      [ref.attemptId, closeAs, closeError],
    );
    return null;
  }
  const { task_name, task_queue, attempt_number, ...job } = row;
  return { job, name: task_name, queue: task_queue, number: attempt_number };
}

/** A successful attempt to record: which attempt, and its output as JSON text. */
export interface SuccessResult extends AttemptRef {
  outputJson: string;
}

/**
 * Locks the jobs `jobIds` in `tx`, in id order (the order every batch of results takes them in,
 * so concurrent batches never deadlock), and returns their runtime columns by id. Locking a job
 * this transaction already holds does not wait.
 */
export async function lockJobs(tx: Queryable, jobIds: number[]): Promise<Map<number, RuntimeJob>> {
  const { rows } = await tx.query<RuntimeJob>(
    `SELECT ${RUNTIME_JOB_COLUMNS} FROM jobs j WHERE j.id = ANY($1::bigint[]) ORDER BY j.id FOR NO KEY UPDATE`,
    [[...new Set(jobIds)]],
  );
  return new Map(rows.map((r) => [Number(r.id), r]));
}

/**
 * Records successful attempts in `tx`, however many, in three round trips: the jobs are locked
 * ({@link lockJobs}; skipped for jobs given in `locked`); one statement closes every live attempt
 * as `succeeded`, sets its task `succeeded` with the output, logs "'<task>' completed
 * successfully" and reads the tasks of those jobs; one statement ({@link applyEffects}, through
 * {@link advanceLockedJobs}) then makes the next tasks ready, finishes jobs whose tasks have all
 * ended, and enqueues the `complete` and job-end callbacks.
 *
 * An attempt is live when its task is `running` with `current_attempt_id` = the attempt and the
 * attempt is `running`; a result for any other attempt is dropped (`stale`) and the attempt, if
 * still `running`, closed as `cancelled`. The live check reads after the jobs are locked, and
 * every writer of a job's tasks takes that lock first, so a stale result never overwrites a newer
 * state.
 * @param locked - jobs already locked by `tx`, with their runtime columns (read after locking).
 * @returns per result, in the order given: `recorded` or `stale`.
 * @throws the driver's error; the caller's transaction then rolls back and nothing is written.
 */
export async function writeSuccesses(
  tx: Queryable,
  ctx: EngineContext,
  results: SuccessResult[],
  locked?: Map<number, RuntimeJob>,
): Promise<('recorded' | 'stale')[]> {
  if (results.length === 0) return [];
  const jobs = new Map(locked ?? []);
  const missing = results.map((r) => r.jobId).filter((id) => !jobs.has(id));
  if (missing.length > 0) for (const [id, j] of await lockJobs(tx, missing)) jobs.set(id, j);
  const { rows } = await tx.query<
    AdvanceTaskRow & { job_id: number; done_attempt: number | null; attempt_number: number | null }
  >(
    `WITH i AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[])
                       AS x(attempt_id, task_id, job_id, output)),
          live AS (SELECT i.attempt_id, i.task_id, i.job_id, i.output, t.name, a.number
                     FROM tasks t
                     JOIN i ON i.task_id = t.id AND i.job_id = t.job_id AND i.attempt_id = t.current_attempt_id
                     JOIN attempts a ON a.id = t.current_attempt_id AND a.task_id = t.id AND a.state = 'running'
                    WHERE t.id = ANY($2::bigint[]) AND t.state = 'running'),
          ua AS (UPDATE attempts SET finished_at = now(),
                        state = CASE WHEN live.attempt_id IS NULL THEN 'cancelled' ELSE 'succeeded' END,
                        error = CASE WHEN live.attempt_id IS NULL
                                     THEN COALESCE(attempts.error, 'result arrived after the attempt was superseded')
                                     ELSE attempts.error END
                   FROM i LEFT JOIN live ON live.attempt_id = i.attempt_id
                  WHERE attempts.id = ANY($1::bigint[]) AND attempts.id = i.attempt_id
                    AND attempts.state = 'running'),
          ut AS (UPDATE tasks SET state = 'succeeded', output = live.output::jsonb, error = NULL,
                        finished_at = now(), updated_at = now()
                   FROM live WHERE tasks.id = live.task_id),
          ul AS (INSERT INTO logs (job_id, task_id, severity, progname, message, visible)
                 SELECT job_id, task_id, 1, 'worker', chr(39) || name || chr(39) || ' completed successfully', true
                   FROM live ORDER BY job_id, task_id)
     SELECT t.job_id, t.id, t.name, t.queue, t.state, t.needs, t.output, t.error,
            l.attempt_id AS done_attempt, l.number AS attempt_number
       FROM tasks t LEFT JOIN live l ON l.task_id = t.id
      WHERE t.job_id = ANY($3::bigint[])
      ORDER BY t.job_id, t.position, t.id`,
    [
      results.map((r) => r.attemptId),
      results.map((r) => r.taskId),
      results.map((r) => r.jobId),
      results.map((r) => r.outputJson),
    ],
  );
  // The read saw the tasks as they were before the statement's own changes: apply them here.
  const byJob = new Map<number, AdvanceTaskRow[]>();
  const recorded = new Set<number>();
  const outputOf = new Map(results.map((r) => [r.attemptId, r.outputJson]));
  const effects = emptyEffects();
  const trigger = new Map<number, number>();
  const now = new Date().toISOString();
  for (const { job_id, done_attempt, attempt_number, ...t } of rows) {
    const jobId = Number(job_id);
    let list = byJob.get(jobId);
    if (!list) byJob.set(jobId, (list = []));
    list.push(t);
    if (done_attempt === null) continue;
    recorded.add(Number(done_attempt));
    t.state = 'succeeded';
    t.output = JSON.parse(outputOf.get(Number(done_attempt)) ?? 'null') as unknown;
    t.error = null;
    trigger.set(jobId, t.id);
    const job = jobs.get(jobId);
    if (!job) continue;
    const body: TaskEventBody = {
      job_id: jobId,
      task_id: t.id,
      task_name: t.name,
      workflow: job.workflow,
      event: 'complete',
      content_id: job.content_id,
      message: `'${t.name}' completed successfully`,
      time: now,
      client: job.client,
      attempt: Number(attempt_number),
    };
    const text = JSON.stringify(body);
    for (const target of callbackTargets(job.resolved_parameters ?? {}))
      effects.taskCallbacks.push({ jobId, taskId: t.id, event: 'complete', target, body: text });
  }
  const advancing = [...trigger.keys()].flatMap((id) => {
    const j = jobs.get(id);
    return j ? [j] : [];
  });
  await advanceLockedJobs(tx, ctx, advancing, { trigger, preloaded: byJob, effects });
  return results.map((r) => (recorded.has(r.attemptId) ? 'recorded' : 'stale'));
}

/**
 * Records one successful attempt in `tx` (see {@link writeSuccesses}).
 * @param outputJson - the output as JSON text.
 * @returns `recorded`, or `stale` when the attempt is no longer the task's running attempt.
 */
export async function writeSuccess(
  tx: Queryable,
  ctx: EngineContext,
  ref: AttemptRef,
  outputJson: string,
): Promise<'recorded' | 'stale'> {
  return (await writeSuccesses(tx, ctx, [{ ...ref, outputJson }]))[0]!;
}

/**
 * Records a successful attempt in its own transaction (see {@link writeSuccess}).
 * @throws the driver's error (nothing is written then; the caller may retry).
 */
export async function recordSuccess(
  ctx: EngineContext,
  ref: AttemptRef,
  output: unknown,
): Promise<'recorded' | 'stale'> {
  const json = JSON.stringify(output === undefined ? null : output);
  return ctx.db.transaction((tx) => writeSuccess(tx, ctx, ref, json));
}

/**
 * Records a failed (or stalled) attempt in `tx`. When retries remain — fewer failed/stalled
 * attempts than `retry_limit` + 1 (the task's value, else the setting), and the failure is not
 * permanent — the task goes back to `ready` with `run_after = now() + retry_delay` (or the
 * RetryAfterError delay) and "retrying in Ns (attempt k of n)" is logged. Otherwise the task fails
 * for good: the `fail` callback is enqueued and the job advanced (which skips the rest of the job
 * unless the task has `continue_on_error`). No retry either when another task has already failed
 * the job (failed or cancelled without `continue_on_error`): a task that was running then may
 * end, but does not start again. Cancelled attempts (worker shutdown) never count against
 * `retry_limit`.
 * @returns `retry`, `failed`, or `stale` when the attempt is no longer the task's running attempt.
 */
export async function writeFailure(
  tx: Queryable,
  ctx: EngineContext,
  ref: AttemptRef,
  failure: AttemptFailure,
): Promise<FailureOutcome> {
  const attemptState = failure.attemptState ?? 'failed';
  const live = await lockLiveAttempt(
    tx,
    ref,
    attemptState === 'stalled' ? 'stalled' : 'cancelled',
    failure.error,
  );
  if (!live) return 'stale';
  const def = taskDefinition(live.job, live.name);
  const { known } = await readSettings(tx);
  const retryLimit = def?.retry_limit ?? known.retry_limit;
  const retryDelay = failure.retryAfterSeconds ?? def?.retry_delay ?? known.retry_delay;
  // Close the attempt and count the task's failed/stalled attempts (this one included).
  // Also read which other tasks of the job have failed: once one has failed the job, a task
  // still running when that happened may end, but is not started again.
  const counted = await tx.query<{ n: number; ended_badly: string[] }>(
    `WITH a AS (UPDATE attempts SET state = $2, finished_at = now(), error = $3 WHERE id = $1)
     SELECT (SELECT count(*) + 1 FROM attempts WHERE task_id = $4 AND id <> $1 AND state IN ('failed', 'stalled')) AS n,
            ARRAY(SELECT name FROM tasks WHERE job_id = $5 AND id <> $4 AND state IN ('failed', 'cancelled')
                   ORDER BY position) AS ended_badly`,
    [ref.attemptId, attemptState, failure.error, ref.taskId, ref.jobId],
  );
  const failedAttempts = Number(counted.rows[0]?.n ?? 1);
  const failedBy = (counted.rows[0]?.ended_badly ?? []).find(
    (name) => taskDefinition(live.job, name)?.continue_on_error !== true,
  );
  const retriesLeft = !failure.permanent && failedAttempts <= retryLimit;
  const retry = retriesLeft && failedBy === undefined;
  const what = attemptState === 'stalled' ? 'stalled' : 'failed';
  if (retry) {
    await tx.query(
      `UPDATE tasks SET state = 'ready', error = $2, updated_at = now(),
              run_after = now() + make_interval(secs => $3::double precision)
        WHERE id = $1`,
      [ref.taskId, failure.error, Math.min(Math.max(0, retryDelay), MAX_DELAY_SECONDS)],
    );
    await appendLog(tx, {
      jobId: ref.jobId,
      taskId: ref.taskId,
      severity: SEVERITY.WARN,
      progname: 'worker',
      message: `Task '${live.name}' ${what}: ${failure.error}; retrying in ${fmtSeconds(retryDelay)}s (attempt ${failedAttempts + 1} of ${retryLimit + 1})`,
    });
    // `<queue> retry` tells workers to re-read the earliest due time.
    await notify(tx, CHANNELS.tasks, `${live.queue} retry`);
    if (live.job.queue_state === 'paused') await notify(tx, CHANNELS.admission, 'paused job task ended');
    return 'retry';
  }
  await tx.query(
    `UPDATE tasks SET state = 'failed', error = $2, finished_at = now(), updated_at = now() WHERE id = $1`,
    [ref.taskId, failure.error],
  );
  const continues = def?.continue_on_error === true;
  const message = `'${live.name}' ${what}: ${failure.error}${
    failure.permanent
      ? ' (permanent failure, not retried)'
      : retriesLeft
        ? ` (not retried: task '${failedBy}' has already failed the job)`
        : failedAttempts > 1
          ? ` (after ${failedAttempts} attempts)`
          : ''
  }${continues ? '; continuing (continue_on_error)' : ''}`;
  await appendLog(tx, {
    jobId: ref.jobId,
    taskId: ref.taskId,
    severity: continues ? SEVERITY.WARN : SEVERITY.ERROR,
    progname: 'worker',
    message,
  });
  await enqueueTaskEvent(tx, callbackTargets(live.job.resolved_parameters ?? {}), {
    ...eventBase(live, ref),
    event: 'fail',
    message,
    time: new Date().toISOString(),
  });
  await advanceJob(tx, ctx, ref.jobId, ref.taskId, live.job);
  return 'failed';
}

/**
 * Records a failed (or stalled) attempt in its own transaction (see {@link writeFailure}).
 * @throws the driver's error (nothing is written then).
 */
export async function recordFailure(
  ctx: EngineContext,
  ref: AttemptRef,
  failure: AttemptFailure,
): Promise<FailureOutcome> {
  return ctx.db.transaction((tx) => writeFailure(tx, ctx, ref, failure));
}

/**
 * Gives a running attempt back at worker shutdown, in `tx`: attempt `cancelled` ("worker
 * shutdown"), task back to `ready` at once, without using a retry (cancelled attempts are not
 * counted).
 * @returns `handed-back`, or `stale` when the attempt had already ended.
 */
export async function writeHandBack(
  tx: Queryable,
  ref: AttemptRef,
  reason = 'worker shutdown',
): Promise<'handed-back' | 'stale'> {
  const live = await lockLiveAttempt(tx, ref, 'cancelled', reason);
  if (!live) return 'stale';
  await tx.query(
    `WITH a AS (UPDATE attempts SET state = 'cancelled', finished_at = now(), error = $3 WHERE id = $1)
     UPDATE tasks SET state = 'ready', run_after = now(), updated_at = now() WHERE id = $2`,
    [ref.attemptId, ref.taskId, reason],
  );
  await appendLog(tx, {
    jobId: ref.jobId,
    taskId: ref.taskId,
    severity: SEVERITY.WARN,
    progname: 'worker',
    message: `Task '${live.name}' handed back (${reason}); it will run again without using a retry`,
  });
  await notify(tx, CHANNELS.tasks, live.queue);
  if (live.job.queue_state === 'paused') await notify(tx, CHANNELS.admission, 'paused job task handed back');
  return 'handed-back';
}

/** Gives a running attempt back in its own transaction (see {@link writeHandBack}). */
export async function handBackAttempt(
  ctx: EngineContext,
  ref: AttemptRef,
  reason = 'worker shutdown',
): Promise<'handed-back' | 'stale'> {
  return ctx.db.transaction((tx) => writeHandBack(tx, ref, reason));
}

/**
 * Closes an attempt that this worker found superseded (its task moved on without it): state
 * `cancelled` if it is somehow still `running`. Touches nothing else.
 */
export async function closeLostAttempt(q: Queryable, attemptId: number, reason: string): Promise<void> {
  await q.query(
    `UPDATE attempts SET state = 'cancelled', finished_at = now(), error = COALESCE(error, $2) WHERE id = $1 AND state = 'running'`,
    [attemptId, reason],
  );
}

function eventBase(live: LockedTask, ref: AttemptRef) {
  return {
    job_id: ref.jobId,
    task_id: ref.taskId,
    task_name: live.name,
    workflow: live.job.workflow,
    content_id: live.job.content_id,
    client: live.job.client,
    attempt: live.number,
  };
}

function fmtSeconds(s: number): string {
  return Number.isInteger(s) ? String(s) : s.toFixed(3).replace(/0+$/, '');
}
