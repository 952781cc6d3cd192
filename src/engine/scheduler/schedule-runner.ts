/**
 * The schedule runner (SPEC section 8): runs the four schedules of `schedules.ts` while this
 * process leads. On taking over, each active schedule is planned `first_in` seconds ahead
 * (`schedules.next_run_at`), then every `every` seconds after each run started
 * (`queue_scheduled_jobs` reads `schedule_interval` at every run; a change of it re-plans the
 * next sweep from the last one at once, as `POST /settings` notifies, or within one semaphore
 * pass otherwise). A switch through `PUT /scheduler` re-arms a schedule at once; the switch is
 * read from the table again before every run. Runs of one schedule never overlap.
 */
import type { Logger } from 'pino';
import {
  planScheduleOnLeadership,
  planUnplannedSchedule,
  recordScheduleRun,
  replanSchedule,
} from '../../store/queries/schedules.js';
import type { ClockTimer } from '../clock.js';
import type { EngineContext, Service } from '../context.js';
import { readSettings } from '../settings.js';
import { BackgroundWork } from './background.js';
import { firedEarly, nextRunAt, scheduleWaitMs } from './schedule-plan.js';
import {
  SCHEDULE_NAMES,
  SCHEDULES,
  intervalSeconds,
  readScheduleRows,
  toScheduleRow,
  type ScheduleName,
  type ScheduleRow,
} from './schedules.js';

/** The work of one schedule run; its result is logged (debug) and otherwise ignored. */
export type ScheduleHandler = (ctx: EngineContext) => Promise<unknown>;

/** Timing overrides of a schedule, in seconds (tests use short ones). */
export type ScheduleTiming = Partial<
  Record<ScheduleName, { everySeconds?: number; firstInSeconds?: number }>
>;

/** What the runner needs from the rest of the scheduler. */
export interface ScheduleRunnerOptions {
  handlers: Record<ScheduleName, ScheduleHandler>;
  timing?: ScheduleTiming;
  /** Whether this process leads now. */
  isLeader: () => boolean;
  /** `queue_scheduled_jobs` is off (or not led here): the run_at timer and semaphores stop. */
  onSweepOff: () => void;
  /** A sweep ran: the run_at timer re-reads the earliest run_at. */
  onSweepRan: () => void;
  /** The schedules were re-read: the run_at timer and semaphore loop look again at once. */
  onRefreshed: () => void;
}

/** The schedule runner of the leader. */
export interface ScheduleRunner extends Service {
  /** Whether `name` was active at its last arming. */
  isActive(name: ScheduleName): boolean;
  /** Re-reads every schedule's switch and plan in the background, and re-arms the timers to match. */
  refresh(): void;
  /** `schedule_interval` is now `interval` (seconds): re-plans the sweep if it changed. */
  followInterval(interval: number): Promise<void>;
  /** Cancels every schedule timer (leadership lost); runs in progress finish. */
  cancel(): void;
}

/**
 * The intervals of each schedule in milliseconds: its definition's, or the test override in
 * `timing`. `everyMs` takes the current `schedule_interval` (seconds), which `queue_scheduled_jobs`
 * follows.
 */
export function scheduleTiming(timing: ScheduleTiming = {}): {
  everyMs: (name: ScheduleName, scheduleInterval: number) => number;
  firstInMs: (name: ScheduleName) => number;
} {
  return {
    everyMs: (name, scheduleInterval) =>
      (timing[name]?.everySeconds ?? intervalSeconds(name, scheduleInterval)) * 1000,
    firstInMs: (name) => (timing[name]?.firstInSeconds ?? SCHEDULES[name].firstIn) * 1000,
  };
}

/**
 * Every active schedule starts `first_in` after a leader takes over (resque-scheduler's rule):
 * one transaction planning each schedule's row.
 */
async function planOnLeadership(
  ctx: EngineContext,
  firstInMs: (name: ScheduleName) => number,
): Promise<void> {
  const now = ctx.clock.now();
  await ctx.db.transaction(async (tx) => {
    for (const name of SCHEDULE_NAMES) {
      const next = new Date(now.getTime() + firstInMs(name));
      await planScheduleOnLeadership.run(tx, { name, next, now });
    }
  });
}

/**
 * Creates the runner. `start()` plans every active schedule `first_in` ahead and arms its timer
 * (call it on becoming leader, again after a lost leadership); `stop()` cancels the timers and
 * waits for runs in progress. A failed run is logged and the schedule planned as usual.
 * (About 120 lines: six steps of at most 30 lines each, sharing the runner's timers, runs and
 * plan; splitting them further would pass that state around instead.)
 */
