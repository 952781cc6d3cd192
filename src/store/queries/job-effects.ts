/**
 * Statements that lock running jobs and write what happened to them: the lock of a batch of
 * results, the read of a job's tasks for advancing it, and {@link applyJobEffects} — the one
 * statement that writes every change of one or more locked jobs (attempt outcomes, task edges,
 * log lines, callbacks, finishes, wake-ups), whatever caused them.
 */
import type { WorkflowDefinition } from '../../workflows/types.js';
import { defineQuery } from './define-query.js';

/** The columns of a job that the runtime needs, as read from `jobs`. */
export interface RuntimeJobRow {
  id: number;
  client: string;
  workflow: string;
  priority: number;
  queue_state: string;
  content_id: string | null;
  /** Parameters with defaults applied (`jobs.resolved_parameters`). */
  resolved_parameters: Record<string, unknown>;
  /** The frozen workflow definition (`jobs.definition`). */
  definition: WorkflowDefinition;
  /** `common` or `client` (`jobs.definition_source`). */
  definition_source: string;
  /** 1 for the first run, +1 for each retry (`jobs.run`); read where a job-end body may be built. */
  run?: number;
  /** The task the last retry resumed from, or null (`jobs.retried_from`); as `run`. */
  retried_from?: string | null;
}

/**
 * Columns selected for a {@link RuntimeJobRow} (prefix `j.`): a fixed fragment for the statements
 * of the store that return runtime jobs.
 */
export const RUNTIME_JOB_COLUMNS =
  'j.id, j.client, j.workflow, j.priority, j.queue_state, j.content_id, j.resolved_parameters, j.definition, j.definition_source, j.run, j.retried_from';

/**
 * Locks the jobs `jobIds` `FOR NO KEY UPDATE` in id order (the order every batch of results takes
 * them in, so concurrent batches never deadlock) and returns their runtime columns. Does not
 * conflict with a claim's `FOR KEY SHARE`. No state edge.
 */
export const lockJobsForResults = defineQuery<{ jobIds: number[] }, RuntimeJobRow>(
  'lock-jobs-for-results',
  `SELECT ${RUNTIME_JOB_COLUMNS} FROM jobs j WHERE j.id = ANY($jobIds::bigint[]) ORDER BY j.id FOR NO KEY UPDATE`,
);

/** Locks one job `FOR UPDATE` (as break and pause do) and returns its runtime columns. No state edge. */
export const lockJobForAdvance = defineQuery<{ jobId: number }, RuntimeJobRow>(
  'lock-job-for-advance',
  `SELECT ${RUNTIME_JOB_COLUMNS} FROM jobs j WHERE j.id = $jobId FOR UPDATE`,
);

/** A task as advancing its job reads it. */
export interface JobTaskRow {
  job_id: number;
  id: number;
  name: string;
  queue: string;
  state: string;
  needs: string[];
  output: unknown;
  error: string | null;
}

/** Reads the tasks of `jobIds` (locked by the caller), by job then position. No lock, no edge. */
export const readJobTasks = defineQuery<{ jobIds: number[] }, JobTaskRow>(
  'read-job-tasks',
  `SELECT job_id, id, name, queue, state, needs, output, error FROM tasks
    WHERE job_id = ANY($jobIds::bigint[]) ORDER BY job_id, position, id`,
);

