/**
 * The task workers of one engine process: `concurrency` slots over a set of queues (a task takes
 * its `slots` of them, docs/task-slots-and-concurrency.md), composed of
 * four services — the claim loop (`claim-loop.ts`), the attempt runner (`attempt-runner.ts`), the
 * attempt outcome (`attempt-outcome.ts`, over the result writer) and the attempt heartbeat
 * (`attempt-heartbeat.ts`).
 */
import type { EngineContext, Service } from '../context.js';
import { createAttemptHeartbeat } from './attempt-heartbeat.js';
import { createAttemptOutcome } from './attempt-outcome.js';
import { createAttemptRunner } from './attempt-runner.js';
import { createClaimLoop } from './claim-loop.js';
import { createHandlerLoader, moduleHandlerRuns, preloadHandlers } from './handler-setup.js';
import { createLogBuffer } from './log-buffer.js';
import { createProgressWriter } from './progress-writer.js';
import { createResultWriter } from './result-writer.js';

export { AttemptAbortedError } from './attempt-errors.js';

/** Options of {@link createWorkerPool}. */
export interface WorkerPoolOptions {
  /** This process's id in `workers` (stored in `attempts.worker_id`). */
  workerId: string;
  /** Queues to take tasks from. */
  queues: string[];
  /** Capacity in slots: tasks run at once, each taking its `slots` (default 1). */
  concurrency: number;
  /** Attempt heartbeat period in ms; default 2 000 (keep well under `stall_timeout`). */
  heartbeatIntervalMs?: number;
  /** Safety-net claim poll in ms, for wake-ups that never came; default 5 000. */
  pollIntervalMs?: number;
  /** At stop, how long running attempts may go on before they are aborted and handed back; default 10 000 ms. */
  shutdownGraceMs?: number;
  /** After an abort, how long to wait for a handler to settle before the slot is freed anyway; default 12 000 ms. */
  abortSettleMs?: number;
  /** Least time between two writes of handlers' `ctx.progress` reports, ms; default 500. */
  progressIntervalMs?: number;
  /**
   * Whether a result write that makes tasks ready on this pool's queues claims them in its own
   * transaction (the hand-off claim, `ClaimLoop.claimWithin`); default true.
   */
  handoffClaims?: boolean;
  /**
   * Whether the pool loads the module handlers of the common workflows' tasks on its queues when
   * it starts (in the background, while it already claims), so first tasks do not wait for their
   * module to load and a broken module is logged at start; default true. Config
   * `preloadHandlers` (`TASK_ENGINE_PRELOAD_HANDLERS`).
   */
  preloadHandlers?: boolean;
}

/** The worker pool service, with hooks for tests and the engine. */
export interface WorkerPool extends Service {
  /** Asks for a claim pass soon. */
  wake(): void;
  /** Attempt ids running in this process now. */
  activeAttempts(): number[];
  /**
   * Replaces the queues tasks are taken from (duplicates dropped), for the next claim pass and
   * the `CHANNELS.tasks` filter, and asks for a claim pass (which also re-reads the earliest
   * delayed retry). Attempts already running are not touched.
   */
  setQueues(queues: string[]): void;
  /** Ends the shutdown grace period at once: running attempts are handed back now. */
  hurry(): void;
}

/**
 * Creates the worker pool: claims ready tasks (one statement per pass, up to the free slots),
 * runs each attempt's handler with a rendered `with`, a scratch workdir (made on first use), the
 * client's storage, an abort signal and the task's `timeout`, and writes the result through the
 * result writer (`success`, or `writeFailure`), group-committed (stale results are dropped).
 *
 * Wake-ups: `CHANNELS.tasks` notifications for its queues, a freed slot, a timer armed for the
 * earliest delayed retry, and a slow safety poll. `CHANNELS.cancel` (a job broken) aborts that
 * job's attempts; the heartbeat (one UPDATE per period for every running attempt) aborts any
 * attempt found no longer `running` (broken, recovered as stalled). Loops never throw out.
 *
 * Stop: claiming stops first; running attempts may finish within the grace period (heartbeats go
 * on), the rest are aborted and handed back; then every result is written, the heartbeat stops
 * and the job log lines still buffered are written.
 */
export function createWorkerPool(ctx: EngineContext, options: WorkerPoolOptions): WorkerPool {
  const graceMs = options.shutdownGraceMs ?? 10_000;
  const logs = createLogBuffer(ctx.db, ctx.logger, { clock: ctx.clock });
  const progress = createProgressWriter(ctx, { intervalMs: options.progressIntervalMs });
  const loadHandler = createHandlerLoader(ctx.catalog.dir);
  const runner = createAttemptRunner(ctx, {
    loadHandler,
    concurrency: options.concurrency,
    abortSettleMs: options.abortSettleMs ?? 12_000,
    logs,
    progress,
    outcome: createAttemptOutcome(
      ctx,
      createResultWriter(ctx, {
        handoff: options.handoffClaims === false ? undefined : (tx, ready) => claims.claimWithin(tx, ready),
      }),
    ),
    onSlotFreed: () => claims.slotFreed(),
    onAttemptDone: (token, boundFreed) => claims.attemptDone(token, boundFreed),
  });
  const claims = createClaimLoop(ctx, {
    workerId: options.workerId,
    queues: options.queues,
    pollIntervalMs: options.pollIntervalMs ?? 5_000,
    freeSlots: () => runner.freeSlots(),
    capacity: Math.max(1, options.concurrency),
    onClaimed: (task) => runner.run(task),
    knownAttemptIds: () => runner.attemptIds(),
    handoff: options.handoffClaims !== false,
  });
  const heartbeat = createAttemptHeartbeat(ctx, {
    intervalMs: options.heartbeatIntervalMs ?? 2_000,
    liveAttemptIds: () => runner.liveAttemptIds(),
    onLost: (attemptId) => {
      const ref = runner.abort(attemptId, 'lost');
      if (ref) ctx.logger.info({ attemptId, jobId: ref.jobId }, 'attempt is no longer running; aborting it');
    },
  });
  let stopped = true;

  return {
    name: 'workers',
    wake: () => claims.wake(),
    activeAttempts: () => runner.attemptIds(),
    setQueues: (queues) => claims.setQueues(queues),
    hurry: () => runner.hurry(),
    async start() {
      if (!stopped) return;
      stopped = false;
      await runner.start();
      heartbeat.start();
      await claims.start();
      if (options.preloadHandlers !== false) {
        const runs = moduleHandlerRuns(ctx.catalog.list(''), options.queues);
        void preloadHandlers(
          loadHandler,
          runs,
          (run, error) => ctx.logger.warn({ run, error }, 'a task handler could not be loaded'),
          () => stopped,
        ).then(({ loaded, ms }) => {
          // A pool stopped meanwhile broke off the preload: its count would mislead.
          if (!stopped)
            ctx.logger.info({ loaded, of: runs.length, ms: Math.round(ms) }, 'task handlers preloaded');
        });
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await claims.stop();
      await runner.stop(graceMs);
      await progress.close();
      heartbeat.stop();
      await logs.close();
    },
  };
}
