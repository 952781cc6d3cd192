/**
 * The jobs of an engine for in-process use (`engine.jobs(...)`): submit, submit many, read and
 * list, without HTTP. The same services as `POST /job`, `POST /jobs/batch`, `GET /jobs/<id>` and
 * `GET /jobs` stand behind each call, so every rule, default and error is the API's
 * (docs/embedding.md).
 */
import type { EngineContext } from './context.js';
import { submitJobBatch, type BatchItemResult } from './jobs/batch.js';
import type { LIST_QUERY_FIELDS } from './jobs/list.js';
import type { JobRecord, Viewer } from './jobs/records.js';
import { getJob, listJobs, submitJob, type JobDetail } from './jobs/service.js';
import type { SubmissionRequest } from './jobs/submit.js';

export type { BatchItemResult } from './jobs/batch.js';
export type { JobDetail } from './jobs/service.js';
export type { JobRecord, TaskRecord } from './jobs/records.js';

/**
 * One submission: exactly the body of `POST /job` (docs/api.md). Only `job.workflow` is required;
 * `parameters` are validated against the workflow's parameter schema.
 */
export interface JobSubmission {
  /** Optional; when given, the client the jobs are submitted as (see {@link JobsAs}). */
  client?: string;
  job: {
    /** A workflow of the client (its own copy first, then the common one). */
    workflow: string;
    /** 1 (most urgent) to 10; default 5. A numeric string such as `"2"` is accepted. */
    priority?: number | string;
    /** When to run (ISO-8601; without a zone it is UTC); default now. */
    run_at?: string;
    /** A URL that must answer 2xx/3xx (GET) before the job is queued. */
    semaphore_url?: string;
    /** Keep the job and its logs out of the clean-up. */
    persist?: boolean;
    /** Admit before every other queued job. */
    top_of_queue?: boolean;
    /**
     * 1 to 255 characters: a second submission with the client's key within the
     * `idempotency_retention` setting answers the first job's id and creates nothing (a
     * different content is a `CONFLICT`).
     */
    idempotency_key?: string;
  };
  /** The workflow's parameters. */
  parameters?: Record<string, unknown>;
}

/**
 * Filters of {@link EngineJobs.list}: the query of `GET /jobs`. Numbers, booleans, dates and id
 * lists are accepted beside their text forms.
 */
export type JobListQuery = Partial<
  Record<(typeof LIST_QUERY_FIELDS)[number], string | number | boolean | Date | readonly number[]>
>;

/** Who the calls act as: a client name, and whether it has an admin's view (all clients' jobs). */
export interface JobsAs {
  /** The client that submits and whose jobs are seen (it need not have an API key). */
  client: string;
  /** An admin sees and may list every client's jobs; default false. */
  admin?: boolean;
}

/** The jobs of an engine, as one client (see {@link jobsOf}). */
export interface EngineJobs {
  /**
   * Submits a job (as `POST /job`): validated, written with its tasks and first log lines, and
   * admitted by the engine's controller (this process's, when it has the `controller` role, or
   * any other on the same database).
   * @returns the job's id (new, or the one its idempotency key answers with).
   * @throws {EngineError} `VALIDATION_FAILED` or `UNKNOWN_WORKFLOW` (400) naming what is wrong and
   * what is accepted; `CONFLICT` (409) when the idempotency key answers a different submission.
   */
  submit(submission: JobSubmission): Promise<{ id: number }>;
  /**
   * Submits 1 to 1000 jobs at once (as `POST /jobs/batch`): each validated on its own, the good
   * ones written by one statement, the bad ones answered with their error and not written.
   * @returns one result per submission, in order: `{index, id, result: 'accepted'}` or
   * `{index, status, error}` (the HTTP status and message `submit` would have thrown as).
   * @throws {EngineError} `VALIDATION_FAILED` when `submissions` is empty or longer than 1000.
   */
  submitBatch(submissions: readonly JobSubmission[]): Promise<BatchItemResult[]>;
  /**
   * Reads one job with its tasks (as `GET /jobs/<id>`).
   * @throws {EngineError} `JOB_NOT_FOUND` when no such job is visible to this client.
   */
  get(id: number): Promise<JobDetail>;
  /**
   * Lists jobs (as `GET /jobs`): newest first, 10 by default, up to 1000 with `limit`.
   * @throws {EngineError} `VALIDATION_FAILED` for a bad filter value; `FORBIDDEN` when a
   * non-admin filters on another client.
   */
  list(query?: JobListQuery): Promise<JobRecord[]>;
}

/** Where in-process submissions say they came from in the job's first log entry. */
const IN_PROCESS: SubmissionRequest = { path: 'in-process submit', remoteAddr: 'in-process', headers: {} };

/**
 * The jobs of the engine whose context is `ctx`, as client `as.client`. Needs no started engine:
 * submissions are written at once; they run once a process with the `controller` and `worker`
 * roles serves the database.
 */
export function jobsOf(ctx: EngineContext, as: JobsAs): EngineJobs {
  const viewer: Viewer = { client: as.client, admin: as.admin ?? false };
  return {
    submit: (submission) => submitJob(ctx, viewer, submission, IN_PROCESS),
    submitBatch: (submissions) => submitJobBatch(ctx, viewer, submissions, IN_PROCESS),
    get: (id) => getJob(ctx, viewer, String(id)),
    list: (query = {}) => listJobs(ctx, viewer, queryText(query)),
  };
}

/** The list query as `GET /jobs` receives it: text values. */
function queryText(query: JobListQuery): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined) continue;
    out[name] =
      value instanceof Date
        ? value.toISOString()
        : Array.isArray(value)
          ? value.join(',')
          : typeof value === 'boolean'
            ? value
              ? '1'
              : '0'
            : typeof value === 'number'
              ? String(value)
              : value;
  }
  return out;
}
