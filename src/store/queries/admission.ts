/**
 * Statements of admission (SPEC section 5.4): counting the slots taken, reading the queue heads
 * and moving the chosen jobs `queued → started`. The choice between them is the engine's
 * (`chooseFairJobs` in src/engine/controller/admission.ts).
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

/**
 * The jobs that hold a slot: started jobs, plus paused jobs that still have a task running (a
 * paused job gives its slot back once nothing of it runs). They hold their concurrency key the same
 * way. A fragment over `jobs j`, for the statements below.
 */
const HOLDS_SLOT_SQL = `j.queue_state IN ('started', 'paused') AND (j.queue_state = 'started'
  OR EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'running'))`;

/** The settings, the per-client settings and the slots taken per client, as one row. */
export interface AdmissionStateRow {
  /** Every stored setting by name, or null when there are none. */
  settings: Record<string, string> | null;
  /** Every client's own settings, or null when there are none. */
  client_settings: { client: string; name: string; value: string }[] | null;
  /** Slots held per client (see {@link HOLDS_SLOT_SQL}), or null when none is held. */
  held: Record<string, number | string> | null;
}

/**
 * Reads every setting, every per-client setting and the slots held per client in one round trip.
 * No row locks (run it under {@link lockAdmission}, after which the counts cannot grow behind the
 * caller's back).
 */
export const readAdmissionState = defineQuery<Record<string, never>, AdmissionStateRow>(
  'read-admission-state',
  `SELECT (SELECT json_object_agg(name, value) FROM settings) AS settings,
          (SELECT json_agg(json_build_object('client', client, 'name', name, 'value', value))
             FROM client_settings) AS client_settings,
          (SELECT json_object_agg(client, n) FROM (
             SELECT j.client, count(*) AS n FROM jobs j WHERE ${HOLDS_SLOT_SQL} GROUP BY j.client) h) AS held`,
);

/** A queued job as admission orders it. */
export interface AdmissionCandidateRow {
  id: number;
  priority: number;
  top_of_queue: boolean;
  queued_at: Date | null;
}

/** A queued job as fair share reads it: its client, its key and how many jobs hold that key now. */
export interface FairCandidateRow extends AdmissionCandidateRow {
  client: string;
  concurrency_key: string | null;
  concurrency_limit: number | null;
  /** Jobs holding `concurrency_key` now (0 without a key). */
  key_held: number | string;
}

/** Parameters of {@link readFairCandidates}. */
export interface FairCandidateParams {
  /** Clients with their own read parameters (the others take the defaults below). */
  clients: string[];
  /** Per client in `clients`: most heads read per half (0: none). */
  limits: number[];
  /** Per client in `clients`: its priority threshold. */
  thresholds: number[];
  /** Per client in `clients`: whether it may take a general slot (else only priority heads are read). */
  generalOk: boolean[];
  /** Per client in `clients`: whether its priority heads are read too (not needed while no slot is reserved). */
  priorityHalf: boolean[];
  /** Defaults for the other clients with queued jobs. */
  limit: number;
  threshold: number;
  generalFree: boolean;
  priorityHalfDefault: boolean;
}

/** The columns of a fair candidate from `jobs j`. */
const CANDIDATE_COLUMNS =
  'j.id, j.client, j.priority, j.top_of_queue, j.queued_at, j.concurrency_key, j.concurrency_limit';

/** Keeps queued jobs whose concurrency key is not full (`holders` is the CTE of key counts). */
const KEY_NOT_FULL_SQL = `(j.concurrency_key IS NULL OR NOT EXISTS (
  SELECT 1 FROM holders h WHERE h.key = j.concurrency_key AND h.n >= j.concurrency_limit))`;

/**
 * Reads each client's queue heads, in one round trip: the clients with queued jobs (walked along
 * `jobs_client_admission_idx`, one probe per client), then per client its first `limit` queued
 * jobs in admission order when it may take a general slot, plus (when slots are reserved for
 * priority work) its first `limit` priority jobs (`priority <= threshold`), both through the same index, so a long backlog or a long run of
 * ineligible jobs costs a few indexed rows per client. Jobs whose concurrency key is full are
 * skipped in the read. Each row carries how many jobs hold its key. No locks: the start re-checks
 * the state.
 */
