/**
 * Statements of the job log written by task handlers through the workers' log buffer. Every
 * time in them is the `$now` parameter (the engine's clock), never SQL `now()`.
 */
import { defineQuery } from './define-query.js';

/** Parameters of {@link insertWorkerLogLines}: one array entry per line, all of equal length. */
export interface InsertWorkerLogLinesParams {
  jobIds: number[];
  taskIds: number[];
  severities: number[];
  messages: string[];
  /** Lines of this severity or below are stored hidden (`visible = false`): DEBUG. */
  hiddenSeverity: number;
  now: Date;
}

/**
 * Appends lines to the job log (progname `worker`) in one INSERT, in array order: `unnest` yields
 * rows in that order, so the `bigserial` ids follow it. Takes no locks beyond the foreign-key
 * check on each line's job; no state edge.
 */
export const insertWorkerLogLines = defineQuery<InsertWorkerLogLinesParams>(
  'insert-worker-log-lines',
  `INSERT INTO logs (job_id, task_id, severity, progname, message, visible, created_at, updated_at)
   SELECT j, t, s, 'worker', m, s > $hiddenSeverity::smallint, $now::timestamptz, $now::timestamptz
     FROM unnest($jobIds::bigint[], $taskIds::bigint[], $severities::smallint[], $messages::text[]) AS u(j, t, s, m)`,
);
