/**
 * Claiming ready tasks (SPEC section 2: `FOR UPDATE SKIP LOCKED`, one statement).
 */
import type { Executor } from '../../store/executor.js';
import { callbackTargetsSql } from '../callbacks/enqueue.js';
import { CHANNELS } from '../signals.js';
import type { RuntimeJob, TaskOutputs } from '../controller/job-scope.js';

/** A task claimed by this worker, with its new attempt and what the handler needs. */
export interface ClaimedTask {
  taskId: number;
  name: string;
  queue: string;
  attemptId: number;
  /** 1-based attempt number. */
  number: number;
  job: RuntimeJob;
  /** Outputs of the job's tasks that had ended when the attempt started. */
  outputs: TaskOutputs;
}

/**
 * Claims up to `limit` ready tasks on `queues` in one statement and starts an attempt for each.
 *
 * One statement picks the tasks (state `ready`, `run_after <= now()`, of jobs in state
 * `started`, ordered by job priority then task id, `FOR UPDATE OF t SKIP LOCKED` so concurrent
 * workers never wait on each other or take the same task), sets them `running` with
 * `attempts + 1`, `current_attempt_id` and `started_at`, and inserts the `attempts` rows (state
 * `running`, heartbeat now), logs "No client definitions. Using common definitions." (or that
 * the client's own definition is used) and "Task '<name>' started" (progname worker), and
 * enqueues the `start` task callback for every target with the dispatchers' wake-up: a claim is
 * one round trip, atomic without an explicit transaction.
 *
 * The job rows are share-locked (`FOR KEY SHARE … SKIP LOCKED`): a job being paused or broken
 * (those lock it `FOR UPDATE`) is passed over, and one that became paused meanwhile is re-checked
 * and left out, so a claim can never start a task in a job whose pause has just given its slot
 * back (which would take `max_jobs` one over). Result writers lock jobs `FOR NO KEY UPDATE`,
 * which does not conflict with the share lock, so claims and results never wait for each other.
 * @returns the claimed tasks (possibly none).
 * @throws the driver's error (nothing is claimed then).
 */
export async function claimTasks(
  db: Executor,
  queues: string[],
  limit: number,
  workerId: string,
): Promise<ClaimedTask[]> {
  if (limit <= 0 || queues.length === 0) return [];
  // One statement, so no explicit transaction (and its two extra round trips) is needed.
  const { rows } = await db.query<
    {
      task_id: number;
      name: string;
      queue: string;
      number: number;
      attempt_id: number;
      outputs: TaskOutputs | null;
    } & RuntimeJob
  >(CLAIM_SQL, [queues, limit, workerId, CHANNELS.callbacks]);
  return rows.map((r) => ({
    taskId: r.task_id,
    name: r.name,
    queue: r.queue,
    attemptId: r.attempt_id,
    number: r.number,
    outputs: r.outputs ?? {},
    job: {
      id: r.id,
      client: r.client,
      workflow: r.workflow,
      priority: r.priority,
      queue_state: r.queue_state,
      content_id: r.content_id,
      resolved_parameters: r.resolved_parameters,
      definition: r.definition,
      definition_source: r.definition_source,
    },
  }));
}

/**
 * The claim statement of {@link claimTasks}: `$1` queues, `$2` limit, `$3` worker id, `$4` the
 * callbacks channel. The `start` callback bodies carry the fields of `TaskEventBody`;
 * `time` is the attempt's `started_at` in the form of `Date.toISOString()`.
 */
