/**
 * Statements behind the database gauges of `GET /metrics` and the checks of `/health` and
 * `/readyz`. Each reads only rows that partial or leading-column indexes find (live job states,
 * ready and running tasks, open deliveries, alive workers), never a whole table, so a scrape costs
 * the same at one million finished jobs as at none (EXPLAIN in docs/observability.md).
 */
import { defineQuery } from './define-query.js';

/** One row of {@link readMetricsSnapshot}: JSON lists, null when empty. */
export interface MetricsSnapshotRow {
  /** Live jobs per state: `[{state, n}]` (queued, started, scheduled, paused, pending). */
  jobs: { state: string; n: number }[] | null;
  /** Jobs holding a slot (started, or paused with a task still running), as admission counts `R`. */
  slots_used: number;
  /** Ready and running tasks per queue: `[{queue, state, n}]`. */
  tasks: { queue: string; state: string; n: number }[] | null;
  /** Alive worker processes: `[{queues, roles}]`. */
  workers: { queues: string[]; roles: string[] }[] | null;
  /** Callback deliveries waiting (`pending`, due now) and being sent (`delivering`). */
  callbacks_due: number;
  callbacks_delivering: number;
  /** Seconds the oldest due delivery has waited (0 when none). */
  callbacks_oldest_due_seconds: number;
  /** Running attempts whose task has reported progress. */
  progress_reporting: number;
}

/**
 * Reads every database gauge in one round trip. The job counts are sums of `job_state_counts`
 * (kept by triggers, migration 0018: a few rows whatever the number of jobs); tasks use the partial `tasks_claim_idx` /
 * `tasks_running_idx` (one `state = …` branch each: a single `state IN ('ready', 'running')`
 * matches neither index's predicate and is a scan of every task, about 90 ms at 1,000,000 jobs);
 * deliveries `callback_deliveries_due_idx`; workers `workers_alive_idx`. No locks.
 */
export const readMetricsSnapshot = defineQuery<{ now: Date; aliveSeconds: number }, MetricsSnapshotRow>(
  'read-metrics-snapshot',
  `SELECT
     (SELECT json_agg(json_build_object('state', s.queue_state, 'n', s.n)) FROM (
        SELECT queue_state, sum(n)::int AS n FROM job_state_counts
         WHERE queue_state IN ('queued', 'started', 'scheduled', 'paused', 'pending')
         GROUP BY queue_state) s) AS jobs,
     (SELECT count(*)::int FROM jobs j
       WHERE j.queue_state = 'started'
          OR (j.queue_state = 'paused' AND EXISTS (
                SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'running'))) AS slots_used,
     (SELECT json_agg(json_build_object('queue', q.queue, 'state', q.state, 'n', q.n)) FROM (
        SELECT queue, 'ready' AS state, count(*)::int AS n FROM tasks WHERE state = 'ready' GROUP BY queue
        UNION ALL
        SELECT queue, 'running' AS state, count(*)::int AS n FROM tasks WHERE state = 'running' GROUP BY queue
      ) q) AS tasks,
     (SELECT json_agg(json_build_object('queues', w.queues, 'roles', w.roles)) FROM workers w
       WHERE w.stopped_at IS NULL
         AND w.heartbeat_at > $now::timestamptz - make_interval(secs => $aliveSeconds)) AS workers,
     (SELECT count(*)::int FROM callback_deliveries
       WHERE state IN ('pending', 'delivering') AND state = 'pending'
         AND next_attempt_at <= $now::timestamptz) AS callbacks_due,
     (SELECT count(*)::int FROM callback_deliveries
       WHERE state IN ('pending', 'delivering') AND state = 'delivering') AS callbacks_delivering,
     (SELECT COALESCE(EXTRACT(EPOCH FROM ($now::timestamptz - min(next_attempt_at))), 0)::float8
        FROM callback_deliveries
       WHERE state IN ('pending', 'delivering') AND state = 'pending'
         AND next_attempt_at <= $now::timestamptz) AS callbacks_oldest_due_seconds,
     (SELECT count(*)::int FROM tasks t
       WHERE t.state = 'running' AND t.progress_at IS NOT NULL) AS progress_reporting`,
);

/**
 * Whether some session holds the scheduler's leader lock (`LOCK_KEYS.schedulerLeader`, a session
 * advisory lock taken with one bigint key: `classid` the high half, `objid` the low half,
 * `objsubid` 1). Reads `pg_locks`, a view of the lock table, not of rows.
 */
export const readSchedulerLeaderHeld = defineQuery<{ key: number }, { held: boolean }>(
  'read-scheduler-leader-held',
  `SELECT EXISTS (
     SELECT 1 FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND objsubid = 1
        AND classid = ($key::bigint >> 32)::oid AND objid = ($key::bigint & 4294967295)::oid) AS held`,
);
