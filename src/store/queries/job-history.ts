/**
 * Statements that read what happened to one job, for the operator's views: every attempt of its
 * tasks (`GET /jobs/<id>/attempts`) and its callback deliveries (`GET /jobs/<id>/callbacks`).
 * Reads only: no locks, no state edges. The caller checks first that the viewer may see the job.
 */
import { defineQuery } from './define-query.js';

/** One attempt of a task of the job, with its task's name. */
export interface JobAttemptRow {
  id: number;
  task_id: number;
  /** The task's name. */
  task: string;
  /** 1-based attempt number of the task. */
  number: number;
  /** The job's run the attempt belongs to (1, then +1 per retry of the job). */
  run: number;
  worker_id: string | null;
  state: string;
  started_at: Date;
  finished_at: Date | null;
  heartbeat_at: Date;
  error: string | null;
}

/** Reads every attempt of job `jobId`'s tasks, by `started_at` then `id`. No locks. */
export const readJobAttempts = defineQuery<{ jobId: number }, JobAttemptRow>(
  'read-job-attempts',
  `SELECT a.id, a.task_id, t.name AS task, a.number, a.run, a.worker_id, a.state,
          a.started_at, a.finished_at, a.heartbeat_at, a.error
     FROM attempts a
     JOIN tasks t ON t.id = a.task_id
    WHERE a.job_id = $jobId
    ORDER BY a.started_at, a.id`,
);

/** One callback delivery of the job (the body is left out). */
export interface JobCallbackRow {
  id: number;
  /** The task it reports, 0 for the job-end callback. */
  task_id: number;
  kind: 'task' | 'job';
  /** `start`, `complete`, `fail` (task) or `completed`, `failed` (job). */
  event: string;
  /** The full target URL, as the job gave it (callers redact it before showing it). */
  target_url: string;
  state: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  created_at: Date;
  delivered_at: Date | null;
  next_attempt_at: Date;
  run: number;
}

/** Reads every callback delivery of job `jobId`, by `id` (the order they were enqueued). No locks. */
export const readJobCallbacks = defineQuery<{ jobId: number }, JobCallbackRow>(
  'read-job-callbacks',
  `SELECT id, task_id, kind, event, target_url, state, attempts, last_status, last_error,
          created_at, delivered_at, next_attempt_at, run
     FROM callback_deliveries
    WHERE job_id = $jobId
    ORDER BY id`,
);