export const readFairCandidates = defineQuery<FairCandidateParams, FairCandidateRow>(
  'read-fair-candidates',
  `WITH RECURSIVE qc AS (
     (SELECT j.client FROM jobs j WHERE j.queue_state = 'queued' ORDER BY j.client LIMIT 1)
     UNION ALL
     SELECT (SELECT j.client FROM jobs j WHERE j.queue_state = 'queued' AND j.client > qc.client
              ORDER BY j.client LIMIT 1)
       FROM qc WHERE qc.client IS NOT NULL
   ), p AS (
     SELECT * FROM unnest($clients::text[], $limits::int[], $thresholds::int[], $generalOk::boolean[],
                          $priorityHalf::boolean[])
       AS p(client, lim, threshold, general_ok, priority_half)
   ), c AS (
     SELECT qc.client, COALESCE(p.lim, $limit::int) AS lim, COALESCE(p.threshold, $threshold::int) AS threshold,
            COALESCE(p.general_ok, $generalFree::boolean) AS general_ok,
            COALESCE(p.priority_half, $priorityHalfDefault::boolean) AS priority_half
       FROM qc LEFT JOIN p ON p.client = qc.client
      WHERE qc.client IS NOT NULL AND COALESCE(p.lim, $limit::int) > 0
   ), holders AS (
     SELECT j.concurrency_key AS key, count(*)::int AS n FROM jobs j
      WHERE j.concurrency_key IS NOT NULL AND ${HOLDS_SLOT_SQL}
      GROUP BY j.concurrency_key
   )
   SELECT x.*, COALESCE(h.n, 0) AS key_held
     FROM c CROSS JOIN LATERAL (
       (SELECT ${CANDIDATE_COLUMNS} FROM jobs j
         WHERE j.client = c.client AND j.queue_state = 'queued' AND c.general_ok AND ${KEY_NOT_FULL_SQL}
         ORDER BY j.top_of_queue DESC, j.priority, j.queued_at NULLS LAST, j.id LIMIT c.lim)
       UNION ALL
       (SELECT ${CANDIDATE_COLUMNS} FROM jobs j
         WHERE j.client = c.client AND j.queue_state = 'queued' AND c.priority_half AND j.priority <= c.threshold
           AND ${KEY_NOT_FULL_SQL}
         ORDER BY j.top_of_queue DESC, j.priority, j.queued_at NULLS LAST, j.id LIMIT c.lim)
     ) x
     LEFT JOIN holders h ON h.key = x.concurrency_key`,
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

/** A job as `waiting` reads it (src/engine/status/waiting.ts). */
export interface WaitingJobRow extends FairCandidateRow {
  queue_state: string;
  run_at: Date | null;
  semaphore_url: string | null;
  semaphore_answer: string | null;
  semaphore_checked_at: Date | null;
  semaphore_next_check_at: Date | null;
  /** Its tasks running now (a paused job with one still holds its slot). */
  running_tasks: string[];
  /** Queued jobs of its client before it in admission order (when queued and `ranked`). */
  own_ahead: number | string | null;
}

/**
 * Reads jobs `ids` with what `waiting` needs: the admission columns, the semaphore's last answer,
 * the names of their running tasks, the holders of their key, and — when `ranked` — how many
 * queued jobs of the same client come before each queued one (a count over that client's part of
 * `jobs_client_admission_idx`; `/dashboard` ranks its own list instead). No locks.
 */
export const readWaitingJobs = defineQuery<{ ids: number[]; ranked: boolean }, WaitingJobRow>(
  'read-waiting-jobs',
  `SELECT ${CANDIDATE_COLUMNS}, j.queue_state, j.run_at, j.semaphore_url, j.semaphore_answer,
          j.semaphore_checked_at, j.semaphore_next_check_at,
          ARRAY(SELECT t.name FROM tasks t WHERE t.job_id = j.id AND t.state = 'running' ORDER BY t.position) AS running_tasks,
          (SELECT count(*) FROM jobs k
            WHERE j.concurrency_key IS NOT NULL AND k.concurrency_key = j.concurrency_key
              AND ${HOLDS_SLOT_SQL.replaceAll('j.', 'k.')}) AS key_held,
          CASE WHEN $ranked::boolean AND j.queue_state = 'queued' THEN (
            SELECT count(*) FROM jobs q
             WHERE q.client = j.client AND q.queue_state = 'queued'
               AND (NOT q.top_of_queue, q.priority, COALESCE(q.queued_at, 'infinity'::timestamptz), q.id)
                 < (NOT j.top_of_queue, j.priority, COALESCE(j.queued_at, 'infinity'::timestamptz), j.id))
          END AS own_ahead
     FROM jobs j WHERE j.id = ANY($ids::bigint[])`,
);

/**
 * The columns {@link readWaitingJobs} reads beside a job record, for statements that list jobs and
 * explain them in one read (the `/dashboard` lists): the admission and semaphore columns, the
 * running tasks of a paused job (the only state whose `waiting` names them; empty otherwise), and
 * the holders of its key (0 without a key). Qualified with `j`.
 */
export const WAITING_EXTRA_COLUMNS = `j.concurrency_key, j.concurrency_limit, j.semaphore_answer,
  j.semaphore_checked_at, j.semaphore_next_check_at,
  CASE WHEN j.queue_state = 'paused'
    THEN ARRAY(SELECT t.name FROM tasks t WHERE t.job_id = j.id AND t.state = 'running' ORDER BY t.position)
    ELSE '{}'::text[] END AS running_tasks,
  CASE WHEN j.concurrency_key IS NULL THEN 0 ELSE (SELECT count(*) FROM jobs k
    WHERE k.concurrency_key = j.concurrency_key AND ${HOLDS_SLOT_SQL.replaceAll('j.', 'k.')}) END AS key_held,
  NULL::bigint AS own_ahead`;

/**
 * Of the jobs `ids`, those with a ready task (the only started jobs whose `waiting` is not null;
 * see `explainReadyTasks`), so a list of started jobs costs one statement, not one per job. No locks.
 */
export const findJobsWithReadyTasks = defineQuery<{ ids: number[] }, { job_id: number | string }>(
  'find-jobs-with-ready-tasks',
  `SELECT DISTINCT t.job_id FROM tasks t WHERE t.job_id = ANY($ids::bigint[]) AND t.state = 'ready'`,
);

/** A job holding a slot (see {@link HOLDS_SLOT_SQL}). */
export interface SlotHolderRow {
  id: number;
  client: string;
  queue_state: string;
  concurrency_key: string | null;
}

/**
 * Reads jobs that hold a slot, to name them: the first `limit` by id, and the first `limit` of
 * the clients `clients` and of the keys `keys`. No locks.
 */
export const readSlotHolders = defineQuery<
  { limit: number; clients: string[]; keys: string[] },
  SlotHolderRow
>(
  'read-slot-holders',
  `(SELECT j.id, j.client, j.queue_state, j.concurrency_key FROM jobs j WHERE ${HOLDS_SLOT_SQL} ORDER BY j.id LIMIT $limit)
   UNION
   (SELECT j.id, j.client, j.queue_state, j.concurrency_key FROM jobs j
     WHERE j.client = ANY($clients::text[]) AND ${HOLDS_SLOT_SQL} ORDER BY j.id LIMIT $limit)
   UNION
   (SELECT j.id, j.client, j.queue_state, j.concurrency_key FROM jobs j
     WHERE j.concurrency_key = ANY($keys::text[]) AND ${HOLDS_SLOT_SQL} ORDER BY j.id LIMIT $limit)
   ORDER BY id`,
);

/**
 * Queued jobs per client: the sums of `job_state_counts` (kept by triggers, migration 0018), so
 * the cost is the number of clients, not the depth of the queue. No locks.
 */
export const countQueuedByClient = defineQuery<Record<string, never>, { client: string; n: number | string }>(
  'count-queued-by-client',
  `SELECT client, sum(n) AS n FROM job_state_counts WHERE queue_state = 'queued'
     GROUP BY client HAVING sum(n) <> 0`,
);

/**
 * Jobs that ended after having started since `since` (slots freed), per client. Reads
 * `jobs_finished_at_idx`. No locks.
 */
export const countSlotsFreedSince = defineQuery<{ since: Date }, { client: string; n: number | string }>(
  'count-slots-freed-since',
  `SELECT client, count(*) AS n FROM jobs
    WHERE finished_at >= $since::timestamptz AND started_at IS NOT NULL AND finished_at IS NOT NULL
    GROUP BY client`,
);
