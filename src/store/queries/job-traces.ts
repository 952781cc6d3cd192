/** Statements of the job traces (`job_traces`, migration 0011; docs/tracing.md). */
import { defineQuery } from './define-query.js';

/** A job's stored trace ids. */
export interface JobTraceRow {
  job_id: number;
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  trace_flags: number;
}

/** Reads the trace ids of job `jobId` (none when the job was submitted with tracing off). No locks. */
export const readJobTrace = defineQuery<{ jobId: number }, JobTraceRow>(
  'read-job-trace',
  `SELECT job_id, trace_id, span_id, parent_span_id, trace_flags FROM job_traces WHERE job_id = $jobId`,
);

/** A job trace just marked ended, with what its span carries; or one whose job has not ended yet. */
export interface EndedJobTraceRow extends JobTraceRow {
  /**
   * True: the trace is sampled and not ended but its job is not ended as this statement sees it
   * (the transaction writing the end has not committed yet); nothing was marked.
   */
  waiting: boolean;
  /** The job's submission time (the span's start). */
  created_at: Date;
  client: string;
  workflow: string;
  queue_state: string;
  failed: boolean;
}

/**
 * Marks ended the traces of those of `jobIds` that have ended (`completed` or `broken`), are
 * sampled (trace flags bit 0: an unsampled job span is never exported, so its row is left alone)
 * and were not marked yet (`WHERE NOT ended`: of several engines marking, one gets each row), and
 * returns them (`waiting` false) with the job's submission time, client, workflow and end state;
 * also returns, `waiting` true, the sampled unmarked traces of those of `jobIds` whose job has not
 * ended as the statement's snapshot sees it. Row locks on the marked trace rows. No state edges.
 */
export const endJobTraces = defineQuery<{ jobIds: number[] }, EndedJobTraceRow>(
  'end-job-traces',
  `WITH up AS (
     UPDATE job_traces t SET ended = true
       FROM jobs j
      WHERE t.job_id = ANY($jobIds::bigint[]) AND j.id = t.job_id AND NOT t.ended AND (t.trace_flags & 1) = 1
        AND j.queue_state IN ('completed', 'broken')
     RETURNING t.job_id, t.trace_id, t.span_id, t.parent_span_id, t.trace_flags,
               j.created_at, j.client, j.workflow, j.queue_state, j.failed
   )
   SELECT false AS waiting, up.* FROM up
   UNION ALL
   SELECT true, t.job_id, t.trace_id, t.span_id, t.parent_span_id, t.trace_flags,
          j.created_at, j.client, j.workflow, j.queue_state, j.failed
     FROM job_traces t JOIN jobs j ON j.id = t.job_id
    WHERE t.job_id = ANY($jobIds::bigint[]) AND NOT t.ended AND (t.trace_flags & 1) = 1
      AND j.queue_state NOT IN ('completed', 'broken')`,
);
