/**
 * Statements on jobs and what belongs to one job alone (its search row, its log): submission,
 * the state changes a person asks for, reads of one job, its tasks and its log. The engine's
 * rules (which transition is allowed, what is logged) are in src/engine/jobs/; these only read
 * and write rows.
 */
import type { Queryable } from '../executor.js';
import { WAITING_EXTRA_COLUMNS } from './admission.js';
import { defineQuery } from './define-query.js';

/** Columns behind a job record (`JobRow` in src/engine/jobs/records.ts), qualified with `j`. */
export const JOB_COLUMNS =
  'j.id, j.client, j.workflow, j.priority, j.top_of_queue, j.parameters, j.created_at, j.updated_at, ' +
  'j.queue_state, j.failed, j.run_at, j.persist, j.started_at, j.finished_at, j.semaphore_url, j.queued_at, ' +
  'j.rerun_of, j.rerun_by, j.idempotency_key, j.run, j.retried_at';

/**
 * The order of each state's list, shared by `/dashboard` and `position`: queued jobs in
 * admission order (SPEC 5.4: `top_of_queue` first, then priority ascending, then the time they
 * became queued, then id); every other state by id.
 */
export const STATE_LIST_ORDER_SQL =
  "(CASE WHEN j.queue_state = 'queued' THEN NOT j.top_of_queue END), " +
  "(CASE WHEN j.queue_state = 'queued' THEN j.priority END), " +
  "(CASE WHEN j.queue_state = 'queued' THEN j.queued_at END), j.id";

/** Parameters of {@link insertJobs}: arrays with one element per job, in order, plus the log lines. */
export interface InsertJobsParams {
  clients: string[];
  workflows: string[];
  priorities: number[];
  /** First state of each job. */
  states: string[];
  persists: boolean[];
  /** JSON text. */
  parameters: string[];
  /** JSON text. */
  resolvedParameters: string[];
  /** JSON text of the frozen definition. */
  definitions: string[];
  definitionSources: string[];
  contentIds: (string | null)[];
  runAts: string[];
  semaphoreUrls: (string | null)[];
  queuedAts: (string | null)[];
  rerunOfs: (number | null)[];
  /** The submission time: `created_at`, `updated_at` of the job and its tasks. */
  createdAts: string[];
  topOfQueues: boolean[];
  /** Channel to wake per job, and its payload (null: the new id). */
  notifyChannels: string[];
  notifyPayloads: (string | null)[];
  /**
   * JSON text per job: `[{name, queue, needs, slots, concurrency_key, concurrency_limit}]` in
   * definition order (the last three optional: 1, null, null).
   */
  tasks: string[];
  /** Per log line, in writing order: the 1-based position of its job in the arrays, and its message. */
  logJobs: number[];
  logMessages: string[];
  /** `job.idempotency_key` per job (null: none). No two jobs of one call may share a client and key. */
  idempotencyKeys: (string | null)[];
  /** Per job with a key, the fingerprint of its content (null without a key). */
  fingerprints: (string | null)[];
  /** Per job: its rendered job concurrency key and limit (null without one; migration 0010). */
  concurrencyKeys: (string | null)[];
  concurrencyLimits: (number | null)[];
  /**
   * Per job trace (docs/tracing.md; empty arrays with tracing off): the 1-based position of its job
   * in the arrays, its trace id, job span id, parent span id (null: root) and trace flags.
   */
  traceJobs: number[];
  traceIds: string[];
  traceSpanIds: string[];
  traceParentSpanIds: (string | null)[];
  traceFlags: number[];
  /** Name of the setting that holds the key retention window in seconds, and its default. */
  retentionSetting: string;
  defaultRetentionSeconds: number;
}

/**
 * SQL condition on a job's `content_id` and `parameters` (unqualified, so it reads the columns of
 * whatever row source it stands in): true when the job has something to search, i.e. when it gets
 * a `job_search` row. A job with no `content_id` and parameters `{}` has none: its only searchable
 * text would be the two characters `{}`, which {@link buildJobListing} matches on the job row
 * itself. One row and three index entries less per such job (most jobs of a workflow without
 * parameters).
 */
export const SEARCHABLE_JOB = `(content_id IS NOT NULL OR parameters <> '{}'::jsonb)`;

/** One answer row of {@link insertJobs}, per job given. */
export interface InsertJobsRow {
  /** 1-based position of the job in the arrays. */
  ord: number;
  /** The new job's id, or for a key already taken within the window, the id of the job that holds it. */
  id: number;
  /** False when the key was already taken within the window: nothing was written for this job. */
  created: boolean;
  /** When not created: the fingerprint stored with the key by the job that holds it. Else null. */
  key_fingerprint: string | null;
}

/**
 * Writes whole submissions, any number at once (data-modifying CTEs, so one statement is one
 * round trip and atomic without an explicit transaction): per job its row, its search row
 * (content_id and the parameters' text, for the `search` filter; none for a job with nothing to
 * search, see {@link SEARCHABLE_JOB}), its tasks (all `waiting`,
 * definition order, each with its job's client), its log lines, and the wake-up of admission or the scheduler (at commit).
 * Ids are drawn first, in array order, so each answer row (`ord`, 1-based) names its submission.
 *
 * A job with an idempotency key first takes its key in `job_idempotency_keys` (`ON CONFLICT` on
 * the (client, key) primary key). A key another job took less than the retention window ago
 * (setting `retentionSetting`, in seconds, compared on `created_at`) stays with that job: this job
 * is not written, and its answer row carries the holder's id and fingerprint. An older key is
 * taken over. The conflict branch always updates (to the same values when the key is kept), so it
 * waits for a concurrent submission of the same key to commit and then returns that row: two
 * engines submitting one key at once make one job. A key can appear only once per call (`DO
 * UPDATE` may not touch a row twice): the caller answers duplicates inside a batch itself.
 * The retention setting is read here, in the statement, so a keyed batch stays one round trip; a
 * stored value that is not a whole number counts as the default, as `parseSettings` reads it.
 * Locks: the new rows, and the key rows of the keyed jobs (row lock, until commit).
 * No transition: a job is born in its first state.
 */
