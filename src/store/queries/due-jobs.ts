/**
 * Statements of jobs waiting on time or on a semaphore (SPEC sections 5.3 and 8): scheduled jobs
 * whose `run_at` has come, and pending jobs whose semaphore may have opened. The states stay
 * literals in the text so the partial index `jobs_due_idx` (`queue_state IN ('scheduled',
 * 'pending')`) serves them; the engine declares the edges beside each call (scheduler/due-jobs.ts,
 * scheduler/semaphores.ts) and a unit test there checks the text against them.
 */
import { defineQuery } from './define-query.js';

/** A job moved by {@link moveDueScheduledJobs}. */
export interface MovedDueJobRow {
  id: number;
  /** `queued`, or `pending` when it has a semaphore. */
  queue_state: string;
  run_at: Date;
  semaphore_url: string | null;
}

/**
 * Moves up to `limit` scheduled jobs whose `run_at <= now`, oldest `run_at` first:
 * `scheduled → queued` (queued_at = now) without a semaphore, `scheduled → pending` with one
 * (edges `due`). Locks: `FOR UPDATE SKIP LOCKED` on the job rows (a row locked by another
 * transaction waits for the next pass); the state is re-checked in the `UPDATE`.
 */
export const moveDueScheduledJobs = defineQuery<{ now: Date; limit: number }, MovedDueJobRow>(
  'move-due-scheduled-jobs',
  `WITH due AS (
     SELECT id FROM jobs
     WHERE queue_state = 'scheduled' AND run_at <= $now
     ORDER BY run_at, id
     LIMIT $limit
     FOR UPDATE SKIP LOCKED)
   UPDATE jobs j
   SET queue_state = CASE WHEN COALESCE(j.semaphore_url, '') = '' THEN 'queued' ELSE 'pending' END,
       queued_at = CASE WHEN COALESCE(j.semaphore_url, '') = '' THEN $now ELSE j.queued_at END,
       updated_at = $now
   FROM due
   WHERE j.id = due.id AND j.queue_state = 'scheduled'
   RETURNING j.id, j.queue_state, j.run_at, j.semaphore_url`,
);

/** The earliest `run_at` of a scheduled job (null when none waits). No locks. */
export const selectNextScheduledRunAt = defineQuery<Record<string, never>, { next: Date | null }>(
  'select-next-scheduled-run-at',
  `SELECT min(run_at) AS next FROM jobs WHERE queue_state = 'scheduled'`,
);

/** A pending job whose semaphore is to be asked. */
export interface PendingJobRow {
  id: number;
  semaphore_url: string | null;
  /** The row's version: a change of it restarts the job's backoff. */
  updated_at: Date;
}

/** Up to `limit` pending jobs, oldest `run_at` first. No locks. */
export const listPendingJobs = defineQuery<{ limit: number }, PendingJobRow>(
  'list-pending-jobs',
  `SELECT id, semaphore_url, updated_at FROM jobs WHERE queue_state = 'pending' ORDER BY run_at, id LIMIT $limit`,
);

/**
 * `pending → queued` (edge `semaphore`) for job `id` whose semaphore `url` answered go, only
 * while it is still pending on that same url (a job paused, broken or re-pointed meanwhile
 * touches no row). Row lock on the job.
 */
export const queueJobOnSemaphore = defineQuery<{ id: number; now: Date; url: string | null }>(
  'queue-job-on-semaphore',
  `UPDATE jobs SET queue_state = 'queued', queued_at = $now, updated_at = $now
   WHERE id = $id AND queue_state = 'pending' AND semaphore_url IS NOT DISTINCT FROM $url`,
);

/**
 * Records the last "not yet" of pending job `id`'s semaphore (`answer`, e.g. `HTTP 503`), when it
 * was asked (`now`) and when it is asked next, for `waiting` (migration 0010). Leaves `updated_at`
 * alone: it is the row's version for the checker's backoff. Row lock on the job; no transition.
 */
export const recordSemaphoreAnswer = defineQuery<{ id: number; answer: string; now: Date; next: Date }>(
  'record-semaphore-answer',
  `UPDATE jobs SET semaphore_answer = $answer, semaphore_checked_at = $now, semaphore_next_check_at = $next
   WHERE id = $id AND queue_state = 'pending'`,
);
