/**
 * Statements about task attempts when they end: the read that tells a batch of results which of
 * them are still live, closing a superseded attempt, and finding stalled attempts. The writes of
 * an attempt's outcome go through `applyJobEffects` (job-effects.ts) with the rest of its job's
 * changes.
 */
import { defineQuery } from './define-query.js';
import type { JobTaskRow } from './job-effects.js';

/** A task of a job with results in the batch, and the live attempt (if any) that ends it. */
export interface OutcomeTaskRow extends JobTaskRow {
  /** The attempt of the batch that this task runs now (task `running` with it, attempt `running`), else null. */
  live_attempt: number | null;
  /** That attempt's 1-based number. */
  attempt_number: number | null;
  /** For a live attempt whose item asks: the task's other `failed`/`stalled` attempts, else null. */
  earlier_failures: number | null;
}

/**
 * Reads, after the caller locked the jobs, every task of `jobIds` (by job, then position) with the
 * batch's live attempt of each: an attempt is live when its task is `running` with
 * `current_attempt_id` = the attempt and the attempt is still `running`. For the items with
 * `countFailures`, also counts the task's earlier failed or stalled attempts (for the retry
 * decision; only those of the attempt's run, so a retried job's task has its whole
 * budget again). Reads in a snapshot taken after the job locks were granted, so it sees what the
 * previous holder of a lock committed. No lock of its own, no state edge.
 */
export const readOutcomeTasks = defineQuery<
  { attemptIds: number[]; taskIds: number[]; jobIds: number[]; countFailures: boolean[] },
  OutcomeTaskRow
>(
  'read-outcome-tasks',
  `WITH i AS (SELECT * FROM unnest($attemptIds::bigint[], $taskIds::bigint[], $jobIds::bigint[],
                                   $countFailures::boolean[]) AS x(attempt_id, task_id, job_id, count_failures))
   SELECT t.job_id, t.id, t.name, t.queue, t.state, t.needs, t.output, t.error,
          a.id AS live_attempt, a.number AS attempt_number,
          CASE WHEN a.id IS NOT NULL AND i.count_failures
               THEN (SELECT count(*)::int FROM attempts p
                      WHERE p.task_id = t.id AND p.id <> a.id AND p.run = a.run
                        AND p.state IN ('failed', 'stalled')) END
            AS earlier_failures
     FROM tasks t
     LEFT JOIN i ON i.task_id = t.id AND i.job_id = t.job_id AND i.attempt_id = t.current_attempt_id
                AND t.state = 'running'
     LEFT JOIN attempts a ON a.id = i.attempt_id AND a.task_id = t.id AND a.state = 'running'
    WHERE t.job_id = ANY($jobIds::bigint[])
    ORDER BY t.job_id, t.position, t.id`,
);

/**
 * Closes attempt `attemptId` as `cancelled` with `reason` (an error already set is kept) if it is
 * still `running`; touches nothing else. Locks that attempt row. No task edge.
 */
export const cancelRunningAttempt = defineQuery<{ attemptId: number; reason: string; now: Date }>(
  'cancel-running-attempt',
  `UPDATE attempts SET state = 'cancelled', finished_at = $now::timestamptz, error = COALESCE(error, $reason)
    WHERE id = $attemptId AND state = 'running'`,
);

/** A running attempt whose worker looks gone. */
export interface StalledAttemptRow {
  id: number;
  task_id: number;
  job_id: number;
  worker_id: string | null;
  /** Seconds since its last heartbeat. */
  age: number;
}

/**
 * Finds up to `limit` attempts still `running` whose heartbeat is older than `stallSeconds` (or
 * whose worker registered a clean stop; or every running attempt when `all`), oldest id first.
 * No lock, no state edge (each is then recorded as a failure, with its job locked).
 */
export const findStalledAttempts = defineQuery<
  { all: boolean; stallSeconds: number; limit: number; now: Date },
  StalledAttemptRow
>(
  'find-stalled-attempts',
  `SELECT a.id, a.task_id, a.job_id, a.worker_id,
          extract(epoch FROM ($now::timestamptz - a.heartbeat_at))::float8 AS age
     FROM attempts a LEFT JOIN workers w ON w.id = a.worker_id
    WHERE a.state = 'running'
      AND ($all::boolean
           OR a.heartbeat_at < $now::timestamptz - make_interval(secs => $stallSeconds::double precision)
           OR w.stopped_at IS NOT NULL)
    ORDER BY a.id
    LIMIT $limit`,
);