export const insertJobs = defineQuery<InsertJobsParams, InsertJobsRow>(
  'insert-jobs',
  `WITH u AS (
  SELECT u.*, nextval('jobs_id_seq') AS id
  FROM unnest($clients::text[], $workflows::text[], $priorities::int[], $states::text[],
              $persists::boolean[], $parameters::text[], $resolvedParameters::text[],
              $definitions::text[], $definitionSources::text[], $contentIds::text[],
              $runAts::timestamptz[], $semaphoreUrls::text[], $queuedAts::timestamptz[],
              $rerunOfs::bigint[], $createdAts::timestamptz[], $topOfQueues::boolean[],
              $notifyChannels::text[], $notifyPayloads::text[], $tasks::text[],
              $idempotencyKeys::text[], $fingerprints::text[], $concurrencyKeys::text[],
              $concurrencyLimits::int[])
       WITH ORDINALITY AS u(client, workflow, priority, queue_state, persist, parameters, resolved_parameters,
                            definition, definition_source, content_id, run_at, semaphore_url, queued_at,
                            rerun_of, created_at, top_of_queue, notify_channel, notify_payload, tasks,
                            idempotency_key, fingerprint, concurrency_key, concurrency_limit, ord)
  ORDER BY u.ord
), retention AS (
  SELECT make_interval(secs => COALESCE(
           (SELECT CASE WHEN s.value ~ '^-?[0-9]{1,15}$' THEN s.value::bigint END
              FROM settings s WHERE s.name = $retentionSetting),
           $defaultRetentionSeconds::bigint)) AS keep_for
), k AS (
  INSERT INTO job_idempotency_keys AS x (client, idempotency_key, job_id, fingerprint, created_at)
  SELECT client, idempotency_key, id, fingerprint, created_at FROM u
  WHERE idempotency_key IS NOT NULL ORDER BY u.ord
  ON CONFLICT (client, idempotency_key) DO UPDATE SET
    job_id = CASE WHEN x.created_at <= EXCLUDED.created_at - (SELECT keep_for FROM retention)
                  THEN EXCLUDED.job_id ELSE x.job_id END,
    fingerprint = CASE WHEN x.created_at <= EXCLUDED.created_at - (SELECT keep_for FROM retention)
                       THEN EXCLUDED.fingerprint ELSE x.fingerprint END,
    created_at = CASE WHEN x.created_at <= EXCLUDED.created_at - (SELECT keep_for FROM retention)
                      THEN EXCLUDED.created_at ELSE x.created_at END
  RETURNING x.client, x.idempotency_key, x.job_id, x.fingerprint
), held AS (
  -- Submissions whose key another job holds: nothing is written for them. Empty without keys.
  SELECT u.ord, k.job_id, k.fingerprint
  FROM u JOIN k ON k.client = u.client AND k.idempotency_key = u.idempotency_key
  WHERE k.job_id <> u.id
), j AS (
  INSERT INTO jobs (id, client, workflow, priority, queue_state, persist, parameters, resolved_parameters,
                    definition, definition_source, content_id, run_at, semaphore_url, queued_at, rerun_of,
                    created_at, updated_at, top_of_queue, idempotency_key, concurrency_key, concurrency_limit)
  SELECT id, client, workflow, priority, queue_state, persist, parameters::jsonb, resolved_parameters::jsonb,
         definition::jsonb, definition_source, content_id, run_at, semaphore_url, queued_at, rerun_of,
         created_at, created_at, top_of_queue, idempotency_key, concurrency_key, concurrency_limit
  FROM u WHERE u.ord NOT IN (SELECT ord FROM held) ORDER BY u.ord
  RETURNING id, content_id, parameters
), s AS (
  INSERT INTO job_search (job_id, content_id, parameters_text)
  SELECT id, content_id, parameters::text FROM j WHERE ${SEARCHABLE_JOB}
), t AS (
  INSERT INTO tasks (job_id, client, name, position, queue, needs, slots, concurrency_key, concurrency_limit,
                     created_at, updated_at)
  SELECT u.id, u.client, x.e->>'name', (x.ord - 1)::int, x.e->>'queue',
         ARRAY(SELECT jsonb_array_elements_text(x.e->'needs')), COALESCE((x.e->>'slots')::int, 1),
         x.e->>'concurrency_key', (x.e->>'concurrency_limit')::int, u.created_at, u.created_at
  FROM u, jsonb_array_elements(u.tasks::jsonb) WITH ORDINALITY AS x(e, ord)
  WHERE u.ord NOT IN (SELECT ord FROM held)
  ORDER BY u.ord, x.ord
), l AS (
  INSERT INTO logs (job_id, task_id, severity, progname, message, visible, created_at, updated_at)
  SELECT u.id, 0, 1, 'api', m.message, true, u.created_at, u.created_at
  FROM unnest($logJobs::int[], $logMessages::text[]) WITH ORDINALITY AS m(job, message, ord)
  JOIN u ON u.ord = m.job
  WHERE u.ord NOT IN (SELECT ord FROM held)
  ORDER BY m.ord
), tr AS (
  INSERT INTO job_traces (job_id, trace_id, span_id, parent_span_id, trace_flags)
  SELECT u.id, x.trace_id, x.span_id, x.parent_span_id, x.flags
  FROM unnest($traceJobs::int[], $traceIds::text[], $traceSpanIds::text[], $traceParentSpanIds::text[],
              $traceFlags::smallint[]) AS x(job, trace_id, span_id, parent_span_id, flags)
  JOIN u ON u.ord = x.job
  WHERE u.ord NOT IN (SELECT ord FROM held)
)
SELECT u.ord, COALESCE(h.job_id, u.id) AS id, h.ord IS NULL AS created, h.fingerprint AS key_fingerprint,
       CASE WHEN h.ord IS NULL THEN pg_notify(u.notify_channel, COALESCE(u.notify_payload, u.id::text)) END
FROM u LEFT JOIN held h ON h.ord = u.ord
ORDER BY u.ord`,
);

