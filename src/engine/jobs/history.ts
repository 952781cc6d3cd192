/**
 * What happened to one job, for the operator's views: every attempt of its tasks
 * (`GET /jobs/<id>/attempts`) and its callback deliveries (`GET /jobs/<id>/callbacks`). The same
 * visibility rule as `GET /jobs/<id>`: a non-admin sees only its own jobs, and another client's
 * job answers 404 exactly like a missing one.
 */
import { readJobAttempts, readJobCallbacks } from '../../store/queries/job-history.js';
import { redactUrl } from '../callbacks/redact-url.js';
import type { EngineContext } from '../context.js';
import { parseJobId } from './input.js';
import { findVisibleJob, type Viewer } from './records.js';
import { formatTimestamp } from './time.js';

/** One attempt of a task, as the API shows it. Timestamps are ISO-8601 UTC with milliseconds. */
export interface AttemptRecord {
  id: number;
  task_id: number;
  /** The task's name. */
  task: string;
  /** 1-based attempt number of the task. */
  number: number;
  /** The job's run (1, then +1 per retry of the job). */
  run: number;
  /** The worker process that ran it (`<host>:<pid>:…`), or null. */
  worker_id: string | null;
  /** `running`, `succeeded`, `failed`, `cancelled` or `stalled`. */
  state: string;
  started_at: string;
  finished_at: string | null;
  /** The last heartbeat of its worker while it ran. */
  heartbeat_at: string;
  error: string | null;
}

/** One callback delivery, as the API shows it. */
export interface CallbackRecord {
  id: number;
  /** The task it reports; 0 for the job-end callback. */
  task_id: number;
  kind: 'task' | 'job';
  /** `start`, `complete`, `fail` (task) or `completed`, `failed` (job). */
  event: string;
  /** The target URL without credentials; a query string is shown as `?…`. */
  target: string;
  /** `pending`, `delivering`, `delivered` or `failed` (given up). */
  state: string;
  /** Attempts made so far. */
  attempts: number;
  /** HTTP status of the last attempt, or null (none yet, or no answer). */
  last_status: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
  /** When the next attempt is due (while pending). */
  next_attempt_at: string;
  /** The job's run it belongs to. */
  run: number;
}

/**
 * `text` with every quote of `url` (as given, or as a URL parser writes it) replaced by `redacted`:
 * an HTTP client's error message may quote the whole URL, credentials included.
 */
function redactQuoted(text: string, url: string, redacted: string): string {
  let out = text.split(url).join(redacted);
  try {
    out = out.split(new URL(url).href).join(redacted);
  } catch {
    // not a URL: only the text as given could be quoted
  }
  return out;
}

/**
 * Lists every attempt of the job's tasks (`GET /jobs/<id>/attempts`), by start time then id.
 * @throws {EngineError} `VALIDATION_FAILED` (400) when the id is not a positive whole number;
 * `JOB_NOT_FOUND` (404) when no such job is visible to the viewer.
 */
export async function getJobAttempts(
  ctx: EngineContext,
  viewer: Viewer,
  idText: string,
): Promise<AttemptRecord[]> {
  const id = parseJobId(idText);
  await findVisibleJob(ctx.db, viewer, id);
  const rows = await readJobAttempts.rows(ctx.db, { jobId: id });
  return rows.map((r) => ({
    id: Number(r.id),
    task_id: Number(r.task_id),
    task: r.task,
    number: r.number,
    run: r.run,
    worker_id: r.worker_id,
    state: r.state,
    started_at: formatTimestamp(r.started_at)!,
    finished_at: formatTimestamp(r.finished_at),
    heartbeat_at: formatTimestamp(r.heartbeat_at)!,
    error: r.error,
  }));
}

/**
 * Lists the job's callback deliveries (`GET /jobs/<id>/callbacks`) in the order they were
 * enqueued, each target redacted (no credentials, no query values), also where `last_error` quotes it.
 * @throws {EngineError} `VALIDATION_FAILED` (400) when the id is not a positive whole number;
 * `JOB_NOT_FOUND` (404) when no such job is visible to the viewer.
 */
export async function getJobCallbacks(
  ctx: EngineContext,
  viewer: Viewer,
  idText: string,
): Promise<CallbackRecord[]> {
  const id = parseJobId(idText);
  await findVisibleJob(ctx.db, viewer, id);
  const rows = await readJobCallbacks.rows(ctx.db, { jobId: id });
  return rows.map((r) => {
    const target = redactUrl(r.target_url);
    return {
      id: Number(r.id),
      task_id: Number(r.task_id),
      kind: r.kind,
      event: r.event,
      target,
      state: r.state,
      attempts: r.attempts,
      last_status: r.last_status,
      last_error: r.last_error === null ? null : redactQuoted(r.last_error, r.target_url, target),
      created_at: formatTimestamp(r.created_at)!,
      delivered_at: formatTimestamp(r.delivered_at),
      next_attempt_at: formatTimestamp(r.next_attempt_at)!,
      run: r.run,
    };
  });
}