const CLAIM_SQL = `WITH c AS (
   SELECT t.id FROM tasks t JOIN jobs j ON j.id = t.job_id
    WHERE t.state = 'ready' AND t.queue = ANY($1::text[]) AND t.run_after <= now()
      AND j.queue_state = 'started'
    ORDER BY j.priority, t.id
    LIMIT $2
    FOR UPDATE OF t SKIP LOCKED FOR KEY SHARE OF j SKIP LOCKED
 ), up AS (
   UPDATE tasks t SET state = 'running', attempts = t.attempts + 1,
          current_attempt_id = nextval('attempts_id_seq'),
          started_at = COALESCE(t.started_at, now()), updated_at = now()
     FROM c WHERE t.id = c.id
   RETURNING t.id, t.job_id, t.name, t.queue, t.attempts, t.current_attempt_id
 ), ins AS (
   INSERT INTO attempts (id, task_id, job_id, number, worker_id)
   SELECT current_attempt_id, id, job_id, attempts, $3 FROM up
   RETURNING id, started_at
 ), logged AS (
   INSERT INTO logs (job_id, task_id, severity, progname, message, visible)
   SELECT up.job_id, up.id, 1, 'worker', m.message, true
     FROM up JOIN jobs jj ON jj.id = up.job_id
    CROSS JOIN LATERAL (VALUES
      (1, CASE WHEN jj.definition_source = 'client' THEN 'Client definitions found. Using client definitions.'
               ELSE 'No client definitions. Using common definitions.' END),
      (2, CASE WHEN up.attempts > 1 THEN 'Task ''' || up.name || ''' started (attempt ' || up.attempts || ')'
               ELSE 'Task ''' || up.name || ''' started' END)) AS m(ord, message)
    ORDER BY up.id, m.ord
 ), cb AS (
   INSERT INTO callback_deliveries (job_id, task_id, kind, event, target_url, body)
   SELECT up.job_id, up.id, 'task', 'start', tg.url,
          jsonb_build_object(
            'job_id', up.job_id, 'task_id', up.id, 'task_name', up.name, 'workflow', jj.workflow,
            'event', 'start', 'content_id', jj.content_id, 'message', 'Task ''' || up.name || ''' started',
            'time', to_char(ins.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'client', jj.client, 'attempt', up.attempts)
     FROM up JOIN ins ON ins.id = up.current_attempt_id JOIN jobs jj ON jj.id = up.job_id
    CROSS JOIN LATERAL ${callbackTargetsSql('jj.resolved_parameters')} AS tg
    ORDER BY up.id, tg.n
   RETURNING job_id
 ), cn AS (
   SELECT pg_notify($4, job_id::text) FROM (SELECT DISTINCT job_id FROM cb) AS jobs_with_callbacks
 )
 SELECT up.id AS task_id, up.name, up.queue, up.attempts AS number, up.current_attempt_id AS attempt_id,
        j.id, j.client, j.workflow, j.priority, j.queue_state, j.content_id, j.resolved_parameters,
        j.definition, j.definition_source,
        (SELECT jsonb_object_agg(x.name, jsonb_build_object('output', x.output, 'state', x.state))
           FROM tasks x WHERE x.job_id = up.job_id AND x.state IN ('succeeded', 'failed', 'skipped', 'cancelled')
        ) AS outputs,
        (SELECT count(*) FROM cn) AS notified
   FROM up JOIN jobs j ON j.id = up.job_id
  ORDER BY j.priority, up.id`;

/**
 * Milliseconds until the earliest delayed `ready` task on `queues` (of a started job) becomes
 * due, or null when none waits. Used to arm a timer for retries, instead of polling.
 */
export async function msUntilNextDue(db: Executor, queues: string[]): Promise<number | null> {
  const { rows } = await db.query<{ ms: number | null }>(
    `SELECT (extract(epoch FROM (min(t.run_after) - now())) * 1000)::float8 AS ms
       FROM tasks t JOIN jobs j ON j.id = t.job_id
      WHERE t.state = 'ready' AND t.queue = ANY($1::text[]) AND t.run_after > now() AND j.queue_state = 'started'`,
    [queues],
  );
  const ms = rows[0]?.ms;
  return ms === null || ms === undefined ? null : Math.max(0, Number(ms));
}
