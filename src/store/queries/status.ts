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
 * `client` only unless null. No locks.
 */
export const countJobsByState = defineQuery<
  { client: string | null },
  { queue_state: string; failed: boolean; superseded: boolean; n: number }
>(
  'count-jobs-by-state',
  `SELECT queue_state, failed, rerun_by IS NOT NULL AS superseded, count(*)::int AS n FROM jobs
     WHERE ($client::text IS NULL OR client = $client) GROUP BY 1, 2, 3`,
);

/** Counts failed, ready and succeeded tasks (of `client`'s jobs only, unless null). No locks. */
export const countTasksByState = defineQuery<{ client: string | null }, { state: string; n: number }>(
  'count-tasks-by-state',
  `SELECT t.state, count(*)::int AS n FROM tasks t
     WHERE t.state IN ('failed', 'ready', 'succeeded')
       AND ($client::text IS NULL OR t.job_id IN (SELECT id FROM jobs WHERE client = $client))
     GROUP BY t.state`,
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

/** Counts ready and running tasks per queue. No locks. */
export const countActiveTasksByQueue = defineQuery<
  Record<string, never>,
  { queue: string; state: string; n: number }
>(
  'count-active-tasks-by-queue',
  `SELECT queue, state, count(*)::int AS n FROM tasks WHERE state IN ('ready', 'running') GROUP BY queue, state`,
);

/** Counts callback deliveries being sent, and those due at `now`. No locks. */
export const countCallbackDeliveries = defineQuery<{ now: Date }, { delivering: number; due: number }>(
  'count-callback-deliveries',
  `SELECT count(*) FILTER (WHERE state = 'delivering')::int AS delivering,
          count(*) FILTER (WHERE state = 'pending' AND next_attempt_at <= $now)::int AS due
     FROM callback_deliveries WHERE state IN ('pending', 'delivering')`,
);

/** Counts queued jobs, and scheduled or pending ones, over every client. No locks. */
export const countWaitingJobs = defineQuery<Record<string, never>, { queued: number; due: number }>(
  'count-waiting-jobs',
  `SELECT count(*) FILTER (WHERE queue_state = 'queued')::int AS queued,
          count(*) FILTER (WHERE queue_state IN ('scheduled', 'pending'))::int AS due
     FROM jobs WHERE queue_state IN ('queued', 'scheduled', 'pending')`,
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
