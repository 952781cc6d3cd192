/**
 * Statements behind the operator console's reads that the seed endpoints do not cover: recent
 * job throughput (`GET /stats`), the total of a `/jobs` filter (`GET /stats/job-count`), and one
 * page of a job's log (`GET /logs/<id>?offset=&limit=`). All read without locks, and each is
 * bounded: a time window served by an index, a capped count, a page.
 */
import type { Queryable } from '../executor.js';
import { defineQuery } from './define-query.js';
import { buildJobListing, type JobListingParams, type JobLogRow } from './jobs.js';

/** One bucket of {@link countFinishedJobs}: jobs that ended `ago` buckets before `now`. */
export interface FinishedJobsBucketRow {
  /** 0 for the bucket ending at `now`, 1 for the one before, … */
  ago: number;
  /** Completed without the failed flag. */
  completed: number;
  /** Completed with the failed flag. */
  failed: number;
  broken: number;
}

/**
 * Counts the jobs that ended (completed or broken) in `(since, now]`, per bucket of
 * `bucketSeconds` counted back from `now`, of `client` only unless null. The window is read
 * through `jobs_cleanup_idx` (finished_at of completed and broken jobs that do not persist) plus
 * the persisted ones (`jobs_persist_finished_idx`, migration 0017), so its cost grows with the
 * jobs in the window, not with the whole table nor with every persisted job.
 */
export const countFinishedJobs = defineQuery<
  { now: Date; since: Date; bucketSeconds: number; client: string | null },
  FinishedJobsBucketRow
>(
  'count-finished-jobs',
  `SELECT floor(extract(epoch FROM ($now::timestamptz - j.finished_at)) / $bucketSeconds::int)::int AS ago,
          count(*) FILTER (WHERE j.queue_state = 'completed' AND NOT j.failed)::int AS completed,
          count(*) FILTER (WHERE j.queue_state = 'completed' AND j.failed)::int AS failed,
          count(*) FILTER (WHERE j.queue_state = 'broken')::int AS broken
     FROM (SELECT queue_state, failed, finished_at FROM jobs
            WHERE queue_state IN ('completed', 'broken') AND NOT persist
              AND finished_at > $since::timestamptz AND finished_at <= $now::timestamptz
              AND ($client::text IS NULL OR client = $client)
           UNION ALL
           SELECT queue_state, failed, finished_at FROM jobs
            WHERE persist AND queue_state IN ('completed', 'broken')
              AND finished_at > $since::timestamptz AND finished_at <= $now::timestamptz
              AND ($client::text IS NULL OR client = $client)) j
    GROUP BY 1`,
);

/**
 * The statement counting the jobs a `GET /jobs` filter selects, at most `cap + 1` of them (so the
 * caller can tell "exactly cap" from "more than cap"): the listing of {@link buildJobListing}
 * (same filters, same indexes, every value a parameter) cut at `cap + 1` rows and counted.
 * `limit`, `offset`, `after` and the order of `f` are replaced.
 * @returns SQL text (identifiers from the listing's whitelist only) and its parameters; the one
 * row has `n`.
 */
export function buildJobCount(f: JobListingParams, cap: number): { sql: string; params: unknown[] } {
  const { sql, params } = buildJobListing({
    ...f,
    limit: cap + 1,
    offset: 0,
    after: null,
    orderBy: null,
    asc: false,
  });
  return { sql: `SELECT count(*)::int AS n FROM (${sql}) listed`, params };
}

/** Runs {@link buildJobCount}: the number of jobs `f` selects, at most `cap + 1`. */
export async function countListedJobRows(q: Queryable, f: JobListingParams, cap: number): Promise<number> {
  const { sql, params } = buildJobCount(f, cap);
  const { rows } = await q.query<{ n: number }>(sql, params);
  return Number(rows[0]?.n ?? 0);
}

/** Filters of a log page: hidden entries only with `showAll`, entries of at least `minSeverity`. */
export interface JobLogPageFilter {
  jobId: number;
  showAll: boolean;
  /** 0 DEBUG … 4 FATAL. */
  minSeverity: number;
}

/**
 * Reads `limit` entries of a job's log from the `offset`-th (0-based) on, in id order, filtered
 * as {@link JobLogPageFilter} says. Served by the `logs` key (job_id, id) (migration 0021). No locks.
 */
export const readJobLogPage = defineQuery<JobLogPageFilter & { limit: number; offset: number }, JobLogRow>(
  'read-job-log-page',
  `SELECT id, job_id, severity, progname, message, created_at, updated_at, task_id, visible
     FROM logs
    WHERE job_id = $jobId AND ($showAll::boolean OR visible) AND severity >= $minSeverity::int
    ORDER BY id LIMIT $limit OFFSET $offset`,
);

/** Counts a job's log entries that {@link readJobLogPage} would page through. No locks. */
export const countJobLogEntries = defineQuery<JobLogPageFilter, { n: number }>(
  'count-job-log-entries',
  `SELECT count(*)::int AS n FROM logs
    WHERE job_id = $jobId AND ($showAll::boolean OR visible) AND severity >= $minSeverity::int`,
);
