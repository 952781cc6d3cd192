/**
 * The scheduler service (SPEC section 8): one leader among every engine process runs the
 * schedules. It is a composition of four small services, one concern per file:
 *
 * - `leader-election.ts` — who leads (a session advisory lock, retried every 2 s);
 * - `schedule-runner.ts` — the four schedules of `schedules.ts`: planning, arming, running,
 *   re-planning when `schedule_interval` changes;
 * - `due-timer.ts` — the run_at timer that moves a scheduled job on at its `run_at`;
 * - `semaphore-loop.ts` — the checks of pending jobs' semaphores every 5 s, with backoff;
 * - `cron-runner.ts` — the user schedules (`POST /schedules`), fired at their cron slots.
 *
 * This file wires them together and to `CHANNELS.scheduler`: a job id as payload (a job's run_at
 * or semaphore changed, or a job was submitted scheduled or pending) pokes the run_at timer and
 * the semaphore loop; a schedule name or an empty payload (`PUT /scheduler`, `POST /settings`)
 * re-reads the schedules; `cron:<name>` (a user schedule changed) wakes the cron runner. All time
 * comes from `ctx.clock`.
 */
import { createTableUpkeep, type TableUpkeepMode } from '../maintenance/table-upkeep.js';
import type { EngineContext, Service } from '../context.js';
import { admitJobs } from '../controller/admission.js';
import { cleanupEvents, cleanupJobs } from '../maintenance/cleanup.js';
import { recoverStalledAttempts } from '../maintenance/recover-stalled.js';
import { readSettings } from '../settings.js';
import { CHANNELS } from '../signals.js';
import { createCronRunner } from './cron-runner.js';
import { CRON_NOTIFY_PREFIX } from './cron-schedules.js';
import { createDueTimer } from './due-timer.js';
import { moveDueJobs } from './due-jobs.js';
import { createLeaderElection } from './leader-election.js';
import { createScheduleRunner, type ScheduleHandler, type ScheduleTiming } from './schedule-runner.js';
import { isScheduleName, type ScheduleName } from './schedules.js';
import { createSemaphoreLoop, type SemaphoreLoop } from './semaphore-loop.js';
import { SEMAPHORE_TIMEOUT_MS } from './semaphores.js';

export type { ScheduleHandler } from './schedule-runner.js';

/** Options of {@link createSchedulerService}; production needs none. */
export interface SchedulerServiceOptions {
  /** Replace the work of a schedule (tests count runs this way). */
  handlers?: Partial<Record<ScheduleName, ScheduleHandler>>;
  /** Override the timing of a schedule, in seconds (tests use short ones). */
  timing?: ScheduleTiming;
  /** Milliseconds between leadership attempts. Default 2000. */
  leaderRetryMs?: number;
  /** Table upkeep mode (default: the config's `tableUpkeep`, else `auto`). */
  tableUpkeep?: TableUpkeepMode;
  /** Milliseconds between table upkeep passes (default 30 000). */
  tableUpkeepIntervalMs?: number;
  /** Milliseconds between semaphore passes. Default 5000. */
  semaphoreRecheckMs?: number;
  /** Timeout of one semaphore request in milliseconds. Default 5000 (SPEC section 8). */
  semaphoreTimeoutMs?: number;
}

/** The scheduler service, plus whether this process currently leads. */
export interface SchedulerService extends Service {
  /** True while this process holds the scheduler leader lock. */
  readonly isLeader: boolean;
}

/** The production work of each schedule; the sweep shares the semaphore loop's checker. */
function defaultHandlers(semaphores: SemaphoreLoop): Record<ScheduleName, ScheduleHandler> {
  return {
    queue_scheduled_jobs: async (c) => {
      const moved = await moveDueJobs(c);
      const { known } = await readSettings(c.db);
      const semaphoreQueued = await semaphores.checkPending(known.schedule_interval);
      return { queued: moved.queued.length, pending: moved.pending.length, semaphoreQueued };
    },
    push_jobs: (c) => admitJobs(c),
    recover_stalled_tasks: async (c) => {
      const recovered = await recoverStalledAttempts(c);
      if (recovered > 0) c.metrics?.stallsRecovered.inc(recovered);
      const { events } = await cleanupEvents(c);
      return { recovered, events_deleted: events };
    },
    cleanup_jobs: (c) => cleanupJobs(c),
  };
}

