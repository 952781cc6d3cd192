/**
 * Statements behind `/health` and `/dashboard`: counts and short lists, read without locks.
 */
import { JOB_COLUMNS, STATE_LIST_ORDER_SQL } from './jobs.js';
import { defineQuery } from './define-query.js';

/** {@link JOB_COLUMNS} without `parameters` (dashboard rows). */
const JOB_COLUMNS_NO_PARAMETERS = JOB_COLUMNS.replace('j.parameters, ', '');

/**
 * Lists the jobs in `state` (of `client` only, unless null) in their state's order (queued jobs
 * in admission order, others by id), at most `limit`, without `parameters`. No locks.
 */
export const listDashboardJobs = defineQuery<{ state: string; client: string | null; limit: number }>(
  'list-dashboard-jobs',
  `SELECT ${JOB_COLUMNS_NO_PARAMETERS} FROM jobs j
   WHERE j.queue_state = $state AND ($client::text IS NULL OR j.client = $client)
   ORDER BY ${STATE_LIST_ORDER_SQL} LIMIT $limit`,
);

/** Checks that the database answers. */
export const pingDatabase = defineQuery('ping-database', 'SELECT 1');

/**
 * Counts jobs per state, `failed`, and `superseded` (a rerun replaced it: `rerun_by` is set), of
 * `client` only unless null: the sums of `job_state_counts`, which triggers keep equal to
 * `count(*)` over `jobs` (migration 0018), so the cost does not grow with the table. Groups
 * without jobs are left out, as a `GROUP BY` over the table would. No locks.
 */
export const countJobsByState = defineQuery<
  { client: string | null },
  { queue_state: string; failed: boolean; superseded: boolean; n: number }
>(
  'count-jobs-by-state',
  `SELECT queue_state, failed, superseded, sum(n)::int AS n FROM job_state_counts
     WHERE ($client::text IS NULL OR client = $client)
     GROUP BY 1, 2, 3 HAVING sum(n) <> 0`,
);

/**
 * Counts failed, ready and succeeded tasks (of `client`'s jobs only, unless null): the sums of
 * `task_state_counts` (kept by triggers, migration 0018). No locks.
 */
export const countTasksByState = defineQuery<{ client: string | null }, { state: string; n: number }>(
  'count-tasks-by-state',
  `SELECT state, sum(n)::int AS n FROM task_state_counts
     WHERE state IN ('failed', 'ready', 'succeeded')
       AND ($client::text IS NULL OR client = $client)
     GROUP BY state HAVING sum(n) <> 0`,
);

/** The queues and roles of every worker process alive at `now` (not stopped, heart-beat within `aliveSeconds`). No locks. */
export const readAliveWorkers = defineQuery<
  { now: Date; aliveSeconds: number },
  { queues: string[]; roles: string[] }
>(
  'read-alive-workers',
  `SELECT queues, roles FROM workers
     WHERE stopped_at IS NULL AND heartbeat_at > $now::timestamptz - make_interval(secs => $aliveSeconds)`,
);

/**
 * Counts ready and running tasks per queue, one branch per state so each reads its partial index
 * (`tasks_claim_idx`, `tasks_running_idx`; a single `state IN (…)` matches neither and scans every
 * task). No locks.
 */
export const countActiveTasksByQueue = defineQuery<
  Record<string, never>,
  { queue: string; state: string; n: number }
>(
  'count-active-tasks-by-queue',
  `SELECT queue, 'ready' AS state, count(*)::int AS n FROM tasks WHERE state = 'ready' GROUP BY queue
   UNION ALL
   SELECT queue, 'running' AS state, count(*)::int AS n FROM tasks WHERE state = 'running' GROUP BY queue`,
);

/** Counts callback deliveries being sent, and those due at `now`. No locks. */
export const countCallbackDeliveries = defineQuery<{ now: Date }, { delivering: number; due: number }>(
  'count-callback-deliveries',
  `SELECT count(*) FILTER (WHERE state = 'delivering')::int AS delivering,
          count(*) FILTER (WHERE state = 'pending' AND next_attempt_at <= $now)::int AS due
     FROM callback_deliveries WHERE state IN ('pending', 'delivering')`,
);

