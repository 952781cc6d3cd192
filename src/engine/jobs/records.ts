/**
 * The job, task and log records the API returns (seed shape plus SPEC section 5.2), the SQL that
 * reads them, and the `position` of a job in its state's list.
 */
import type { Queryable } from '../../store/executor.js';
import {
  lockVisibleJob,
  rankJobsInStates,
  readVisibleJob,
  type JobLogRow,
  type JobTaskRow,
} from '../../store/queries/jobs.js';
import { EngineError } from '../../errors/catalogue.js';
import { SEVERITY_NAMES } from './job-log.js';
import { computeListPositions } from './positions.js';
import { formatTimestamp } from './time.js';
import type { JobState } from './transitions.js';

/** Who is asking: the authenticated client, and whether it is an admin. */
export interface Viewer {
  client: string;
  admin: boolean;
}

/** A job as the API shows it. Timestamps are ISO-8601 UTC with milliseconds and `Z`, or null. */
export interface JobRecord {
  id: number;
  client: string;
  workflow: string;
  /** 1 (most urgent) … 10. */
  priority: number;
  /** 1-based rank in its state's list as `/dashboard` orders it; 1 for completed and broken jobs. */
  position: number;
  top_of_queue: boolean;
  /** The parameters as submitted (no defaults applied). */
  parameters: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  queue_state: JobState;
  failed: boolean;
  run_at: string | null;
  persist: boolean;
  /** The job this one reruns (`POST /jobs/<id>/rerun`), or null. */
  rerun_of: number | null;
  /** The newest job that reran this one (which made this one broken), or null. */
  rerun_by: number | null;
  /** The `job.idempotency_key` it was submitted with, or null. */
  idempotency_key: string | null;
  started_at: string | null;
  finished_at: string | null;
  semaphore_url: string | null;
  /** 1 for the first run of the job, +1 for each retry (`POST /jobs/<id>/retry`). */
  run: number;
  /** When the last retry was asked for, or null. */
  retried_at: string | null;
}

/** A job row in `/dashboard` lists: the record without `parameters`. */
export type DashboardJobRecord = Omit<JobRecord, 'parameters'>;

/** One task of a job, as `GET /jobs/<id>` shows it. */
export interface TaskRecord {
  id: number;
  name: string;
  queue: string;
  state: string;
  /** Attempts started so far. */
  attempts: number;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  /** Names of the tasks it waits for: the edges of the job's task graph. */
  needs: string[];
  /** What its handler returned once it succeeded (`tasks.<name>.output` in templates); else null. */
  output: unknown;
  /** Fraction done, 0..1, as the running handler last reported it; null before it starts. */
  progress: number | null;
  /** The handler's last progress message (e.g. `frame 1200 of 2400`), or null. */
  progress_message: string | null;
  /** Details of the last progress report (FFmpeg: `fps`, `speed`, `eta_seconds`), or null. */
  progress_detail: Record<string, unknown> | null;
  /** When progress was last reported, or null. */
  progress_at: string | null;
  /** Earliest start of its next attempt (later than now while a retry waits out its delay). */
  run_after: string;
  created_at: string;
  /** Milliseconds from its start to its end (or to now while it runs); null before it starts. */
  duration_ms: number | null;
}

/** One job log entry (seed shape, SPEC section 10). */
export interface LogRecord {
  id: number;
  job_id: number;
  /** 0 DEBUG, 1 INFO, 2 WARN, 3 ERROR, 4 FATAL. */
  severity: number;
  severity_description: string;
  progname: string;
  message: string;
  created_at: string;
  updated_at: string;
  /** 0 for job-level entries. */
  task_id: number;
  visible: boolean;
}

/** The raw `jobs` row as `JOB_COLUMNS` (src/store/queries/jobs.ts) selects it. */
export interface JobRow {
  id: number;
  client: string;
  workflow: string;
  priority: number;
  top_of_queue: boolean;
  parameters: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
  queue_state: JobState;
  failed: boolean;
  run_at: Date | null;
  persist: boolean;
  rerun_of: number | null;
  rerun_by: number | null;
  idempotency_key: string | null;
  started_at: Date | null;
  finished_at: Date | null;
  semaphore_url: string | null;
  queued_at: Date | null;
  run: number;
  retried_at: Date | null;
}

/** States whose jobs get a computed `position`; completed and broken jobs answer 1. */
export const RANKED_STATES: readonly JobState[] = ['queued', 'started', 'scheduled', 'pending', 'paused'];

/**
 * How `position` is computed: `ranges` (the engine's way: counts over index ranges up to the
 * listed jobs, src/engine/jobs/positions.ts) or `window` (the former way, a `row_number()` over
 * every job of the listed states, kept as the reference for tests and `npm run bench list-jobs`).
 * Both give the same numbers.
 */
export type PositionMethod = 'ranges' | 'window';

let positionMethod: PositionMethod = 'ranges';

/** Sets how `position` is computed (process-wide); for benchmarks and tests comparing the two. */
export function setPositionMethod(method: PositionMethod): void {
  positionMethod = method;
}

/** How `position` is computed now ({@link setPositionMethod}). */
export function getPositionMethod(): PositionMethod {
  return positionMethod;
}

/**
 * Computes the `position` of each listed job: its 1-based rank among ALL jobs in its state (not
 * only the viewer's), since the admission order is global; only live states are ranked. The cost
 * is that of counting, along an index in list order, the jobs before the deepest listed job of
 * each state (src/engine/jobs/positions.ts): a page near the head of a long queue is cheap, one at
 * depth 100,000 costs one index-only count of 100,000 entries, never a sort of the state.
 * @returns id → position for the ranked jobs among `rows`.
 */