/**
 * Records on job `id` the newest job that reran it (`rerun_by`), at `now`. Row lock on the job
 * (the rerun holds it already). No transition.
 */
export const setJobRerunBy = defineQuery<{ id: number; rerunBy: number; now: Date }>(
  'set-job-rerun-by',
  'UPDATE jobs SET rerun_by = $rerunBy, updated_at = $now WHERE id = $id',
);

/** The job row that the state-change helpers need. */
export interface LockedJobRow {
  id: number;
  client: string;
  workflow: string;
  queue_state: string;
  started_at: Date | null;
  content_id: string | null;
  resolved_parameters: Record<string, unknown>;
}

/** Reads job `id` and locks its row (`FOR UPDATE`) until the end of the transaction. */
export const lockJobForUpdate = defineQuery<{ id: number }, LockedJobRow>(
  'lock-job-for-update',
  `SELECT id, client, workflow, queue_state, started_at, content_id, resolved_parameters
   FROM jobs WHERE id = $id FOR UPDATE`,
);

/** Reads the state of job `id` (after a transition lost a race). No locks. */
export const readJobState = defineQuery<{ id: number }, { queue_state: string }>(
  'read-job-state',
  'SELECT queue_state FROM jobs WHERE id = $id',
);

/** Parameters shared by the transition statements: the job, the state it must still be in, the time. */
export interface JobTransitionParams {
  id: number;
  from: string;
  now: Date;
}

/**
 * Moves job `id` from `from` to `to` at `now`, nothing else (pause). Zero rows when the job left
 * `from`. Row lock on the job. Edges: the caller's, checked with `assertTransition`.
 */
export const moveJobState = defineQuery<JobTransitionParams & { to: string }>(
  'move-job-state',
  'UPDATE jobs SET queue_state = $to, updated_at = $now WHERE id = $id AND queue_state = $from',
);

/**
 * Breaks job `id` if it is still in `from`: `broken`, finished at `now` unless `keepFinishedAt`
 * (a completed job superseded by a rerun keeps its finish time). Row lock on the job.
 * Edges: any live state → broken (break); completed → broken (rerun).
 */
export const breakJobState = defineQuery<JobTransitionParams & { keepFinishedAt: boolean }>(
  'break-job-state',
  `UPDATE jobs SET queue_state = 'broken', updated_at = $now,
                   finished_at = CASE WHEN $keepFinishedAt::boolean THEN finished_at ELSE $now END
   WHERE id = $id AND queue_state = $from`,
);

/**
 * Queues job `id` if it is still in `from`, at `now` (`queued_at`); a scheduled job's `run_at`
 * becomes `now` too (it was forced due). Row lock on the job.
 * Edges: paused, scheduled, pending → queued (resume).
 */
export const queueJobState = defineQuery<JobTransitionParams>(
  'queue-job-state',
  `UPDATE jobs SET queue_state = 'queued', updated_at = $now, queued_at = $now,
                   run_at = CASE WHEN $from = 'scheduled' THEN $now ELSE run_at END
   WHERE id = $id AND queue_state = $from`,
);

/**
 * Reschedules job `id` if it is still in `from`: new `run_at` and `semaphore_url`, state `to`;
 * `queued_at` becomes `now` when it is queued by this change. Row lock on the job.
 * Edges: scheduled, pending, queued → scheduled, pending, queued (reschedule).
 */
export const rescheduleJobState = defineQuery<
  JobTransitionParams & { to: string; runAt: Date; semaphoreUrl: string | null }
>(
  'reschedule-job-state',
  `UPDATE jobs SET queue_state = $to, updated_at = $now, run_at = $runAt, semaphore_url = $semaphoreUrl,
                   queued_at = CASE WHEN $to = 'queued' AND queue_state <> 'queued' THEN $now ELSE queued_at END
   WHERE id = $id AND queue_state = $from`,
);

/** Cancels the running attempts of job `id` at `now` with `error`; row locks on them. */
export const cancelRunningAttemptsOfJob = defineQuery<{ jobId: number; now: Date; error: string }>(
  'cancel-running-attempts-of-job',
  `UPDATE attempts SET state = 'cancelled', finished_at = $now, error = $error
   WHERE job_id = $jobId AND state = 'running'`,
);