/** Parameters of {@link applyJobEffects}: parallel arrays, one group per kind of change. */
export interface ApplyJobEffectsParams {
  now: Date;
  /** Attempts to close (only while still `running`); `keepErrors`: keep an error already set. */
  attemptIds: number[];
  attemptStates: string[];
  attemptErrors: (string | null)[];
  attemptKeepErrors: boolean[];
  /**
   * Task edges of attempt outcomes, each taken only while the task is in `outcomeFrom` and runs
   * that attempt. `outcomeOutputs` null keeps the output; `outcomeSetErrors` false keeps the
   * error; `outcomeDelays` null keeps `run_after`, else `run_after = now + delay` seconds.
   */
  outcomeTaskIds: number[];
  outcomeAttemptIds: number[];
  outcomeFrom: string[];
  outcomeTo: string[];
  outcomeOutputs: (string | null)[];
  outcomeSetErrors: boolean[];
  outcomeErrors: (string | null)[];
  outcomeDelays: (number | null)[];
  outcomeFinished: boolean[];
  /** Task callbacks (bodies as JSON text), inserted in this order. */
  taskCallbackJobIds: number[];
  taskCallbackTaskIds: number[];
  taskCallbackEvents: string[];
  taskCallbackTargets: string[];
  taskCallbackBodies: string[];
  /** Tasks released (`readyFrom` → ready, run_after now); their queues are woken on `tasksChannel`. */
  ready: number[];
  readyFrom: string[];
  tasksChannel: string;
  /** Tasks skipped (`skipFrom` → skipped). */
  skip: number[];
  skipFrom: string[];
  /** Jobs finished (`finishFrom` → `finishTo`), unless one of their listed skips did not happen. */
  finishJobIds: number[];
  finishFailed: boolean[];
  finishOutputs: string[];
  finishErrors: (string | null)[];
  finishFrom: string[];
  finishTo: string;
  /**
   * Log lines in this order; `logIfFinished` / `logIfSkipped`: only when that finish / skip
   * happened. `logEarly`: written before the skips (unconditional, and no conditional line of
   * its job before it), so it precedes what a claim that a skip waits for writes.
   */
  logJobIds: number[];
  logTaskIds: number[];
  logSeverities: number[];
  logPrognames: string[];
  logMessages: string[];
  logIfFinished: (number | null)[];
  logIfSkipped: (number | null)[];
  logEarly: boolean[];
  /** Job-end callbacks of finishing jobs (bodies complete, JSON text); once per run of a job and target. */
  jobCallbackJobIds: number[];
  jobCallbackStatuses: string[];
  jobCallbackTargets: string[];
  jobCallbackBodies: string[];
  /** Enqueued whether or not its job finishes here (a broken job whose cleanup tasks ended). */
  jobCallbackAlways: boolean[];
  /** Wake-ups sent whatever else happens. */
  noticeChannels: string[];
  noticePayloads: string[];
  callbacksChannel: string;
  jobEndedChannel: string;
  admissionChannel: string;
  /** Wake admission even if no job finishes. */
  wakeAdmission: boolean;
}

/**
 * Writes every change of one or more jobs the caller has locked, in one statement (the text never
 * changes: a part with empty arrays does nothing). In order of dependence:
 * - attempts closed (`state = 'running'` in the WHERE: a closed attempt is never reopened);
 * - the attempt outcomes' task edges (from the edge's state and the attempt's id in the WHERE);
 *   a task that becomes `succeeded` gets `progress = 1` (any other outcome keeps its progress);
 * - task callbacks and the early log lines, inserted before the skips below run, so that they
 *   always get smaller ids than the `start` callback and log lines of a sibling that a claim
 *   takes while the skip waits for that sibling's row (the skip reads `tc` and `le` to make
 *   that order sure);
 * - tasks released and skipped (their edges' states in the WHERE; a `ready` task a claim took
 *   meanwhile is left to run);
 * - finishes (job edge `finishFrom → finishTo`), only when every listed skip of that job took
 *   place, so a job never finishes while a task it meant to skip runs;
 * - the other log lines, after the early ones (a finish's or a skip's lines only when it took
 *   place), job-end callbacks (once per run of a job and target: unique index), and the wake-ups
 *   (delivered at commit).
 * Locks: the task, attempt and job rows it changes. Edges: those passed in.
 * @returns one row per finished job (`id` null when none finished).
 */