/** Counts queued jobs, and scheduled or pending ones, over every client (from `job_state_counts`). No locks. */
export const countWaitingJobs = defineQuery<Record<string, never>, { queued: number; due: number }>(
  'count-waiting-jobs',
  `SELECT COALESCE(sum(n) FILTER (WHERE queue_state = 'queued'), 0)::int AS queued,
          COALESCE(sum(n) FILTER (WHERE queue_state IN ('scheduled', 'pending')), 0)::int AS due
     FROM job_state_counts WHERE queue_state IN ('queued', 'scheduled', 'pending')`,
);

/**
 * Folds the counter rows of ended sessions into shard 0 and drops groups whose count is zero
 * (`te_compact_state_counts()`, migration 0018); returns how many counter rows it removed. Skips
 * rows a live session holds and returns 0 at once while another compaction runs. Counts read
 * before and after are the same.
 */
export const compactStateCounts = defineQuery<Record<string, never>, { removed: number }>(
  'compact-state-counts',
  `SELECT te_compact_state_counts()::int AS removed`,
);

/**
 * The job and task counts straight from the tables (`count(*)`, a scan of both): what the
 * counters must equal. For tests and checks, never for a request path.
 */
export const countStatesFromTables = defineQuery<
  Record<string, never>,
  {
    jobs: { client: string; queue_state: string; failed: boolean; superseded: boolean; n: number }[] | null;
    tasks: { client: string; state: string; n: number }[] | null;
  }
>(
  'count-states-from-tables',
  `SELECT
     (SELECT json_agg(r ORDER BY r.client, r.queue_state, r.failed, r.superseded) FROM (
        SELECT client, queue_state, failed, rerun_by IS NOT NULL AS superseded, count(*)::int AS n
          FROM jobs GROUP BY 1, 2, 3, 4) r) AS jobs,
     (SELECT json_agg(r ORDER BY r.client, r.state) FROM (
        SELECT j.client, t.state, count(*)::int AS n FROM tasks t JOIN jobs j ON j.id = t.job_id
         GROUP BY 1, 2) r) AS tasks`,
);

/** The job and task counts as the counters hold them, in the shape of {@link countStatesFromTables}. No locks. */
export const countStatesFromCounters = defineQuery<
  Record<string, never>,
  {
    jobs: { client: string; queue_state: string; failed: boolean; superseded: boolean; n: number }[] | null;
    tasks: { client: string; state: string; n: number }[] | null;
  }
>(
  'count-states-from-counters',
  `SELECT
     (SELECT json_agg(r ORDER BY r.client, r.queue_state, r.failed, r.superseded) FROM (
        SELECT client, queue_state, failed, superseded, sum(n)::int AS n FROM job_state_counts
         GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0) r) AS jobs,
     (SELECT json_agg(r ORDER BY r.client, r.state) FROM (
        SELECT client, state, sum(n)::int AS n FROM task_state_counts
         GROUP BY 1, 2 HAVING sum(n) <> 0) r) AS tasks`,
);

/**
 * Whether some session holds the scheduler leader lock `key` (a session advisory lock on one
 * bigint key: `classid` its high half, `objid` its low half, `objsubid` 1; read from `pg_locks`,
 * the lock table, not rows), and how long the oldest due callback delivery has waited at `now`
 * (seconds, 0 when none; through `callback_deliveries_due_idx`). No locks.
 */
export const readHealthSignals = defineQuery<
  { now: Date; key: number },
  { scheduler_leader: boolean; oldest_due_seconds: number }
>(
  'read-health-signals',
  `SELECT EXISTS (
            SELECT 1 FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND objsubid = 1
               AND classid = ($key::bigint >> 32)::oid AND objid = ($key::bigint & 4294967295)::oid
          ) AS scheduler_leader,
          COALESCE((SELECT EXTRACT(EPOCH FROM ($now::timestamptz - min(next_attempt_at)))::float8
                      FROM callback_deliveries
                     WHERE state IN ('pending', 'delivering') AND state = 'pending'
                       AND next_attempt_at <= $now::timestamptz), 0) AS oldest_due_seconds`,
);
