/**
 * Task statements of the workers: claiming ready tasks (SPEC section 2: `FOR UPDATE SKIP
 * LOCKED`, one statement) and reading when the next delayed one falls due. Every time in them is
 * the `$now` parameter (the engine's clock), never SQL `now()`.
 */
import { defineQuery } from './define-query.js';
import type { RuntimeJobRow } from './job-effects.js';

/**
 * The task edge {@link claimReadyTasks} takes, in the words of the engine's task transition table
 * (`engine/jobs/task-transitions.ts` declares it with `taskEdge` from these values, which are
 * spliced into the statement as fixed text so the claim index's `WHERE state = 'ready'` still
 * matches the plan).
 */
export const CLAIM_TASK_EDGE = { from: 'ready', to: 'running' } as const;

/** Parameters of {@link claimReadyTasks}. */
export interface ClaimReadyTasksParams {
  /** Queues to take tasks from. */
  queues: string[];
  /** Most tasks to claim. */
  limit: number;
  /** The claiming process's `workers.id`, stored in `attempts.worker_id`. */
  workerId: string;
  /** The engine clock's time: due check, `started_at`, heartbeat, log and callback times. */
  now: Date;
  /** The channel the callback dispatchers listen on (payload: the job id). */
  callbacksChannel: string;
  /** First log line of a task whose job runs the client's own workflow definition. */
  clientDefinitionsMessage: string;
  /** First log line of a task whose job runs the common workflow definition. */
  commonDefinitionsMessage: string;
  /** Severity of the claim's two log lines (INFO). */
  severity: number;
}

/** A row of {@link claimReadyTasks}: the task, its new attempt and its job's runtime columns. */
export interface ClaimReadyTasksRow extends RuntimeJobRow {
  task_id: number;
  name: string;
  queue: string;
  /** 1-based attempt number. */
  number: number;
  attempt_id: number;
  /** Output and state of the job's ended tasks, by task name; null when none has ended. */
  outputs: Record<string, { output: unknown; state: string }> | null;
}

/**
 * The callback targets of job row `jj`: every distinct string URL of
 * `resolved_parameters.rest_endpoints`, by first position `n`. The SQL form of the engine's
 * `callbackTargets` rule, needed here so a claim enqueues its `start` callbacks in the same
 * statement (a fixed fragment of this module, never request input).
 */
const CLAIM_CALLBACK_TARGETS = `(SELECT e.url, e.n FROM (
             SELECT x.v #>> '{}' AS url, min(x.n) AS n
               FROM jsonb_array_elements(CASE WHEN jsonb_typeof(jj.resolved_parameters -> 'rest_endpoints') = 'array'
                                              THEN jj.resolved_parameters -> 'rest_endpoints' ELSE '[]'::jsonb END)
                    WITH ORDINALITY AS x(v, n)
              WHERE jsonb_typeof(x.v) = 'string' AND (x.v #>> '{}') ~* '^https?://'
              GROUP BY 1) AS e
          ORDER BY e.n)`;

/**
 * Whether task `t` of job `j` is a cleanup task (`when` in its frozen definition): of a broken
 * job, only those are claimed (they run after the break). A fixed fragment of the claim statements.
 */
const CLEANUP_TASK_OF_BROKEN_JOB = `EXISTS (SELECT 1 FROM jsonb_array_elements(j.definition->'tasks') AS d
                 WHERE d->>'name' = t.name AND d ? 'when')`;

/**
 * Claims up to `$limit` ready tasks on `$queues` and starts an attempt for each, in one
 * statement (one round trip, atomic without an explicit transaction).
 *
 * Picks tasks in state `ready` with `run_after <= $now` of jobs in state `started`, by job
 * priority then task id. Locks: `FOR UPDATE OF t SKIP LOCKED` on the tasks, so concurrent workers
 * never wait on each other or take the same task; `FOR KEY SHARE OF j SKIP LOCKED` on the jobs,
 * so a job being paused or broken (those lock it `FOR UPDATE`) is passed over, while result
 * writers (`FOR NO KEY UPDATE`) do not conflict with a claim.
 *
 * Edge: task `ready → running` (cause `claim`) with `attempts + 1`, `current_attempt_id` and
 * `started_at`, and the task's progress cleared (each attempt starts from none); inserts the `attempts` rows (state `running`, heartbeat `$now`); logs the
 * definition line and "Task '<name>' started" (progname worker); enqueues the `start` task
 * callback (fields of `TaskEventBody`, `time` the attempt's `started_at` as
 * `Date.toISOString()` writes it) for every target and notifies `$callbacksChannel` once per job.
 */
