/**
 * Moving scheduled jobs on when their `run_at` has come (SPEC sections 5.3 and 8):
 * `scheduled → queued` (queued_at = now), or `scheduled → pending` when the job has a
 * `semaphore_url` that must answer first (see `semaphores.ts`).
 */
import { moveDueScheduledJobs, selectNextScheduledRunAt } from '../../store/queries/due-jobs.js';
import type { EngineContext } from '../context.js';
import { appendLog } from '../jobs/job-log.js';
import { jobEdge } from '../jobs/transitions.js';
import { CHANNELS, notify } from '../signals.js';
import { redactUrl } from '../callbacks/redact-url.js';

/** Jobs moved per transaction. */
const DUE_BATCH_SIZE = 500;

/** The edges {@link moveDueScheduledJobs} takes (checked against its text by the unit test). */
export const DUE_EDGES = [
  jobEdge('scheduled', 'queued', 'due'),
  jobEdge('scheduled', 'pending', 'due'),
] as const;

/** What {@link moveDueJobs} did. */
export interface DueJobsResult {
  /** Ids of jobs now `queued`. */
  queued: number[];
  /** Ids of jobs now `pending` (their semaphore is checked next). */
  pending: number[];
}

/** The job log line of a job that left `scheduled`. */
export function dueLogMessage(job: {
  queue_state: string;
  run_at: Date;
  semaphore_url: string | null;
}): string {
  return job.queue_state === 'queued'
    ? `run_at ${job.run_at.toISOString()} reached: job queued`
    : `run_at ${job.run_at.toISOString()} reached: job pending until its semaphore ${redactUrl(job.semaphore_url ?? '')} answers 2xx/3xx`;
}

/**
 * Moves every scheduled job whose `run_at <= now` on, in batches of 500, each one transaction:
 * the rows are taken with `FOR UPDATE SKIP LOCKED` and changed only while still `scheduled`
 * (a job paused, broken or re-planned meanwhile is left alone). Each job gets a log entry
 * (progname `scheduler`); admission is notified when any job became queued.
 * @throws the driver's error (the batch in hand is rolled back; earlier batches stay).
 */
export async function moveDueJobs(ctx: EngineContext): Promise<DueJobsResult> {
  const result: DueJobsResult = { queued: [], pending: [] };
  for (;;) {
    const now = ctx.clock.now();
    const batch = await ctx.db.transaction(async (tx) => {
      const rows = await moveDueScheduledJobs.rows(tx, { now, limit: DUE_BATCH_SIZE });
      for (const r of rows)
        await appendLog(tx, { jobId: r.id, progname: 'scheduler', message: dueLogMessage(r), now });
      if (rows.some((r) => r.queue_state === 'queued'))
        await notify(tx, CHANNELS.admission, 'scheduled jobs due');
      return rows;
    });
    for (const r of batch) (r.queue_state === 'queued' ? result.queued : result.pending).push(r.id);
    if (batch.length < DUE_BATCH_SIZE) break;
  }
  return result;
}

/** The earliest `run_at` of a scheduled job, or null when none waits. */
export async function nextScheduledRunAt(ctx: EngineContext): Promise<Date | null> {
  return (await selectNextScheduledRunAt.first(ctx.db, {}))?.next ?? null;
}