export async function computePositions(
  q: Queryable,
  rows: ReadonlyArray<Pick<JobRow, 'id' | 'queue_state'>>,
): Promise<Map<number, number>> {
  const ranked = rows.filter((r) => RANKED_STATES.includes(r.queue_state));
  if (ranked.length === 0) return new Map();
  if (positionMethod === 'ranges') return computeListPositions(q, ranked);
  const out = new Map<number, number>();
  const states = [...new Set(ranked.map((r) => r.queue_state))];
  const found = await rankJobsInStates.rows(q, { states, ids: ranked.map((r) => r.id) });
  for (const r of found) out.set(Number(r.id), Number(r.position));
  return out;
}

/** Maps a row to the API record; `position` from {@link computePositions} (default 1). */
export function toJobRecord(row: JobRow, position = 1): JobRecord {
  return {
    id: Number(row.id),
    client: row.client,
    workflow: row.workflow,
    priority: row.priority,
    position,
    top_of_queue: row.top_of_queue,
    parameters: row.parameters,
    created_at: formatTimestamp(row.created_at)!,
    updated_at: formatTimestamp(row.updated_at)!,
    queue_state: row.queue_state,
    failed: row.failed,
    run_at: formatTimestamp(row.run_at),
    persist: row.persist,
    rerun_of: row.rerun_of === null ? null : Number(row.rerun_of),
    rerun_by: row.rerun_by === null ? null : Number(row.rerun_by),
    idempotency_key: row.idempotency_key,
    started_at: formatTimestamp(row.started_at),
    finished_at: formatTimestamp(row.finished_at),
    semaphore_url: row.semaphore_url,
    run: row.run,
    retried_at: formatTimestamp(row.retried_at),
  };
}

/** Maps rows to records, computing their positions in one query. */
export async function toJobRecords(q: Queryable, rows: JobRow[]): Promise<JobRecord[]> {
  const positions = await computePositions(q, rows);
  return rows.map((r) => toJobRecord(r, positions.get(Number(r.id)) ?? 1));
}

/** Maps a row to a dashboard record (no `parameters`). */
export function toDashboardRecord(row: Omit<JobRow, 'parameters'>, position: number): DashboardJobRecord {
  const { parameters: _omit, ...rest } = toJobRecord({ ...row, parameters: {} }, position);
  return rest;
}

/**
 * Reads a job the viewer may see, optionally locking it (`FOR UPDATE`) inside a transaction.
 * @throws {EngineError} `JOB_NOT_FOUND` (404) when it does not exist or belongs to another
 * client and the viewer is not an admin.
 */
export async function findVisibleJob(
  q: Queryable,
  viewer: Viewer,
  id: number,
  opts: { forUpdate?: boolean } = {},
): Promise<VisibleJobRow> {
  const statement = opts.forUpdate ? lockVisibleJob : readVisibleJob;
  const row = (await statement.first(q, {
    id,
    admin: viewer.admin,
    client: viewer.client,
  })) as VisibleJobRow | null;
  if (!row) throw new EngineError('JOB_NOT_FOUND', `job ${id} not found`, { jobId: id });
  return row;
}

/** A job as {@link findVisibleJob} reads it: its record's row plus what a rerun needs. */
export type VisibleJobRow = JobRow & {
  definition: unknown;
  resolved_parameters: Record<string, unknown>;
  content_id: string | null;
  definition_source: string;
  /** The user schedule that submitted the job, and the slot it was for (migration 0005). */
  schedule: string | null;
  scheduled_for: Date | null;
  /** What the workflow's `outputs` rendered when the job ended; null before. */
  outputs: Record<string, unknown> | null;
  /** Why the job failed or was broken, or null. */
  error: string | null;
};

/**
 * Maps a `tasks` row to a {@link TaskRecord}.
 * @param now - epoch ms used for the duration of a task still running (the engine clock).
 */
export function toTaskRecord(row: JobTaskRow, now: number): TaskRecord {
  const started = row.started_at?.getTime() ?? null;
  const ended = row.finished_at?.getTime() ?? null;
  return {
    id: Number(row.id),
    name: row.name,
    queue: row.queue,
    state: row.state,
    attempts: row.attempts,
    started_at: formatTimestamp(row.started_at),
    finished_at: formatTimestamp(row.finished_at),
    error: row.error,
    needs: row.needs,
    output: row.output ?? null,
    progress: row.progress,
    progress_message: row.progress_message,
    progress_detail: row.progress_detail,
    progress_at: formatTimestamp(row.progress_at),
    run_after: formatTimestamp(row.run_after)!,
    created_at: formatTimestamp(row.created_at)!,
    duration_ms: started === null ? null : Math.max(0, (ended ?? now) - started),
  };
}

/** Maps a `logs` row to a {@link LogRecord}. */
export function toLogRecord(row: JobLogRow): LogRecord {
  return {
    id: Number(row.id),
    job_id: Number(row.job_id),
    severity: row.severity,
    severity_description: SEVERITY_NAMES[row.severity] ?? 'UNKNOWN',
    progname: row.progname,
    message: row.message,
    created_at: formatTimestamp(row.created_at)!,
    updated_at: formatTimestamp(row.updated_at)!,
    task_id: Number(row.task_id),
    visible: row.visible,
  };
}
