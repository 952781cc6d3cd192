/**
 * Recovering attempts whose worker died (SPEC section 6, schedule `recover_stalled_tasks`).
 */
import { reapOrphanedChildren } from '../../process/child-registry.js';
import { findStalledAttempts } from '../../store/queries/attempts.js';
import type { EngineContext } from '../context.js';
import { readSettings } from '../settings.js';
import { MAX_DELAY_SECONDS, recordFailure } from '../workers/results.js';

/** Options of {@link recoverStalledAttempts}. */
export interface RecoverStalledOptions {
  /**
   * Treat every `running` attempt as stalled, whatever its heartbeat (embedded mode at start:
   * only one process can own an embedded database, so nothing else can be running them).
   */
  all?: boolean;
  /** Most attempts handled per call; default 1 000. */
  limit?: number;
}

/**
 * Finds attempts still `running` whose heartbeat is older than the `stall_timeout` setting (or
 * whose worker registered a clean stop; `findStalledAttempts`, at `ctx.clock`'s time), marks each
 * `stalled` and treats it as a failed attempt through the same path as a handler failure
 * ({@link recordFailure}: plan, then one statement of effects): retried after
 * `retry_delay` while retries remain, else the task fails and the job advances. Each attempt is
 * its own transaction guarded by `state = 'running'`, so a worker that was only slow and answers
 * late finds its result dropped, and two engines recovering at once never double-count.
 * First, the child processes left running on this host by engine processes that are gone are
 * killed ({@link reapOrphanedChildren}), so a retry never runs beside the old attempt's program.
 * @returns how many attempts were recovered.
 * @throws the driver's error when the candidates cannot be read.
 */
export async function recoverStalledAttempts(
  ctx: EngineContext,
  options: RecoverStalledOptions = {},
): Promise<number> {
  await reapOrphanedChildren({ logger: ctx.logger });
  const { known } = await readSettings(ctx.db);
  const rows = await findStalledAttempts.rows(ctx.db, {
    all: options.all === true,
    stallSeconds: Math.min(known.stall_timeout, MAX_DELAY_SECONDS),
    limit: options.limit ?? 1_000,
    now: ctx.clock.now(),
  });
  let recovered = 0;
  for (const a of rows) {
    const reason = options.all
      ? `attempt stalled: the engine process running it (${a.worker_id ?? 'unknown worker'}) is gone`
      : `attempt stalled: no heartbeat for ${Math.round(a.age)}s from ${a.worker_id ?? 'unknown worker'} (stall_timeout ${known.stall_timeout}s)`;
    try {
      const outcome = await recordFailure(
        ctx,
        { attemptId: a.id, taskId: a.task_id, jobId: a.job_id },
        { error: reason, attemptState: 'stalled' },
      );
      if (outcome !== 'stale') recovered++;
      ctx.logger.warn({ attemptId: a.id, jobId: a.job_id, outcome }, 'recovered a stalled attempt');
    } catch (err) {
      ctx.logger.error({ err, attemptId: a.id }, 'recovering a stalled attempt failed');
    }
  }
  return recovered;
}