/**
 * Creates the scheduler service of this process (the `scheduler` role).
 * `start()` subscribes to `CHANNELS.scheduler` and begins the leader election; `stop()` stops
 * every timer, waits for runs in progress and then releases leadership. Never throws out of its
 * loops: failures are logged to the process log and retried.
 * @param ctx - engine context.
 * @param options - test hooks; see {@link SchedulerServiceOptions}.
 */
export function createSchedulerService(
  ctx: EngineContext,
  options: SchedulerServiceOptions = {},
): SchedulerService {
  const log = ctx.logger.child({ service: 'scheduler' });
  let started = false;
  let stopping = false;
  let unlisten: (() => Promise<void>) | null = null;

  const sweepEnabled = (): boolean => election.isLeader && runner.isActive('queue_scheduled_jobs');

  const election = createLeaderElection(ctx, log, {
    retryMs: options.leaderRetryMs ?? 2_000,
    onElected: async () => {
      await runner.start();
      await cron.start();
      upkeep.start();
    },
    onLost: () => {
      runner.cancel();
      cron.cancel();
      upkeep.cancel();
      dueTimer.cancel();
      semaphores.cancel();
    },
  });
  const semaphores = createSemaphoreLoop(ctx, log, {
    recheckMs: options.semaphoreRecheckMs ?? 5_000,
    timeoutMs: options.semaphoreTimeoutMs ?? SEMAPHORE_TIMEOUT_MS,
    enabled: sweepEnabled,
    afterPass: (interval) => runner.followInterval(interval),
  });
  const dueTimer = createDueTimer(ctx, log, {
    enabled: sweepEnabled,
    onPending: () => semaphores.poke(0),
  });
  const runner = createScheduleRunner(ctx, log, {
    handlers: { ...defaultHandlers(semaphores), ...options.handlers },
    timing: options.timing,
    isLeader: () => election.isLeader,
    onSweepOff: () => {
      dueTimer.cancel();
      semaphores.cancel();
    },
    onSweepRan: () => dueTimer.poke(),
    onRefreshed: () => {
      dueTimer.poke();
      semaphores.poke(0);
    },
  });

  const cron = createCronRunner(ctx, log, { isLeader: () => election.isLeader });
  const upkeep = createTableUpkeep(ctx, log, {
    isLeader: () => election.isLeader,
    mode: options.tableUpkeep ?? ctx.config.tableUpkeep ?? 'auto',
    intervalMs: options.tableUpkeepIntervalMs,
  });

  const onNotify = (payload: string): void => {
    if (!election.isLeader) return;
    if (/^\d+$/.test(payload)) {
      // A job's run_at or semaphore changed (or a job was submitted as scheduled/pending). The
      // semaphore pass checks at once whatever pending job changed since its last check.
      dueTimer.poke();
      semaphores.poke(0);
      return;
    }
    if (payload.startsWith(CRON_NOTIFY_PREFIX)) cron.poke();
    else if (payload === '' || isScheduleName(payload)) runner.refresh();
  };

  return {
    name: 'scheduler',
    get isLeader() {
      return election.isLeader;
    },
    async start() {
      if (started) return;
      started = true;
      unlisten = await ctx.db.listen(CHANNELS.scheduler, onNotify);
      await election.start();
    },
    async stop() {
      if (!started || stopping) return;
      stopping = true;
      // Stop leading first (every loop sees it), finish what runs, and only then free the lock,
      // so no other process leads while a run of this one is still going.
      await election.halt();
      if (unlisten) await unlisten().catch(() => undefined);
      unlisten = null;
      await Promise.all([runner.stop(), dueTimer.stop(), semaphores.stop(), cron.stop(), upkeep.stop()]);
      await election.stop();
    },
  };
}
