/**
 * The `cleanup_jobs` schedule (SPEC section 8): deletes finished jobs past their retention.
 */
import { deleteExpiredJobs } from '../../store/queries/maintenance.js';
import type { EngineContext } from '../context.js';
import { readSettings } from '../settings.js';

/** Jobs deleted per statement: small enough that no statement holds its locks for long. */
export const CLEANUP_BATCH_SIZE = 1000;

/** Result of one cleanup run. */
export interface CleanupResult {
  /** Jobs deleted (their tasks, attempts, logs and callback deliveries went with them). */
  jobs: number;
  /** The cut-off used: jobs that finished before it were eligible. */
  cutoff: Date;
}

/**
 * Deletes `completed` and `broken` jobs whose `finished_at` is more than `retention_days` (setting,
 * default 30) before now, unless the job has `persist` set. Tasks, attempts, logs and callback
 * deliveries go with them through `ON DELETE CASCADE`. Works in batches of
 * {@link CLEANUP_BATCH_SIZE} jobs, one short transaction each, oldest first, until nothing is left
 * (rows locked by someone else are skipped and taken by the next run). A job without
 * `finished_at` is never deleted. Source: the original manual's "30 day routines" that clear jobs
 * and their logs, sparing `persist` jobs.
 * @param ctx - engine context (`db`, `clock`).
 * @param options.batchSize - jobs per statement (tests use small ones).
 * @throws the driver's error; batches already committed stay deleted.
 */
export async function cleanupJobs(
  ctx: EngineContext,
  options: { batchSize?: number } = {},
): Promise<CleanupResult> {
  const batchSize = options.batchSize ?? CLEANUP_BATCH_SIZE;
  const { known } = await readSettings(ctx.db);
  const cutoff = new Date(ctx.clock.now().getTime() - known.retention_days * 86_400_000);
  // A retention so long that the cut-off falls before the earliest Date (POST /settings has no
  // upper bound) means nothing is old enough: an Invalid Date would make every run fail.
  if (Number.isNaN(cutoff.getTime())) return { jobs: 0, cutoff: new Date(-8.64e15) };
  let total = 0;
  for (;;) {
    const { rowCount } = await deleteExpiredJobs.run(ctx.db, { cutoff, limit: batchSize });
    total += rowCount;
    if (rowCount < batchSize) break;
    // Let other work in between batches (on PGlite there is one connection for everybody). A turn
    // of the event loop, not a wait in time, so it stays outside the clock.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { jobs: total, cutoff };
}
