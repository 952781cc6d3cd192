/**
 * Statements of a retry (`POST /jobs/<id>/retry`): a completed-failed or broken job runs again as
 * the same job, from the tasks that did not succeed. The caller locks the job row first
 * (`lockVisibleJob`) and passes the edges' states from the transition tables.
 */
import { defineQuery } from './define-query.js';
import { SEARCHABLE_JOB } from './jobs.js';

/** Parameters of {@link retryJobState}. */
export interface RetryJobStateParams {
  id: number;
  /** The job's state as the caller read it under its lock (`completed` or `broken`). */
  from: string;
  now: Date;
  /** The parameters as submitted, with the retry's changes merged in (JSON text). */
  parameters: string;
  /** Those parameters with the definition's defaults applied (JSON text). */
  resolvedParameters: string;
  /** The first task that did not succeed (the one the run resumes from), or null. */
  retriedFrom: string | null;
  /** The job concurrency key rendered again from those parameters (null: none). */
  concurrencyKey: string | null;
}

/**
 * Queues job `id` again for a new run if it is still in `from`: `run + 1`, `retried_at` and
 * `queued_at` = now, `failed`, `finished_at`, `outputs` and `error` cleared, the merged
 * parameters stored with the concurrency key they render, and the search row made to follow them
 * (written when the job now has something to search, removed when it has not: `SEARCHABLE_JOB`).
 * Row lock on the job.
 * Edges: completed, broken → queued (retry_job).
 * @returns the job's new `run`; no row when the job left `from` meanwhile.
 */
export const retryJobState = defineQuery<RetryJobStateParams, { run: number }>(
  'retry-job-state',
  `WITH j AS (
     UPDATE jobs SET queue_state = 'queued', failed = false, finished_at = NULL, outputs = NULL, error = NULL,
                     run = run + 1, retried_at = $now::timestamptz, retried_from = $retriedFrom::text,
                     queued_at = $now::timestamptz, updated_at = $now::timestamptz,
                     parameters = $parameters::jsonb, resolved_parameters = $resolvedParameters::jsonb,
                     concurrency_key = $concurrencyKey::text
      WHERE id = $id AND queue_state = $from
      RETURNING id, run, content_id, parameters),
   s AS (INSERT INTO job_search (job_id, content_id, parameters_text)
         SELECT id, content_id, parameters::text FROM j WHERE ${SEARCHABLE_JOB}
         ON CONFLICT (job_id) DO UPDATE SET parameters_text = EXCLUDED.parameters_text),
   d AS (DELETE FROM job_search WHERE job_id IN (SELECT id FROM j WHERE NOT ${SEARCHABLE_JOB}))
   SELECT run FROM j`,
);

/**
 * Sends the tasks of job `jobId` that are in one of `from` (failed, cancelled, skipped), and its
 * cleanup tasks `cleanup` in any of `cleanupFrom` (also succeeded: they run again in each run),
 * back to `waiting` for a new run: error, output and `finished_at` cleared, `run_after` now;
 * `attempts` is kept, so attempt numbers go on from the earlier ones. Admission then releases
 * those whose needs ended well, as for any started job. Row locks on those tasks.
 * Edges: failed, cancelled, skipped (and succeeded, cleanup tasks only) → waiting (retry_job).
 * @returns the tasks sent back.
 */
export const resetTasksForRetry = defineQuery<
  { jobId: number; from: readonly string[]; cleanup: string[]; cleanupFrom: readonly string[]; now: Date },
  { id: number; name: string }
>(
  'reset-tasks-for-retry',
  `UPDATE tasks SET state = 'waiting', error = NULL, output = NULL, finished_at = NULL,
                    run_after = $now::timestamptz, updated_at = $now::timestamptz
    WHERE job_id = $jobId
      AND (state = ANY($from::text[]) OR (name = ANY($cleanup::text[]) AND state = ANY($cleanupFrom::text[])))
   RETURNING id, name`,
);
