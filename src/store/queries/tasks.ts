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
  /** The worker's free slots: the claimed tasks' `slots` add up to at most this. */
  limit: number;
  /** The worker's whole capacity in slots: a task with more `slots` is never taken by it. */
  capacity: number;
  /** The claiming process's `workers.id`, stored in `attempts.worker_id`. */
  workerId: string;
  /** The engine clock's time: due check, `started_at`, heartbeat, log and callback times. */
  now: Date;
  /** The channel the callback dispatchers listen on (payload: the job id). */
  callbacksChannel: string;
  /** Severity of the claim's log line (INFO). */
  severity: number;
  /**
   * True for a hand-off claim (inside a result transaction): tasks with a concurrency key are
   * passed over (counted in `held_back`) and no key is locked, so keyed tasks are always claimed
   * by passes, where every engine's workers race for them.
   */
  skipKeyed: boolean;
}

/**
 * A row of {@link claimReadyTasks}: the task, its new attempt and its job's runtime columns, and
 * `held_back`. When nothing was claimed, one row comes back with only `held_back` set (every other
 * column null; `task_id` null marks it).
 */
export interface ClaimReadyTasksRow extends RuntimeJobRow {
  /**
   * Tasks this claim locked and passed over because their concurrency key was at its limit when
   * counted under the key's lock; the claim loop then looks again at once (see the statement).
   */
  held_back: number;
  task_id: number;
  name: string;
  queue: string;
  /** Worker slots the task takes. */
  slots: number;
  /** 1-based attempt number. */
  number: number;
  attempt_id: number;
  /** Output and state of the job's ended tasks, by task name; null when none has ended. */
  outputs: Record<string, { output: unknown; state: string }> | null;
  /**
   * The job's stored trace ids (`job_traces`; {@link claimReadyTasksTraced} only, null when the job
   * has no trace): the parent of the attempt's span, read with the claim instead of once per attempt.
   */
  trace_id?: string | null;
  span_id?: string | null;
  trace_flags?: number | null;
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

/** The text of {@link claimReadyTasks}; `traced`: also the job's trace ids ({@link claimReadyTasksTraced}). */
const claimStatement = (traced: boolean): string =>
  `WITH c AS (
   SELECT t.id, t.slots, t.concurrency_key AS ckey, t.concurrency_limit AS climit, j.priority AS prio
     FROM tasks t JOIN jobs j ON j.id = t.job_id
    WHERE t.state = '${CLAIM_TASK_EDGE.from}' AND t.queue = ANY($queues::text[]) AND t.run_after <= $now::timestamptz
      AND (j.queue_state = 'started' OR (j.queue_state = 'broken' AND ${CLEANUP_TASK_OF_BROKEN_JOB}))
      AND (t.slots = 1 OR t.slots <= $capacity::int)
      AND (t.concurrency_key IS NULL
           OR (t.concurrency_key, t.concurrency_limit) NOT IN (
                SELECT b.concurrency_key, l.n
                  FROM (SELECT r.concurrency_key, count(*)::int AS held FROM tasks r
                         WHERE r.state = 'running' AND r.concurrency_key IS NOT NULL GROUP BY 1) AS b
                 CROSS JOIN LATERAL generate_series(1, b.held) AS l(n)))
    ORDER BY j.priority, t.id
    LIMIT $limit
    FOR UPDATE OF t SKIP LOCKED FOR KEY SHARE OF j SKIP LOCKED
 ), held AS (
   SELECT h.key, h.held
     FROM (SELECT ARRAY(SELECT c.ckey FROM c WHERE c.ckey IS NOT NULL AND NOT $skipKeyed::boolean) AS keys) AS a
    CROSS JOIN LATERAL te_concurrency_holders(a.keys) AS h
    WHERE cardinality(a.keys) > 0
 ), ranked AS (
   SELECT c.id, c.slots, c.prio,
          c.ckey IS NULL
          OR NOT $skipKeyed::boolean AND COALESCE((SELECT h.held FROM held h WHERE h.key = c.ckey)
                      + (SELECT count(*) FROM c AS e WHERE e.ckey = c.ckey AND (e.prio, e.id) <= (c.prio, c.id))
                      <= c.climit, false) AS allowed
     FROM c
 ), pick AS (
   SELECT r.id FROM (SELECT ranked.id, sum(ranked.slots) OVER (ORDER BY ranked.prio, ranked.id) AS used
                       FROM ranked WHERE ranked.allowed) AS r
    WHERE r.used <= $limit
 ), up AS (
   UPDATE tasks t SET state = '${CLAIM_TASK_EDGE.to}', attempts = t.attempts + 1,
          current_attempt_id = nextval('attempts_id_seq'),
          started_at = COALESCE(t.started_at, $now::timestamptz), updated_at = $now::timestamptz,
          progress = NULL, progress_message = NULL, progress_detail = NULL, progress_at = NULL
     FROM pick WHERE t.id = pick.id
   RETURNING t.id, t.job_id, t.name, t.queue, t.slots, t.attempts, t.current_attempt_id
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
      (1, CASE WHEN up.attempts > 1 THEN 'Task ''' || up.name || ''' started (attempt ' || up.attempts || ')'
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
 SELECT s.held_back, x.*
   FROM (SELECT count(*) FILTER (WHERE NOT ranked.allowed)::int AS held_back FROM ranked) AS s
   LEFT JOIN LATERAL (
     SELECT up.id AS task_id, up.name, up.queue, up.slots, up.attempts AS number, up.current_attempt_id AS attempt_id,
            j.id, j.client, j.workflow, j.priority, j.queue_state, j.content_id, j.resolved_parameters,
            j.definition, j.definition_source,
            (SELECT jsonb_object_agg(o.name, jsonb_build_object('output', o.output, 'state', o.state))
               FROM tasks o WHERE o.job_id = up.job_id AND o.state IN ('succeeded', 'failed', 'skipped', 'cancelled')
            ) AS outputs,
            (SELECT count(*) FROM cn) AS notified${
              traced ? ',\n            jt.trace_id, jt.span_id, jt.trace_flags' : ''
            }
       FROM up JOIN jobs j ON j.id = up.job_id${
         traced ? '\n       LEFT JOIN job_traces jt ON jt.job_id = up.job_id' : ''
       }) AS x ON true
  ORDER BY x.priority, x.task_id`;

/**
 * Claims ready tasks on `$queues` whose `slots` add up to at most `$limit` (the worker's free
 * slots) and starts an attempt for each, in one statement (one round trip, atomic without an
 * explicit transaction).
 *
 * Candidates (`c`): tasks in state `ready` with `run_after <= $now` of jobs in state `started`, by
 * job priority then task id, at most `$limit` of them (every task takes at least one slot), leaving
 * out a task heavier than `$capacity` (this worker can never run it; see {@link markTooHeavyTasks})
 * and a keyed task whose key already has `concurrency_limit` running holders as this statement's
 * snapshot sees them (a hashed set of `(key, 1..holders)` pairs, built once from the index on
 * running holders and only when a keyed row is met; the conditions are written so that the planner
 * estimates them as passing nearly every row, as they do, and keeps the plan of a claim without
 * them). Locks: `FOR UPDATE OF t SKIP LOCKED` on the tasks, so concurrent workers
 * never wait on each other or take the same task; `FOR KEY SHARE OF j SKIP LOCKED` on the jobs,
 * so a job being paused or broken (those lock it `FOR UPDATE`) is passed over, while result
 * writers (`FOR NO KEY UPDATE`) do not conflict with a claim. For a candidate set without
 * concurrency keys the next steps are a few cheap operations over at most `$limit` rows.
 *
 * Keys (`held`): for the keys among the candidates, `te_concurrency_holders` (migration 0012) takes
 * each key's transaction-scoped advisory lock and then counts its running holders with a fresh
 * snapshot, so two engines claiming the same key at once are serialised and the second counts the
 * first one's tasks (docs/task-slots-and-concurrency.md explains why this is race-free). A keyed
 * candidate is allowed while `held` plus its rank among this claim's candidates of the key stays
 * within its limit; the others are passed over (`held_back`).
 *
 * Weights (`pick`): the allowed candidates are taken in order while their summed `slots` fit
 * `$limit`; the first that does not fit ends the claim, so a heavy task at the head is not
 * overtaken by lighter ones behind it (it gets the slots as they free).
 *
 * Edge: task `ready → running` (cause `claim`) with `attempts + 1`, `current_attempt_id` and
 * `started_at`, and the task's progress cleared (each attempt starts from none); inserts the `attempts` rows (state `running`, heartbeat `$now`); logs the
 * definition line and "Task '<name>' started" (progname worker); enqueues the `start` task
 * callback (fields of `TaskEventBody`, `time` the attempt's `started_at` as
 * `Date.toISOString()` writes it) for every target and notifies `$callbacksChannel` once per job.
 */
export const claimReadyTasks = defineQuery<ClaimReadyTasksParams, ClaimReadyTasksRow>(
  'claim-ready-tasks',
  claimStatement(false),
);

/**
 * {@link claimReadyTasks}, and each claimed task's row also carries its job's stored trace ids
 * (`trace_id`, `span_id`, `trace_flags` of `job_traces`, by primary key; null without a trace):
 * the statement of a worker with tracing on (docs/tracing.md), so an attempt span needs no read of
 * its own. Same locks and edges.
 */
export const claimReadyTasksTraced = defineQuery<ClaimReadyTasksParams, ClaimReadyTasksRow>(
  'claim-ready-tasks-traced',
  claimStatement(true),
);

/** Parameters of {@link readLostClaims}. */
export interface ReadLostClaimsParams {
  /** The claiming process's `workers.id`. */
  workerId: string;
  /**
   * The `$now` values of this process's claims whose answer never came (the connection was lost
   * after the statement was sent): a claim's attempts carry it as `started_at`.
   */
  claimedAts: Date[];
  /** Attempts the process runs already (left out). */
  knownAttemptIds: number[];
  /** The engine clock's time: the heartbeat stamped on the attempts found. */
  now: Date;
}

/**
 * The tasks a claim of worker `$workerId` made at one of `$claimedAts` and still runs as that
 * claim's attempt (task `running`, its `current_attempt_id` the attempt, the attempt `running`),
 * other than `$knownAttemptIds`: what a claim whose answer was lost took. Stamps their attempts'
 * `heartbeat_at` with `$now`, so stall recovery, which may find them old after a long outage,
 * leaves them to the worker that is about to run them. Same columns as a row of
 * {@link claimReadyTasksTraced} (with `held_back` 0 and `outputs` as of now), in claim order.
 * Row locks on the attempts found; no state edge: the worker runs them as claimed.
 */
export const readLostClaims = defineQuery<ReadLostClaimsParams, ClaimReadyTasksRow>(
  'read-lost-claims',
  `WITH found AS (
     UPDATE attempts a SET heartbeat_at = $now::timestamptz
       FROM tasks t
      WHERE t.current_attempt_id = a.id AND t.state = '${CLAIM_TASK_EDGE.to}'
        AND a.state = 'running' AND a.worker_id = $workerId::text
        AND a.started_at = ANY($claimedAts::timestamptz[])
        AND NOT (a.id = ANY($knownAttemptIds::bigint[]))
     RETURNING a.id, a.number, a.task_id
   )
   SELECT 0 AS held_back, t.id AS task_id, t.name, t.queue, t.slots, f.number, f.id AS attempt_id,
          j.id, j.client, j.workflow, j.priority, j.queue_state, j.content_id, j.resolved_parameters,
          j.definition, j.definition_source,
          (SELECT jsonb_object_agg(o.name, jsonb_build_object('output', o.output, 'state', o.state))
             FROM tasks o WHERE o.job_id = t.job_id AND o.state IN ('succeeded', 'failed', 'skipped', 'cancelled')
          ) AS outputs,
          jt.trace_id, jt.span_id, jt.trace_flags
     FROM found f
     JOIN tasks t ON t.id = f.task_id
     JOIN jobs j ON j.id = t.job_id
     LEFT JOIN job_traces jt ON jt.job_id = t.job_id
    ORDER BY j.priority, t.id`,
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

/** Parameters of {@link markTooHeavyTasks}. */
export interface MarkTooHeavyTasksParams {
  /** The queues of the worker that looks. */
  queues: string[];
  /** That worker's capacity in slots (only heavier tasks are looked at). */
  capacity: number;
  now: Date;
  /** A worker is live when not stopped and heart-beat within this many seconds of `$now`. */
  aliveSeconds: number;
}

/**
 * Marks, once, the ready tasks on `$queues` (of started jobs, or cleanup tasks of broken ones)
 * that need more slots than `$capacity` and than every live worker serving their queue has:
 * sets `too_heavy_reported_at = $now` where it is still null, and returns them with `largest`,
 * the most slots of a live worker on the queue (0: none but workers with no capacity). The caller
 * writes their job log line in the same transaction. Row locks on the marked tasks; no state edge.
 */
export const markTooHeavyTasks = defineQuery<
  MarkTooHeavyTasksParams,
  { id: number; job_id: number; name: string; queue: string; slots: number; largest: number }
>(
  'mark-too-heavy-tasks',
  `WITH w AS (
     SELECT queues, concurrency FROM workers
      WHERE stopped_at IS NULL AND heartbeat_at > $now::timestamptz - make_interval(secs => $aliveSeconds)
   ), heavy AS (
     SELECT t.id, COALESCE((SELECT max(w.concurrency) FROM w WHERE t.queue = ANY(w.queues)), 0)::int AS largest
       FROM tasks t JOIN jobs j ON j.id = t.job_id
      WHERE t.state = 'ready' AND t.queue = ANY($queues::text[]) AND t.slots > $capacity::int
        AND t.too_heavy_reported_at IS NULL
        AND (j.queue_state = 'started' OR (j.queue_state = 'broken' AND ${CLEANUP_TASK_OF_BROKEN_JOB}))
   )
   UPDATE tasks t SET too_heavy_reported_at = $now::timestamptz
     FROM heavy WHERE t.id = heavy.id AND t.slots > heavy.largest AND t.state = 'ready'
   RETURNING t.id, t.job_id, t.name, t.queue, t.slots, heavy.largest`,
);

/** A row of {@link readReadyTaskWaiting}: one ready task of the job and what holds it back. */
export interface ReadyTaskWaitingRow {
  id: number;
  name: string;
  queue: string;
  slots: number;
  run_after: Date;
  concurrency_key: string | null;
  concurrency_limit: number | null;
  /** Live workers serving the task's queue. */
  workers: number;
  /** Their summed capacity in slots, and the largest one's (0 when none). */
  capacity: number;
  largest: number;
  /** Slots taken now on those workers by running tasks. */
  slots_in_use: number;
  /** The most free slots on one of those workers (its capacity less its running tasks' slots; 0 when none). */
  largest_free: number;
  /** The first ready task ahead of it in claim order that no worker has room for now (a claim stops there); null when none. */
  ahead_job_id: number | null;
  ahead_task: string | null;
  ahead_slots: number | null;
  /** Running tasks holding the task's key (0 without a key). */
  holders: number;
  /** The first few of them, oldest first: `[{job_id, task}]`; null without holders. */
  holder_tasks: { job_id: number; task: string }[] | null;
}

/**
 * The ready tasks of job `$jobId`, by id, each with what decides whether a worker takes it: the
 * live workers serving its queue (not stopped, heart-beat within `$aliveSeconds` of `$now`), their
 * capacity, the slots their running tasks take (in all, and the most left free on one worker), and the running holders of its concurrency
 * key. Reads only, takes no locks (a snapshot; "why is it waiting" in GET /jobs/<id>).
 */
export const readReadyTaskWaiting = defineQuery<
  { jobId: number; now: Date; aliveSeconds: number },
  ReadyTaskWaitingRow
>(
  'read-ready-task-waiting',
  `WITH w AS (
     SELECT id, queues, concurrency FROM workers
      WHERE stopped_at IS NULL AND concurrency > 0
        AND heartbeat_at > $now::timestamptz - make_interval(secs => $aliveSeconds)
   )
   SELECT t.id, t.name, t.queue, t.slots, t.run_after, t.concurrency_key, t.concurrency_limit,
          q.workers, q.capacity, q.largest,
          (SELECT COALESCE(sum(x.slots), 0)::int FROM tasks x JOIN attempts a ON a.id = x.current_attempt_id
            WHERE x.state = 'running' AND a.worker_id IN (SELECT w.id FROM w WHERE t.queue = ANY(w.queues))
          ) AS slots_in_use,
          f.largest_free, ahead.job_id AS ahead_job_id, ahead.name AS ahead_task, ahead.slots AS ahead_slots,
          (SELECT count(*)::int FROM tasks h WHERE h.state = 'running' AND h.concurrency_key = t.concurrency_key
          ) AS holders,
          (SELECT jsonb_agg(jsonb_build_object('job_id', h.job_id, 'task', h.name) ORDER BY h.id)
             FROM (SELECT h.id, h.job_id, h.name FROM tasks h
                    WHERE h.state = 'running' AND h.concurrency_key = t.concurrency_key ORDER BY h.id LIMIT 5) AS h
          ) AS holder_tasks
     FROM tasks t
     JOIN jobs tj ON tj.id = t.job_id
    CROSS JOIN LATERAL (
      SELECT count(*)::int AS workers, COALESCE(sum(w.concurrency), 0)::int AS capacity,
             COALESCE(max(w.concurrency), 0)::int AS largest
        FROM w WHERE t.queue = ANY(w.queues)) AS q
    CROSS JOIN LATERAL (
      SELECT COALESCE(max(w.concurrency - (
               SELECT COALESCE(sum(x.slots), 0) FROM tasks x JOIN attempts a ON a.id = x.current_attempt_id
                WHERE x.state = 'running' AND a.worker_id = w.id)), 0)::int AS largest_free
        FROM w WHERE t.queue = ANY(w.queues)) AS f
    -- A claim takes ready tasks in (job priority, task id) order while they fit and stops at the
    -- first that does not: the first such task ahead of this one, heavier than any worker's room.
    LEFT JOIN LATERAL (
      SELECT x.job_id, x.name, x.slots FROM tasks x JOIN jobs jx ON jx.id = x.job_id
       WHERE x.state = 'ready' AND x.queue = t.queue AND jx.queue_state = 'started'
         AND x.run_after <= $now::timestamptz AND x.slots > f.largest_free AND x.slots <= q.largest
         AND (jx.priority, x.id) < (tj.priority, t.id)
       ORDER BY jx.priority, x.id LIMIT 1) AS ahead ON true
    WHERE t.job_id = $jobId AND t.state = 'ready'
    ORDER BY t.id`,
);
