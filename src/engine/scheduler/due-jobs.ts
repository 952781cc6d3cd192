/**
 * Moving scheduled jobs on when their `run_at` has come (SPEC sections 5.3 and 8):
 * `scheduled → queued` (queued_at = now), or `scheduled → pending` when the job has a
 * `semaphore_url` that must answer first (see `semaphores.ts`).
 */
import type { EngineContext } from '../context.js';
import { appendLog } from '../jobs/job-log.js';
import { CHANNELS, notify } from '../signals.js';
import { redactUrl } from '../callbacks/redact-url.js';

/** Jobs moved per transaction. */
const DUE_BATCH_SIZE = 500;

/** What {@link moveDueJobs} did. */
export interface DueJobsResult {
  /** Ids of jobs now `queued`. */
  queued: number[];
  /** Ids of jobs now `pending` (their semaphore is checked next). */
  pending: number[];
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
      const { rows } = await tx.query<{
        id: number;
        queue_state: string;
        run_at: Date;
        semaphore_url: string | null;
      }>(
        `WITH due AS (
           SELECT id FROM jobs
           WHERE queue_state = 'scheduled' AND run_at <= $1
           ORDER BY run_at, id
           LIMIT $2
           FOR UPDATE SKIP LOCKED)
         UPDATE jobs j
         SET queue_state = CASE WHEN COALESCE(j.semaphore_url, '') = '' THEN 'queued' ELSE 'pending' END,
             queued_at = CASE WHEN COALESCE(j.semaphore_url, '') = '' THEN $1 ELSE j.queued_at END,
             updated_at = $1
         FROM due
         WHERE j.id = due.id AND j.queue_state = 'scheduled'
         RETURNING j.id, j.queue_state, j.run_at, j.semaphore_url`,
        [now, DUE_BATCH_SIZE],
      );
      for (const r of rows) {
        await appendLog(tx, {
          jobId: r.id,
          progname: 'scheduler',
          message:
            r.queue_state === 'queued'
              ? `run_at ${r.run_at.toISOString()} reached: job queued`
              : `run_at ${r.run_at.toISOString()} reached: job pending until its semaphore ${redactUrl(r.semaphore_url ?? '')} answers 2xx/3xx`,
        });
      }
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
  const { rows } = await ctx.db.query<{ next: Date | null }>(
    `SELECT min(run_at) AS next FROM jobs WHERE queue_state = 'scheduled'`,
  );
  return rows[0]?.next ?? null;
}
