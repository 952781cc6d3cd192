/**
 * Statements of admission (SPEC section 5.4): counting the slots taken, reading the queue heads
 * and moving the chosen jobs `queued → started`. The choice between them is the engine's
 * (`chooseJobs` in src/engine/controller/admission.ts).
 */
import { defineQuery } from './define-query.js';
import type { RuntimeJobRow } from './job-effects.js';

/**
 * Takes the transaction-level advisory lock that serialises admission across every engine
 * process (`LOCK_KEYS.admission`), so the slots counted cannot change until commit.
 */
export const lockAdmission = defineQuery<{ key: number }>(
  'lock-admission',
  'SELECT pg_advisory_xact_lock($key)',
);

/** The settings and the slots taken, as one row. */
export interface AdmissionStateRow {
  /** Every stored setting by name, or null when there are none. */
  settings: Record<string, string> | null;
  /** Slots taken: started jobs plus paused jobs that still have a running task. */
  r: number | string;
}

/**
 * Reads every setting and counts the slots taken in one round trip. No row locks (run it under
 * {@link lockAdmission}, after which the count cannot grow behind the caller's back).
 */
export const readAdmissionState = defineQuery<Record<string, never>, AdmissionStateRow>(
  'read-admission-state',
  `SELECT (SELECT json_object_agg(name, value) FROM settings) AS settings,
          (SELECT count(*) FROM jobs WHERE queue_state = 'started')
        + (SELECT count(*) FROM jobs j WHERE j.queue_state = 'paused'
             AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'running')) AS r`,
);

/** A queued job as admission orders it. */
export interface AdmissionCandidateRow {
  id: number;
  priority: number;
  top_of_queue: boolean;
  queued_at: Date | null;
}

/**
 * Reads the queue heads admission may start, in one round trip: the first `limit` queued jobs in
 * admission order when `generalFree` (general slots remain), plus the first `limit` priority jobs
 * (`priority <= threshold`). Both halves read `jobs_admission_idx`, so a long run of ineligible
 * jobs at the head costs one indexed read. No locks: the start re-checks the state.
 */
export const readAdmissionCandidates = defineQuery<
  { limit: number; threshold: number; generalFree: boolean },
  AdmissionCandidateRow
>(
  'read-admission-candidates',
  `(SELECT id, priority, top_of_queue, queued_at FROM jobs
     WHERE queue_state = 'queued' AND $generalFree::boolean
     ORDER BY top_of_queue DESC, priority, queued_at NULLS LAST, id LIMIT $limit)
   UNION ALL
   (SELECT id, priority, top_of_queue, queued_at FROM jobs
     WHERE queue_state = 'queued' AND priority <= $threshold
     ORDER BY top_of_queue DESC, priority, queued_at NULLS LAST, id LIMIT $limit)`,
);

/** A started job, with the columns the runtime needs (the engine's `RuntimeJob`), `run` included. */
export type StartedJobRow = RuntimeJobRow & { run: number; retried_from: string | null };

/**
 * Starts the jobs `ids` that are still in one of the states `from` (the admit edge, `queued`), at
 * `now`, and logs "job started" (progname controller) for each; returns the started rows, which
 * stay row-locked until commit. A job paused or broken meanwhile is left alone.
 * Edge: queued → started (admit).
 */
export const startAdmittedJobs = defineQuery<
  { ids: number[]; from: readonly string[]; now: Date },
  StartedJobRow
>(
  'start-admitted-jobs',
  `WITH s AS (
     UPDATE jobs AS j SET queue_state = 'started', started_at = $now, updated_at = $now
      WHERE j.id = ANY($ids::bigint[]) AND j.queue_state = ANY($from::text[])
      RETURNING j.id, j.client, j.workflow, j.priority, j.queue_state, j.content_id,
                j.resolved_parameters, j.definition, j.definition_source, j.run, j.retried_from),
   l AS (INSERT INTO logs (job_id, task_id, severity, progname, message, visible, created_at, updated_at)
         SELECT id, 0, 1, 'controller', 'job started', true, $now, $now FROM s)
   SELECT * FROM s`,
);