/**
 * Fails the tasks of job `id` that are in one of `from` (unfinished), at `now` with `error`, except
 * the `keepUnstarted` ones still waiting or ready; row locks on them. Edge: waiting, ready, running → failed (break).
 */
export const failUnfinishedTasksOfJob = defineQuery<{
  jobId: number;
  from: readonly string[];
  now: Date;
  error: string;
  /** Tasks left alone while `waiting` or `ready` (the cleanup tasks that run after the break). */
  keepUnstarted: string[];
}>(
  'fail-unfinished-tasks-of-job',
  `UPDATE tasks SET state = 'failed', error = $error, finished_at = $now, updated_at = $now
   WHERE job_id = $jobId AND state = ANY($from::text[])
     AND NOT (state IN ('waiting', 'ready') AND name = ANY($keepUnstarted::text[]))`,
);

/** Sets `persist` of job `id` at `now`. Row lock on the job. */
export const setJobPersist = defineQuery<{ id: number; persist: boolean; now: Date }>(
  'set-job-persist',
  'UPDATE jobs SET persist = $persist, updated_at = $now WHERE id = $id',
);

/** Sets `priority` of job `id` at `now`. Row lock on the job. */
export const setJobPriority = defineQuery<{ id: number; priority: number; now: Date }>(
  'set-job-priority',
  'UPDATE jobs SET priority = $priority, updated_at = $now WHERE id = $id',
);

/** Sets `top_of_queue` of job `id` at `now`. Row lock on the job. */
export const setJobTopOfQueue = defineQuery<{ id: number; topOfQueue: boolean; now: Date }>(
  'set-job-top-of-queue',
  'UPDATE jobs SET top_of_queue = $topOfQueue, updated_at = $now WHERE id = $id',
);

/** Appends one entry to a job's log. No locks beyond the new row (and a key share on the job). */
export const appendJobLog = defineQuery<{
  jobId: number;
  taskId: number;
  severity: number;
  progname: string;
  message: string;
  visible: boolean;
  now: Date;
}>(
  'append-job-log',
  `INSERT INTO logs (job_id, task_id, severity, progname, message, visible, created_at, updated_at)
   VALUES ($jobId, $taskId, $severity, $progname, $message, $visible, $now::timestamptz, $now::timestamptz)`,
);

/** A `logs` row as `GET /logs/<id>` shows it. */
export interface JobLogRow {
  id: number;
  job_id: number;
  severity: number;
  progname: string;
  message: string;
  created_at: Date;
  updated_at: Date;
  task_id: number;
  visible: boolean;
}

/** Reads a job's log in order; hidden entries only when `showAll`. No locks. */
export const readJobLogs = defineQuery<{ jobId: number; showAll: boolean }, JobLogRow>(
  'read-job-logs',
  `SELECT id, job_id, severity, progname, message, created_at, updated_at, task_id, visible
   FROM logs WHERE job_id = $jobId AND ($showAll::boolean OR visible) ORDER BY id`,
);

/** A `tasks` row as `GET /jobs/<id>` shows it. */
export interface JobTaskRow {
  id: number;
  name: string;
  queue: string;
  state: string;
  attempts: number;
  started_at: Date | null;
  finished_at: Date | null;
  error: string | null;
  /** Names of the tasks it waits for (the graph's edges). */
  needs: string[];
  /** What its handler returned, once it succeeded; else null. */
  output: unknown;
  /** 0..1 as last reported by the running handler (throttled); null before it starts. */
  progress: number | null;
  progress_message: string | null;
  progress_detail: Record<string, unknown> | null;
  progress_at: Date | null;
  /** Earliest start of its next attempt (a retry's delay). */
  run_after: Date;
  created_at: Date;
}

/** Reads the tasks of a job in definition order. No locks. */
export const readJobTasks = defineQuery<{ jobId: number }, JobTaskRow>(
  'read-job-tasks',
  `SELECT id, name, queue, state, attempts, started_at, finished_at, error, needs, output,
          progress, progress_message, progress_detail, progress_at, run_after, created_at
   FROM tasks WHERE job_id = $jobId ORDER BY position, id`,
);

/**
 * Ranks jobs within their states by a window over every row of those states: for each of `ids`,
 * its 1-based position among ALL jobs in its state (one of `states`), in
 * {@link STATE_LIST_ORDER_SQL}. It sorts the whole of each state per call (O(rows in the states)),
 * so the engine no longer uses it for `position`; it stays as the reference ranking that the
 * tests compare {@link countJobsInBoxes} against. No locks.
 */
export const rankJobsInStates = defineQuery<
  { states: string[]; ids: number[] },
  { id: number; position: number }
>(
  'rank-jobs-in-states',
  `SELECT id, position FROM (
     SELECT j.id, row_number() OVER (PARTITION BY j.queue_state ORDER BY ${STATE_LIST_ORDER_SQL}) AS position
     FROM jobs j WHERE j.queue_state = ANY($states::text[])
   ) ranked WHERE id = ANY($ids::bigint[])`,
);

/** The list-order key of a job, as {@link readListKeys} reads it. */
export interface ListKeyRow {
  id: number;
  queue_state: string;
  top_of_queue: boolean;
  priority: number;
  /**
   * `queued_at` in UTC at full (microsecond) precision, `YYYY-MM-DDTHH:MM:SS.ffffffZ`, so that
   * two keys compare as text and a bound goes back to the database without the millisecond
   * rounding of a JavaScript Date; null when not set.
   */
  queued_at_us: string | null;
}