export const claimReadyTasks = defineQuery<ClaimReadyTasksParams, ClaimReadyTasksRow>(
  'claim-ready-tasks',
  `WITH c AS (
   SELECT t.id FROM tasks t JOIN jobs j ON j.id = t.job_id
    WHERE t.state = '${CLAIM_TASK_EDGE.from}' AND t.queue = ANY($queues::text[]) AND t.run_after <= $now::timestamptz
      AND (j.queue_state = 'started' OR (j.queue_state = 'broken' AND ${CLEANUP_TASK_OF_BROKEN_JOB}))
    ORDER BY j.priority, t.id
    LIMIT $limit
    FOR UPDATE OF t SKIP LOCKED FOR KEY SHARE OF j SKIP LOCKED
 ), up AS (
   UPDATE tasks t SET state = '${CLAIM_TASK_EDGE.to}', attempts = t.attempts + 1,
          current_attempt_id = nextval('attempts_id_seq'),
          started_at = COALESCE(t.started_at, $now::timestamptz), updated_at = $now::timestamptz,
          progress = NULL, progress_message = NULL, progress_detail = NULL, progress_at = NULL
     FROM c WHERE t.id = c.id
   RETURNING t.id, t.job_id, t.name, t.queue, t.attempts, t.current_attempt_id
 ), ins AS (
   INSERT INTO attempts (id, task_id, job_id, number, worker_id, started_at, heartbeat_at, run)
   SELECT up.current_attempt_id, up.id, up.job_id, up.attempts, $workerId::text, $now::timestamptz, $now::timestamptz,
          jr.run FROM up JOIN jobs jr ON jr.id = up.job_id
   RETURNING id, started_at
 ), logged AS (
   INSERT INTO logs (job_id, task_id, severity, progname, message, visible, created_at, updated_at)
   SELECT up.job_id, up.id, $severity::smallint, 'worker', m.message, true, $now::timestamptz, $now::timestamptz
     FROM up JOIN jobs jj ON jj.id = up.job_id
    CROSS JOIN LATERAL (VALUES
      (1, CASE WHEN jj.definition_source = 'client' THEN $clientDefinitionsMessage::text
               ELSE $commonDefinitionsMessage::text END),
      (2, CASE WHEN up.attempts > 1 THEN 'Task ''' || up.name || ''' started (attempt ' || up.attempts || ')'
               ELSE 'Task ''' || up.name || ''' started' END)) AS m(ord, message)
    ORDER BY up.id, m.ord
 ), cb AS (
   INSERT INTO callback_deliveries (job_id, task_id, kind, event, target_url, body, next_attempt_at, created_at)
   SELECT up.job_id, up.id, 'task', 'start', tg.url,
          jsonb_build_object(
            'job_id', up.job_id, 'task_id', up.id, 'task_name', up.name, 'workflow', jj.workflow,
            'event', 'start', 'content_id', jj.content_id, 'message', 'Task ''' || up.name || ''' started',
            'time', to_char(ins.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'client', jj.client, 'attempt', up.attempts),
          $now::timestamptz, $now::timestamptz
     FROM up JOIN ins ON ins.id = up.current_attempt_id JOIN jobs jj ON jj.id = up.job_id
    CROSS JOIN LATERAL ${CLAIM_CALLBACK_TARGETS} AS tg
    ORDER BY up.id, tg.n
   RETURNING job_id
 ), cn AS (
   SELECT pg_notify($callbacksChannel::text, job_id::text) FROM (SELECT DISTINCT job_id FROM cb) AS jobs_with_callbacks
 )
 SELECT up.id AS task_id, up.name, up.queue, up.attempts AS number, up.current_attempt_id AS attempt_id,
        j.id, j.client, j.workflow, j.priority, j.queue_state, j.content_id, j.resolved_parameters,
        j.definition, j.definition_source,
        (SELECT jsonb_object_agg(x.name, jsonb_build_object('output', x.output, 'state', x.state))
           FROM tasks x WHERE x.job_id = up.job_id AND x.state IN ('succeeded', 'failed', 'skipped', 'cancelled')
        ) AS outputs,
        (SELECT count(*) FROM cn) AS notified
   FROM up JOIN jobs j ON j.id = up.job_id
  ORDER BY j.priority, up.id`,
);

/**
 * Milliseconds from `$now` until the earliest delayed `ready` task on `$queues` (of a started job)
 * falls due; `ms` is null when none waits. Reads only, takes no locks.
 */
export const readMsUntilNextDue = defineQuery<{ queues: string[]; now: Date }, { ms: number | null }>(
  'read-ms-until-next-due',
  `SELECT (extract(epoch FROM (min(t.run_after) - $now::timestamptz)) * 1000)::float8 AS ms
     FROM tasks t JOIN jobs j ON j.id = t.job_id
    WHERE t.state = 'ready' AND t.queue = ANY($queues::text[]) AND t.run_after > $now::timestamptz
      AND (j.queue_state = 'started' OR (j.queue_state = 'broken' AND ${CLEANUP_TASK_OF_BROKEN_JOB}))`,
);
