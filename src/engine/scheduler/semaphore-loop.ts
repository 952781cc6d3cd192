/**
 * The semaphore loop (SPEC section 8): while `queue_scheduled_jobs` is active, the leader checks
 * pending jobs every `recheckMs` (default 5 s) with per-job backoff (see `semaphores.ts`), besides
 * the sweep, and at once when a job's run_at or semaphore changes. After each pass it hands the
 * current `schedule_interval` on, so a change of it re-plans the sweep within one pass.
 */
import type { Logger } from 'pino';
import type { ClockTimer } from '../clock.js';
import type { EngineContext, Service } from '../context.js';
import { readSettings } from '../settings.js';
import { BackgroundWork } from './background.js';
import { semaphoreMaxRecheckMs, SemaphoreChecker } from './semaphores.js';

/** What the loop needs from the rest of the scheduler. */
export interface SemaphoreLoopOptions {
  /** Milliseconds between passes. */
  recheckMs: number;
  /** Timeout of one semaphore request in milliseconds. */
  timeoutMs: number;
  /** Whether the loop may run: this process leads and `queue_scheduled_jobs` is on. */
  enabled: () => boolean;
  /** Called after each pass with the `schedule_interval` it read (seconds). */
  afterPass: (scheduleInterval: number) => Promise<void>;
}

/** The semaphore loop of the leader. */
export interface SemaphoreLoop extends Service {
  /** Plans the next pass `delayMs` from now (default the recheck interval), replacing the plan. */
  poke(delayMs?: number): void;
  /** Cancels the planned pass. */
  cancel(): void;
  /**
   * Runs one pass of the shared checker now (the sweep's), capped at `schedule_interval`
   * seconds; passes never overlap. @returns how many jobs were queued.
   */
  checkPending(scheduleInterval: number): Promise<number>;
}

/**
 * Creates the loop. `start()` plans a pass at once; `stop()` cancels the plan and waits for a
 * pass in progress. A failed pass is logged; the next is planned all the same.
 */
export function createSemaphoreLoop(
  ctx: EngineContext,
  log: Logger,
  options: SemaphoreLoopOptions,
): SemaphoreLoop {
  const background = new BackgroundWork(log, 'semaphore loop');
  const checker = new SemaphoreChecker(ctx, options.timeoutMs);
  let timer: ClockTimer | null = null;

  const checkPending = (scheduleInterval: number): Promise<number> =>
    checker.checkPending(semaphoreMaxRecheckMs(scheduleInterval));

  const cancel = (): void => {
    timer?.cancel();
    timer = null;
  };

  const poke = (delayMs: number = options.recheckMs): void => {
    cancel();
    if (!options.enabled()) return;
    timer = ctx.clock.setTimeout(() => {
      timer = null;
      background.track(pass());
    }, delayMs);
  };

  const pass = async (): Promise<void> => {
    try {
      const { known } = await readSettings(ctx.db);
      await checkPending(known.schedule_interval);
      await options.afterPass(known.schedule_interval);
    } finally {
      if (!timer) poke();
    }
  };

  return {
    name: 'scheduler-semaphore-loop',
    poke,
    cancel,
    checkPending,
    start() {
      poke(0);
      return Promise.resolve();
    },
    async stop() {
      cancel();
      await background.drain();
    },
  };
}