/** Reads the list-order keys of jobs `ids` (primary-key lookups). No locks. */
export const readListKeys = defineQuery<{ ids: number[] }, ListKeyRow>(
  'read-list-keys',
  `SELECT j.id, j.queue_state, j.top_of_queue, j.priority,
          to_char(j.queued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS queued_at_us
     FROM jobs j WHERE j.id = ANY($ids::bigint[])`,
);

/**
 * Kinds of the boxes {@link countJobsInBoxes} counts. A box is a set of jobs of one state that is
 * one contiguous range of an index in that state's list order, so it is counted by one
 * index-only range scan whose cost is the number of entries in it:
 * - `PRIORITY`: queued, `top_of_queue = t`, `plo <= priority < phi` (`jobs_admission_idx`);
 * - `QUEUED_AT`: queued, `top_of_queue = t`, `priority = plo`, `qlo < queued_at < qhi` (the
 *   bounds may be `-infinity` / `infinity`; a NULL `queued_at` is never inside);
 * - `QUEUED_AT_NULL`: queued, `top_of_queue = t`, `priority = plo`, `queued_at IS NULL`;
 * - `ID_AT`: queued, `top_of_queue = t`, `priority = plo`, `queued_at = qlo`, `idlo <= id < idhi`;
 * - `ID_AT_NULL`: as `ID_AT` with `queued_at IS NULL`;
 * - `STATE_ID`: `queue_state = state`, `idlo <= id < idhi` (`jobs_state_id_idx`), for the states
 *   listed by id.
 */
export const BOX_KIND = {
  PRIORITY: 0,
  QUEUED_AT: 1,
  QUEUED_AT_NULL: 2,
  ID_AT: 3,
  ID_AT_NULL: 4,
  STATE_ID: 5,
} as const;

/** Parameters of {@link countJobsInBoxes}: one element per box in each array. */
export interface CountBoxesParams {
  /** The caller's tag of each box (the answer sums per tag). */
  tags: number[];
  /** {@link BOX_KIND} of each box. */
  kinds: number[];
  /** State (`STATE_ID` boxes; ignored otherwise). */
  states: string[];
  tops: boolean[];
  plos: number[];
  phis: number[];
  /** Timestamps as text (`-infinity`, `infinity` or ISO-8601 with microseconds), or null. */
  qlos: (string | null)[];
  qhis: (string | null)[];
  idlos: number[];
  idhis: number[];
}

/**
 * Counts the jobs in each box (see {@link BOX_KIND}) and sums them per tag. Each box is one
 * index-only range scan (a SubPlan per box kind, its bounds as index conditions), so the cost is
 * the number of index entries inside the boxes plus one index descent per box — never a sort nor
 * a scan of the whole state. No locks.
 */
export const countJobsInBoxes = defineQuery<CountBoxesParams, { tag: number; n: number | string }>(
  'count-jobs-in-boxes',
  `SELECT b.tag, sum(CASE b.kind
     WHEN 0 THEN (SELECT count(*) FROM jobs j WHERE j.queue_state = 'queued' AND j.top_of_queue = b.t
                    AND j.priority >= b.plo AND j.priority < b.phi)
     WHEN 1 THEN (SELECT count(*) FROM jobs j WHERE j.queue_state = 'queued' AND j.top_of_queue = b.t
                    AND j.priority = b.plo AND j.queued_at > b.qlo AND j.queued_at < b.qhi)
     WHEN 2 THEN (SELECT count(*) FROM jobs j WHERE j.queue_state = 'queued' AND j.top_of_queue = b.t
                    AND j.priority = b.plo AND j.queued_at IS NULL)
     WHEN 3 THEN (SELECT count(*) FROM jobs j WHERE j.queue_state = 'queued' AND j.top_of_queue = b.t
                    AND j.priority = b.plo AND j.queued_at = b.qlo AND j.id >= b.idlo AND j.id < b.idhi)
     WHEN 4 THEN (SELECT count(*) FROM jobs j WHERE j.queue_state = 'queued' AND j.top_of_queue = b.t
                    AND j.priority = b.plo AND j.queued_at IS NULL AND j.id >= b.idlo AND j.id < b.idhi)
     ELSE (SELECT count(*) FROM jobs j WHERE j.queue_state = b.state AND j.id >= b.idlo AND j.id < b.idhi)
   END) AS n
   FROM unnest($tags::int[], $kinds::int[], $states::text[], $tops::boolean[], $plos::int[], $phis::int[],
               $qlos::timestamptz[], $qhis::timestamptz[], $idlos::bigint[], $idhis::bigint[])
        AS b(tag, kind, state, t, plo, phi, qlo, qhi, idlo, idhi)
   GROUP BY b.tag`,
);

/**
 * Columns of a job record without `parameters` (the `/dashboard` rows), qualified with `j`, and
 * what explaining the row (`waiting`) needs, so a list is explained without reading its rows again.
 */
const LIST_COLUMNS_NO_PARAMETERS = `${JOB_COLUMNS.replace('j.parameters, ', '')}, ${WAITING_EXTRA_COLUMNS}`;

/**
 * The first `limit` queued jobs in admission order (the `/dashboard` queued list), read along
 * `jobs_admission_idx`: cost `limit` index entries, whatever the depth of the queue. No locks.
 */
export const listQueuedJobs = defineQuery<{ limit: number }>(
  'list-queued-jobs',
  `SELECT ${LIST_COLUMNS_NO_PARAMETERS} FROM jobs j WHERE j.queue_state = 'queued'
   ORDER BY j.top_of_queue DESC, j.priority, j.queued_at, j.id LIMIT $limit`,
);