export const applyJobEffects = defineQuery<ApplyJobEffectsParams, { id: number | null; notified: number }>(
  'apply-job-effects',
  `
WITH y AS (SELECT * FROM unnest($logJobIds::bigint[], $logTaskIds::bigint[], $logSeverities::smallint[],
                                 $logPrognames::text[], $logMessages::text[], $logIfFinished::bigint[],
                                 $logIfSkipped::bigint[], $logEarly::boolean[])
                 WITH ORDINALITY AS y(j, t, s, p, m, only_if, only_if_skipped, early, n)),
     le AS (INSERT INTO logs (job_id, task_id, severity, progname, message, visible, created_at, updated_at)
            SELECT y.j, y.t, y.s, y.p, y.m, true, $now::timestamptz, $now::timestamptz
              FROM y WHERE y.early ORDER BY y.n
            RETURNING job_id),
     tc AS (INSERT INTO callback_deliveries (job_id, task_id, kind, event, target_url, body)
            SELECT c.j, c.t, 'task', c.e, c.u, c.b::jsonb
              FROM unnest($taskCallbackJobIds::bigint[], $taskCallbackTaskIds::bigint[], $taskCallbackEvents::text[],
                          $taskCallbackTargets::text[], $taskCallbackBodies::text[])
                   WITH ORDINALITY AS c(j, t, e, u, b, n)
             ORDER BY c.n
            RETURNING job_id),
     r AS (UPDATE tasks SET state = 'ready', run_after = $now::timestamptz, updated_at = $now::timestamptz
            WHERE id = ANY($ready::bigint[]) AND state = ANY($readyFrom::text[]) RETURNING queue),
     rn AS (SELECT pg_notify($tasksChannel, q) FROM (SELECT DISTINCT queue AS q FROM r) AS queues),
     s AS (UPDATE tasks SET state = 'skipped', finished_at = $now::timestamptz, updated_at = $now::timestamptz
            WHERE id = ANY($skip::bigint[]) AND state = ANY($skipFrom::text[])
              AND (SELECT count(*) FROM tc) + (SELECT count(*) FROM le) >= 0
           RETURNING id),
     ua AS (UPDATE attempts SET state = x.state, finished_at = $now::timestamptz,
                   error = CASE WHEN x.keep_error THEN COALESCE(attempts.error, x.error) ELSE x.error END
              FROM unnest($attemptIds::bigint[], $attemptStates::text[], $attemptErrors::text[],
                          $attemptKeepErrors::boolean[]) AS x(id, state, error, keep_error)
             WHERE attempts.id = x.id AND attempts.state = 'running'
            RETURNING attempts.id),
     ut AS (UPDATE tasks SET state = o.to_state,
                   output = CASE WHEN o.output IS NULL THEN tasks.output ELSE o.output::jsonb END,
                   error = CASE WHEN o.set_error THEN o.error ELSE tasks.error END,
                   run_after = CASE WHEN o.delay IS NULL THEN tasks.run_after
                                    ELSE $now::timestamptz + make_interval(secs => o.delay) END,
                   finished_at = CASE WHEN o.finished THEN $now::timestamptz ELSE tasks.finished_at END,
                   progress = CASE WHEN o.to_state = 'succeeded' THEN 1 ELSE tasks.progress END,
                   progress_at = CASE WHEN o.to_state = 'succeeded' THEN $now::timestamptz ELSE tasks.progress_at END,
                   updated_at = $now::timestamptz
              FROM unnest($outcomeTaskIds::bigint[], $outcomeAttemptIds::bigint[], $outcomeFrom::text[],
                          $outcomeTo::text[], $outcomeOutputs::text[], $outcomeSetErrors::boolean[],
                          $outcomeErrors::text[], $outcomeDelays::double precision[], $outcomeFinished::boolean[])
                   AS o(task_id, attempt_id, from_state, to_state, output, set_error, error, delay, finished)
             WHERE tasks.id = o.task_id AND tasks.state = o.from_state AND tasks.current_attempt_id = o.attempt_id
            RETURNING tasks.id),
     f AS (UPDATE jobs SET queue_state = $finishTo, failed = x.failed, finished_at = $now::timestamptz,
                  updated_at = $now::timestamptz, outputs = x.outputs::jsonb, error = x.error
             FROM unnest($finishJobIds::bigint[], $finishFailed::boolean[], $finishOutputs::text[],
                         $finishErrors::text[]) AS x(id, failed, outputs, error)
            WHERE jobs.id = x.id AND jobs.queue_state = ANY($finishFrom::text[])
              AND NOT EXISTS (SELECT 1 FROM tasks tt
                               WHERE tt.job_id = x.id AND tt.id = ANY($skip::bigint[])
                                 AND tt.id NOT IN (SELECT id FROM s))
           RETURNING jobs.id),
     l AS (INSERT INTO logs (job_id, task_id, severity, progname, message, visible, created_at, updated_at)
           SELECT y.j, y.t, y.s, y.p, y.m, true, $now::timestamptz, $now::timestamptz FROM y
            WHERE NOT y.early AND (SELECT count(*) FROM le) >= 0
              AND (y.only_if IS NULL OR y.only_if IN (SELECT id FROM f))
              AND (y.only_if_skipped IS NULL OR y.only_if_skipped IN (SELECT id FROM s))
            ORDER BY y.n),
     jc AS (INSERT INTO callback_deliveries (job_id, task_id, kind, event, target_url, body, run)
            SELECT c.j, 0, 'job', c.e, c.u, c.b::jsonb, (SELECT jr.run FROM jobs jr WHERE jr.id = c.j)
              FROM unnest($jobCallbackJobIds::bigint[], $jobCallbackStatuses::text[], $jobCallbackTargets::text[],
                          $jobCallbackBodies::text[], $jobCallbackAlways::boolean[]) WITH ORDINALITY AS c(j, e, u, b, a, n)
             WHERE c.a OR c.j IN (SELECT id FROM f)
             ORDER BY c.n
            ON CONFLICT (job_id, run, target_url) WHERE kind = 'job' DO NOTHING
            RETURNING job_id),
     nn AS (SELECT pg_notify(w.c, w.p) FROM unnest($noticeChannels::text[], $noticePayloads::text[]) AS w(c, p)),
     cn AS (SELECT pg_notify($callbacksChannel, j::text)
              FROM (SELECT job_id AS j FROM tc UNION SELECT job_id FROM jc) AS cb),
     en AS (SELECT pg_notify($jobEndedChannel, id::text) FROM f),
     an AS (SELECT pg_notify($admissionChannel, 'job finished')
             WHERE $wakeAdmission::boolean OR EXISTS (SELECT 1 FROM f))
SELECT f.id,
       (SELECT count(*) FROM rn) + (SELECT count(*) FROM nn) + (SELECT count(*) FROM cn)
         + (SELECT count(*) FROM en) + (SELECT count(*) FROM an) AS notified
  FROM (SELECT 1) AS one LEFT JOIN f ON true`,
);

/**
 * Enqueues a job-end callback for every target, once per run of the job and target (a unique index makes a
 * second call a no-op), and wakes the dispatchers when one was new. No lock beyond the inserted
 * rows, no state edge.
 */
export const insertJobEndCallbacks = defineQuery<
  { jobId: number; status: string; body: string; targets: string[]; callbacksChannel: string },
  { n: number; notified: number }
>(
  'insert-job-end-callbacks',
  `WITH i AS (INSERT INTO callback_deliveries (job_id, task_id, kind, event, target_url, body, run)
              SELECT $jobId, 0, 'job', $status, t, $body::jsonb, (SELECT jr.run FROM jobs jr WHERE jr.id = $jobId)
                FROM unnest($targets::text[]) AS t
              ON CONFLICT (job_id, run, target_url) WHERE kind = 'job' DO NOTHING
              RETURNING 1),
        n AS (SELECT pg_notify($callbacksChannel, $jobId::text) FROM (SELECT 1 FROM i LIMIT 1) AS any_row)
   SELECT (SELECT count(*) FROM i)::int AS n, (SELECT count(*) FROM n) AS notified`,
);