export function createScheduleRunner(
  ctx: EngineContext,
  log: Logger,
  options: ScheduleRunnerOptions,
): ScheduleRunner {
  const background = new BackgroundWork(log, 'schedule runner');
  const timers = new Map<ScheduleName, ClockTimer>();
  const runs = new Map<ScheduleName, Promise<void>>();
  /** Each schedule's switch as last armed (false until the first arming). */
  const active = Object.fromEntries(SCHEDULE_NAMES.map((n) => [n, false])) as Record<ScheduleName, boolean>;
  /** `schedule_interval` used to plan the next `queue_scheduled_jobs` run. */
  let plannedInterval: number | null = null;
  const { isLeader } = options;
  const { everyMs, firstInMs } = scheduleTiming(options.timing);

  const cancel = (): void => {
    for (const t of timers.values()) t.cancel();
    timers.clear();
  };

  /** Plans every schedule `first_in` from now, as a new leader does, and arms the timers. */
  const lead = async (): Promise<void> => {
    const { known } = await readSettings(ctx.db);
    plannedInterval = known.schedule_interval;
    await planOnLeadership(ctx, firstInMs);
    await refresh();
  };

  /** Re-reads every schedule's switch and plan, and re-arms the timers to match. */
  const refresh = async (): Promise<void> => {
    if (!isLeader()) return;
    const rows = await readScheduleRows(ctx.db);
    for (const name of SCHEDULE_NAMES) await arm(name, rows[name]);
    options.onRefreshed();
    const { known } = await readSettings(ctx.db);
    await followInterval(known.schedule_interval);
  };

  /** Sets the timer of `name` for its plan in `row` (planning it first when it has none). */
  const arm = async (name: ScheduleName, row: ScheduleRow): Promise<void> => {
    timers.get(name)?.cancel();
    timers.delete(name);
    active[name] = row.active;
    if (!isLeader() || !row.active) {
      if (name === 'queue_scheduled_jobs') options.onSweepOff();
      return;
    }
    const now = ctx.clock.now();
    let next = row.next_run_at;
    if (!next) {
      // Switched on (or never planned): first run `first_in` from now.
      next = new Date(now.getTime() + firstInMs(name));
      await planUnplannedSchedule.run(ctx.db, { name, next });
    }
    timers.set(
      name,
      ctx.clock.setTimeout(
        () => {
          timers.delete(name);
          run(name);
        },
        scheduleWaitMs(next, now),
      ),
    );
  };

  const run = (name: ScheduleName): void => {
    if (runs.has(name) || !isLeader()) return;
    const p = runOnce(name);
    runs.set(name, p);
    background.track(p.finally(() => runs.delete(name)));
  };

  /** One run of `name`: re-checks the switch and plan, runs the handler, plans the next. */
  const runOnce = async (name: ScheduleName): Promise<void> => {
    const row = (await readScheduleRows(ctx.db))[name];
    const startedAt = ctx.clock.now();
    if (!row.active || !isLeader() || firedEarly(row.next_run_at, startedAt)) {
      await arm(name, row); // switched off, no longer leading, or a long wait cut into pieces
      return;
    }
    try {
      const result = await options.handlers[name](ctx);
      log.debug({ schedule: name, result }, 'scheduler: schedule ran');
    } catch (err) {
      log.error({ err, schedule: name }, 'scheduler: schedule run failed');
    }
    const { known } = await readSettings(ctx.db);
    if (name === 'queue_scheduled_jobs') plannedInterval = known.schedule_interval;
    const now = ctx.clock.now();
    const next = nextRunAt(startedAt, everyMs(name, known.schedule_interval), now);
    const updated = await recordScheduleRun.first(ctx.db, { name, startedAt, next, now });
    if (name === 'queue_scheduled_jobs') options.onSweepRan();
    const fresh = updated && toScheduleRow(updated);
    if (fresh) await arm(name, fresh);
  };

  /** `schedule_interval` changed: the next sweep is the last one plus the new interval. */
  const followInterval = async (interval: number): Promise<void> => {
    if (plannedInterval === null || interval === plannedInterval || !isLeader()) return;
    plannedInterval = interval;
    const row = (await readScheduleRows(ctx.db)).queue_scheduled_jobs;
    if (!row.active || !row.last_run_at || runs.has('queue_scheduled_jobs')) return;
    const next = nextRunAt(row.last_run_at, everyMs('queue_scheduled_jobs', interval), ctx.clock.now());
    const updated = await replanSchedule.first(ctx.db, { name: 'queue_scheduled_jobs', next });
    const fresh = updated && toScheduleRow(updated);
    if (fresh) await arm('queue_scheduled_jobs', fresh);
    log.info({ schedule_interval: interval }, 'scheduler: schedule_interval changed; next sweep re-planned');
  };

  return {
    name: 'scheduler-schedule-runner',
    isActive: (name) => active[name],
    refresh: () => background.track(refresh()),
    followInterval,
    cancel,
    start: lead,
    async stop() {
      cancel();
      await background.drain();
    },
  };
}