/** {@link listQueuedJobs} of one client, along `jobs_client_admission_idx`. No locks. */
export const listClientQueuedJobs = defineQuery<{ client: string; limit: number }>(
  'list-client-queued-jobs',
  `SELECT ${LIST_COLUMNS_NO_PARAMETERS} FROM jobs j WHERE j.queue_state = 'queued' AND j.client = $client
   ORDER BY j.top_of_queue DESC, j.priority, j.queued_at, j.id LIMIT $limit`,
);

/** The first `limit` jobs in `state` by id (a `/dashboard` list other than queued), along `jobs_state_id_idx`. No locks. */
export const listStateJobs = defineQuery<{ state: string; limit: number }>(
  'list-state-jobs',
  `SELECT ${LIST_COLUMNS_NO_PARAMETERS} FROM jobs j WHERE j.queue_state = $state ORDER BY j.id LIMIT $limit`,
);

/** {@link listStateJobs} of one client, along `jobs_client_state_id_idx`. No locks. */
export const listClientStateJobs = defineQuery<{ state: string; client: string; limit: number }>(
  'list-client-state-jobs',
  `SELECT ${LIST_COLUMNS_NO_PARAMETERS} FROM jobs j WHERE j.queue_state = $state AND j.client = $client
   ORDER BY j.id LIMIT $limit`,
);

/** Columns of a job read by {@link readVisibleJob}: a job record plus what a rerun needs. */
const VISIBLE_JOB_SELECT = `SELECT ${JOB_COLUMNS}, j.definition, j.resolved_parameters, j.content_id,
       j.definition_source, j.schedule, j.scheduled_for, j.outputs, j.error
   FROM jobs j WHERE j.id = $id AND ($admin::boolean OR j.client = $client)`;

/** Reads job `id` if the viewer (`admin`, or the owner `client`) may see it. No locks. */
export const readVisibleJob = defineQuery<{ id: number; admin: boolean; client: string }>(
  'read-visible-job',
  VISIBLE_JOB_SELECT,
);

/** {@link readVisibleJob}, locking the row (`FOR UPDATE`) until the end of the transaction. */
export const lockVisibleJob = defineQuery<{ id: number; admin: boolean; client: string }>(
  'lock-visible-job',
  `${VISIBLE_JOB_SELECT} FOR UPDATE`,
);

/** `order_by` values of `GET /jobs` and the column each maps to (the only identifiers that reach the SQL). */
export const LIST_ORDER_BY_COLUMNS = {
  id: 'j.id',
  created_at: 'j.created_at',
  updated_at: 'j.updated_at',
  priority: 'j.priority',
  run_at: 'j.run_at',
  client: 'j.client',
  workflow: 'j.workflow',
  queue_state: 'j.queue_state',
  /** The order of `position` (see buildJobListing); the column is for the type only. */
  position: 'j.id',
} as const;
export type ListOrderBy = keyof typeof LIST_ORDER_BY_COLUMNS;

/** Characters of a long search term looked up in the trigram indexes (the rest is checked on the rows found). */
export const SEARCH_INDEX_CHARS = 12;

/** The filters of a listing (null: not filtered). */
export interface JobListingParams {
  asc: boolean;
  client: string | null;
  /** A queue_state value. */
  state: string | null;
  failed: boolean | null;
  persist: boolean | null;
  from: Date | null;
  /** Inclusive at the millisecond. */
  to: Date | null;
  jobIds: number[] | null;
  search: string | null;
  orderBy: ListOrderBy | null;
  limit: number;
  offset: number;
  /**
   * Keyset paging: the sort keys of the job the page continues after, in the listing's order
   * (null: from the start). The caller gives no `offset` with it.
   */
  after: ListingAnchorRow | null;
}

