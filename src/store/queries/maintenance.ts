/**
 * Statements of the maintenance schedules that are not about attempts: the `cleanup_jobs`
 * retention sweep (SPEC section 8).
 */
import { defineQuery } from './define-query.js';

/**
 * Deletes up to `limit` `completed` or `broken` jobs without `persist` that finished before
 * `cutoff`, oldest first; their tasks, attempts, logs and callback deliveries go by
 * `ON DELETE CASCADE`. Locks: `FOR UPDATE SKIP LOCKED` on the job rows (a job locked elsewhere
 * waits for the next run). No state edge: final jobs leave the table.
 */
export const deleteExpiredJobs = defineQuery<{ cutoff: Date; limit: number }>(
  'delete-expired-jobs',
  `DELETE FROM jobs WHERE id IN (
     SELECT id FROM jobs
     WHERE queue_state IN ('completed', 'broken') AND NOT persist AND finished_at < $cutoff
     ORDER BY finished_at
     LIMIT $limit
     FOR UPDATE SKIP LOCKED)`,
);
