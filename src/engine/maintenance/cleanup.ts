/**
 * The `cleanup_jobs` schedule (SPEC section 8): deletes finished jobs past their retention; and
 * the event log's retention (`event_retention`), run by the frequent maintenance schedule.
 */
import { deleteEventsUpTo, readEventCutoffId } from '../../store/queries/events.js';
import { deleteExpiredJobs } from '../../store/queries/maintenance.js';
import { compactStateCounts } from '../../store/queries/status.js';
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
 * `finished_at` is never deleted. Then compacts the job and task counters
 * (`te_compact_state_counts()`, migration 0018). Source: the original manual's "30 day routines" that clear jobs
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
  // The job and task counters (migration 0018): fold the rows of ended database sessions, drop
  // zero groups. Counts are the same before and after.
  await compactStateCounts.first(ctx.db, {});
  return { jobs: total, cutoff };
}

/** Events deleted per statement. */
export const EVENT_CLEANUP_BATCH_SIZE = 5000;

/** Result of one event cleanup. */
export interface EventCleanupResult {
  /** Events deleted. */
  events: number;
  /** The cut-off used: events created before it were eligible. */
  cutoff: Date;
}

/**
 * Deletes the events (the log behind `GET /events`) created more than `event_retention` seconds
 * (setting, default 900) before now. It deletes every event up to the newest id created before
 * the cut-off, so what is gone is always a prefix of the ids and a stream asked to resume from an
 * older id is told to reset (docs/events.md). Works in batches of {@link EVENT_CLEANUP_BATCH_SIZE},
 * oldest first. Run by the `recover_stalled_tasks` schedule (every 15 s), so the window is kept
 * to within seconds of the setting.
 * @param ctx - engine context (`db`, `clock`).
 * @param options.batchSize - events per statement (tests use small ones).
 * @throws the driver's error; batches already committed stay deleted.
 */
export async function cleanupEvents(
  ctx: Pick<EngineContext, 'db' | 'clock'>,
  options: { batchSize?: number } = {},
): Promise<EventCleanupResult> {
  const batchSize = options.batchSize ?? EVENT_CLEANUP_BATCH_SIZE;
  const { known } = await readSettings(ctx.db);
  const cutoff = new Date(ctx.clock.now().getTime() - known.event_retention * 1000);
  const upTo = (await readEventCutoffId.first(ctx.db, { cutoff }))?.id ?? null;
  if (upTo === null) return { events: 0, cutoff };
  let total = 0;
  for (;;) {
    const { rowCount } = await deleteEventsUpTo.run(ctx.db, { upTo: Number(upTo), limit: batchSize });
    total += rowCount;
    if (rowCount < batchSize) break;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { events: total, cutoff };
}