/** UTC text of a timestamp at microsecond precision (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), as SQL. */
const microsecondText = (column: string) =>
  `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/**
 * The sort keys of a job that a keyset page of `GET /jobs` continues after (`after_id`), as
 * {@link readListingAnchor} reads them: every column a listing can be ordered by, the timestamps
 * as UTC text at microsecond precision (so the bound goes back to the database without the
 * millisecond rounding of a JavaScript Date).
 */
export interface ListingAnchorRow {
  id: number;
  client: string;
  workflow: string;
  queue_state: string;
  priority: number;
  top_of_queue: boolean;
  /** Null when not set. */
  queued_at: string | null;
  created_at: string;
  updated_at: string;
  run_at: string;
}

/** Reads the sort keys of job `id` if the viewer (`admin`, or the owner `client`) may see it. Primary-key lookup, no locks. */
export const readListingAnchor = defineQuery<
  { id: number; admin: boolean; client: string },
  ListingAnchorRow
>(
  'read-listing-anchor',
  `SELECT j.id, j.client, j.workflow, j.queue_state, j.priority, j.top_of_queue,
          ${microsecondText('j.queued_at')} AS queued_at, ${microsecondText('j.created_at')} AS created_at,
          ${microsecondText('j.updated_at')} AS updated_at, ${microsecondText('j.run_at')} AS run_at
     FROM jobs j WHERE j.id = $id AND ($admin::boolean OR j.client = $client)`,
);

/** Per `order_by` column other than id: the anchor's value of it and its SQL type (a cast of the bound). */
const ANCHOR_KEYS: Record<
  Exclude<ListOrderBy, 'id' | 'position'>,
  { key: keyof ListingAnchorRow; type: string }
> = {
  created_at: { key: 'created_at', type: 'timestamptz' },
  updated_at: { key: 'updated_at', type: 'timestamptz' },
  priority: { key: 'priority', type: 'int' },
  run_at: { key: 'run_at', type: 'timestamptz' },
  client: { key: 'client', type: 'text' },
  workflow: { key: 'workflow', type: 'text' },
  queue_state: { key: 'queue_state', type: 'text' },
};

/** Escapes `%`, `_` and `\` so a search term matches literally inside `ILIKE '%…%'`. */
export function escapeLike(term: string): string {
  return term.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * Builds the SQL of a `GET /jobs` listing: one statement, its filters ANDed, every value a `$n`
 * parameter, identifiers only from {@link LIST_ORDER_BY_COLUMNS}. Composed here because its
 * WHERE depends on which filters are given (each shape keeps its own plan). With `f.after` (keyset
 * paging) the page starts right after the anchor's sort keys instead of at `offset`: a row-value
 * bound on the order's index, or for the admission order a few index ranges merged
 * ({@link admissionRanges}), so its cost does not grow with the anchor's depth. No locks.
 * @returns SQL text and its parameters.
 */
export function buildJobListing(f: JobListingParams): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const p = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  const where: string[] = [];
  if (f.client !== null) where.push(`j.client = ${p(f.client)}`);
  const orderBy: ListOrderBy = f.orderBy ?? (f.from !== null || f.to !== null ? 'created_at' : 'id');
  // One state listed by id (or a state other than queued by `position`, which is its id order),
  // with no client, ids, search, time window, failed=1 or persist=1 to narrow it (each of those
  // has its own index, which `= ANY` would cost its order): the
  // rows must come from `jobs_state_id_idx (queue_state, id)`. Written as `= ANY(array)` with the
  // state in the ORDER BY, because only that index then gives the order. With a plain `=` the
  // planner, which assumes a state's rows spread evenly over the ids, may walk the primary key
  // backwards instead: at 100,000 queued jobs (the newest rows) it read past all of them to list
  // ten completed ones, 150-370 ms against 0.1 ms, and forwards past every completed job to list
  // the oldest queued ones (bench/RESULTS.md). Not with a client, where
  // `jobs_client_state_id_idx` serves `=` directly and `= ANY` would cost it its order.
  const stateLed =
    f.state !== null &&
    f.client === null &&
    f.jobIds === null &&
    f.search === null &&
    f.failed !== true &&
    f.persist !== true &&
    f.from === null &&
    f.to === null &&
    (orderBy === 'id' || (orderBy === 'position' && f.state !== 'queued'));
  if (f.state !== null)
    where.push(stateLed ? `j.queue_state = ANY(${p([f.state])}::text[])` : `j.queue_state = ${p(f.state)}`);
  // `failed` is only ever true on completed jobs, so failed=1 is `failed` and failed=0 `NOT failed`.
  if (f.failed !== null) where.push(f.failed ? 'j.failed' : 'NOT j.failed');
  if (f.persist !== null) where.push(f.persist ? 'j.persist' : 'NOT j.persist');
  if (f.from !== null) where.push(`j.created_at >= ${p(f.from)}`);
  // `to` is inclusive at the millisecond the API shows: a row created at 12:00:00.123456 matches
  // to=12:00:00.123, so the bound is the next millisecond, exclusive.
  if (f.to !== null) where.push(`j.created_at < ${p(new Date(f.to.getTime() + 1))}`);
  if (f.jobIds !== null) where.push(`j.id = ANY(${p(f.jobIds)}::bigint[])`);
  if (f.search !== null) {
    // The search looks in the job_search side table (written once with the job, so the job row's
    // many updates never touch its trigram indexes). A long term is looked up in the trigram
    // indexes by its first SEARCH_INDEX_CHARS characters (fewer trigrams to intersect: a full UUID
    // costs ~3x more than 12 characters at a million rows), and the whole term is then checked on
    // those rows only (`|| ''` keeps that check out of the index). The result is the same as
    // matching the whole term. The prefix is cut between characters (code points), never inside
    // a surrogate pair: half an emoji would be sent as U+FFFD and match nothing.
    const full = p(`%${escapeLike(f.search)}%`);
    const head = Array.from(f.search).slice(0, SEARCH_INDEX_CHARS).join('');
    let match: string;
    if (head.length < f.search.length) {
      const short = p(`%${escapeLike(head)}%`);
      match =
        `(s.content_id ILIKE ${short} AND (s.content_id || '') ILIKE ${full})` +
        ` OR (s.parameters_text ILIKE ${short} AND (s.parameters_text || '') ILIKE ${full})`;
    } else match = `s.content_id ILIKE ${full} OR s.parameters_text ILIKE ${full}`;
    // A job with nothing to search has no search row (SEARCHABLE_JOB); its text would be `{}`, so
    // the few terms found inside `{}` (`{`, `}`, `{}`) also match such jobs, read on the job row.
    // Every other term cannot match them, and the condition is left out.
    const bare = '{}'.includes(f.search) ? ` OR (j.content_id IS NULL AND j.parameters = '{}'::jsonb)` : '';
    where.push(`(j.id IN (SELECT s.job_id FROM job_search s WHERE ${match})${bare})`);
  }
  const dir = f.asc ? 'ASC' : 'DESC';
  // Without an explicit order_by, a creation-time window is listed in creation order (ids are
  // handed out in creation order, so this is the id order but for jobs created at the same
  // instant), which the (created_at, id) index serves directly at any table size.
  const column = LIST_ORDER_BY_COLUMNS[orderBy];
  // `position` order: with state=queued, the admission order (`asc`: position 1 first), which
  // `jobs_admission_idx` (or `jobs_client_admission_idx`) serves as it stands; any other state's
  // list is by id.
  const admissionOrder = orderBy === 'position' && f.state === 'queued';
  const order = admissionOrder
    ? `j.top_of_queue ${f.asc ? 'DESC' : 'ASC'}, j.priority ${dir}, j.queued_at ${dir}, j.id ${dir}`
    : orderBy === 'id' || orderBy === 'position'
      ? stateLed
        ? `j.queue_state ${dir}, j.id ${dir}`
        : `j.id ${dir}`
      : `${column} ${dir}, j.id ${dir}`;
  const filters = where.length ? ` WHERE ${where.join(' AND ')}` : '';
  if (f.after === null) {
    const sql = `SELECT ${JOB_COLUMNS} FROM jobs j${filters} ORDER BY ${order} LIMIT ${p(f.limit)} OFFSET ${p(f.offset)}`;
    return { sql, params };
  }
  // Keyset page: the jobs after the anchor in this order, as one or more conditions each of
  // which is one contiguous range of the order's index starting at the anchor, so each is read
  // from the index for at most `limit` entries however deep the anchor lies.
  const a = f.after;
  const cmp = f.asc ? '>' : '<';
  const id = p(a.id);
  let ranges: string[];
  if (admissionOrder) ranges = admissionRanges(a, f.asc, p, id);
  else if (orderBy === 'id' || orderBy === 'position') ranges = [`j.id ${cmp} ${id}::bigint`];
  else {
    const k = ANCHOR_KEYS[orderBy];
    ranges = [`(${column}, j.id) ${cmp} (${p(a[k.key])}::${k.type}, ${id}::bigint)`];
  }
  const limit = p(f.limit);
  const and = where.length ? `${where.join(' AND ')} AND ` : '';
  if (ranges.length === 1) {
    const sql = `SELECT ${JOB_COLUMNS} FROM jobs j WHERE ${and}${ranges[0]} ORDER BY ${order} LIMIT ${limit}`;
    return { sql, params };
  }
  // Several ranges (the admission order mixes directions and has a nullable column, which one
  // row comparison cannot bound): each read in order up to `limit`, then the first `limit` of
  // them all (at most ranges × limit rows sorted).
  const parts = ranges.map(
    (r) => `(SELECT ${JOB_COLUMNS} FROM jobs j WHERE ${and}${r} ORDER BY ${order} LIMIT ${limit})`,
  );
  return { sql: `SELECT * FROM (${parts.join(' UNION ALL ')}) j ORDER BY ${order} LIMIT ${limit}`, params };
}

/**
 * The queued jobs after anchor `a` in admission order (`asc`: position 1 first; else the reverse),
 * as disjoint conditions, each one contiguous range of `jobs_admission_idx` (top_of_queue DESC,
 * priority, queued_at, id; a missing `queued_at` sorts last, as in ORDER BY). A row comparison
 * over (priority, queued_at, id) bounds the jobs of the anchor's `top_of_queue` side; the jobs
 * whose `queued_at` is missing where that comparison is unknown, and the other side's jobs, are
 * ranges of their own. `p` adds a parameter; `id` is the anchor id's placeholder.
 */
function admissionRanges(a: ListingAnchorRow, asc: boolean, p: (v: unknown) => string, id: string): string[] {
  const side = `j.top_of_queue = ${a.top_of_queue ? 'true' : 'false'}`;
  const priority = `${p(a.priority)}::int`;
  // The other side of the queue comes after this one: the jobs without top_of_queue when
  // listing from position 1, the top_of_queue jobs when listing from the end.
  const otherSide = a.top_of_queue === asc ? [`j.top_of_queue = ${a.top_of_queue ? 'false' : 'true'}`] : [];
  if (a.queued_at !== null) {
    const queuedAt = `${p(a.queued_at)}::timestamptz`;
    const cmp = asc ? '>' : '<';
    const rest = `${side} AND (j.priority, j.queued_at, j.id) ${cmp} (${priority}, ${queuedAt}, ${id}::bigint)`;
    // Forward, the jobs of the anchor's priority without a queued_at follow the timed ones.
    const untimed = asc ? [`${side} AND j.priority = ${priority} AND j.queued_at IS NULL`] : [];
    return [rest, ...untimed, ...otherSide];
  }
  // The anchor has no queued_at: it is among the last of its priority (forward) or the first.
  return asc
    ? [
        `${side} AND j.priority = ${priority} AND j.queued_at IS NULL AND j.id > ${id}::bigint`,
        `${side} AND j.priority > ${priority}`,
        ...otherSide,
      ]
    : [
        `${side} AND j.priority = ${priority} AND j.queued_at IS NULL AND j.id < ${id}::bigint`,
        `${side} AND j.priority = ${priority} AND j.queued_at IS NOT NULL`,
        `${side} AND j.priority < ${priority}`,
        ...otherSide,
      ];
}

/** Runs {@link buildJobListing}. */
export async function listJobRows<R = Record<string, unknown>>(
  q: Queryable,
  f: JobListingParams,
): Promise<R[]> {
  const { sql, params } = buildJobListing(f);
  return (await q.query<R>(sql, params)).rows;
}
