/**
 * The run_at timer (SPEC section 8): while `queue_scheduled_jobs` is active, the leader keeps a
 * timer for the earliest `run_at` of a scheduled job (re-read after every move, every sweep and
 * every `CHANNELS.scheduler` notification, and at least once a minute), so a job leaves
 * `scheduled` at its `run_at`, not up to a sweep interval late.
 */
import type { Logger } from 'pino';
import type { ClockTimer } from '../clock.js';
import type { EngineContext, Service } from '../context.js';
import { BackgroundWork } from './background.js';
import { moveDueJobs, nextScheduledRunAt } from './due-jobs.js';
import { DUE_LOCKED_RETRY_MS, dueTimerStep } from './schedule-plan.js';

/** Wait after a failed step before the timer tries again. */
const DUE_ERROR_RETRY_MS = 2_000;

/** What the timer asks of the rest of the scheduler. */
export interface DueTimerOptions {
  /** Whether the timer may run: this process leads and `queue_scheduled_jobs` is on. */
  enabled: () => boolean;
  /** Jobs went `scheduled → pending`: their semaphores are to be checked now. */
  onPending: () => void;
}

/** The run_at timer of the leader. */
export interface DueTimer extends Service {
  /** Re-reads the earliest `run_at` now (moving what is due) and re-arms. Calls coalesce. */
  poke(): void;
  /** Cancels the timer (leadership lost, or `queue_scheduled_jobs` switched off). */
  cancel(): void;
}

/**
 * Creates the run_at timer. `start()` pokes it; `stop()` cancels it and waits for a step in
 * progress. A failed step is logged and retried 2 s later.
 */
export function createDueTimer(ctx: EngineContext, log: Logger, options: DueTimerOptions): DueTimer {
  const background = new BackgroundWork(log, 'run_at timer');
  let timer: ClockTimer | null = null;
  /** A step is running; a poke meanwhile only marks it {@link dirty}. */
  let arming = false;
  /** Look again when the running step ends. */
  let dirty = false;
  let stopped = false;

  const cancel = (): void => {
    timer?.cancel();
    timer = null;
  };
  const armIn = (ms: number): void => {
    timer = ctx.clock.setTimeout(() => background.track(step()), ms);
  };

  /** Moves due scheduled jobs now and sets the timer for the next `run_at`. */
  const step = async (): Promise<void> => {
    if (arming) {
      dirty = true;
      return;
    }
    arming = true;
    try {
      do {
        dirty = false;
        cancel();
        if (!options.enabled()) return;
        const next = await nextScheduledRunAt(ctx);
        if (!options.enabled()) return;
        const plan = dueTimerStep(next, ctx.clock.now());
        if (!plan.moveNow) {
          armIn(plan.waitMs);
          continue;
        }
        const moved = await moveDueJobs(ctx);
        if (moved.pending.length > 0) options.onPending();
        if (moved.queued.length + moved.pending.length > 0) dirty = true;
        // Nothing moved although due: the rows are locked by a transaction in progress.
        else armIn(DUE_LOCKED_RETRY_MS);
      } while (dirty && !stopped);
    } catch (err) {
      log.error({ err }, 'scheduler: run_at timer step failed; retrying in 2 s');
      if (!stopped) armIn(DUE_ERROR_RETRY_MS);
    } finally {
      arming = false;
    }
  };

  const poke = (): void => background.track(step());

  return {
    name: 'scheduler-due-timer',
    poke,
    cancel,
    start() {
      stopped = false;
      poke();
      return Promise.resolve();
    },
    async stop() {
      stopped = true;
      cancel();
      await background.drain();
    },
  };
}
