/**
 * The scheduler service (SPEC section 8): one leader among every engine process runs the
 * schedules of `schedules.ts`.
 *
 * - **Leader election.** Each process with the scheduler role tries
 *   `db.tryLock(LOCK_KEYS.schedulerLeader)` (a session advisory lock on its own connection) every
 *   2 s. The holder is the leader; when it stops it releases the lock, and when it dies (or its
 *   lock connection drops) PostgreSQL frees the lock, so another process takes over within about
 *   2 s. A leader that sees its lock connection gone stops scheduling at once. On PGlite the one
 *   process is always the leader.
 * - **Schedules.** On becoming leader each active schedule is planned `first_in` seconds ahead
 *   (`schedules.next_run_at`), then every `every` seconds after each run started
 *   (`queue_scheduled_jobs` reads `schedule_interval` at every run, and a change re-plans the next
 *   sweep from the last one at once, as `POST /settings` notifies, or within 5 s otherwise). A switch through `PUT /scheduler` (`CHANNELS.scheduler`) stops or starts a
 *   schedule at once; the switch is read from the table before every run. Runs of one schedule
 *   never overlap.
 * - **run_at timer.** While `queue_scheduled_jobs` is active, the leader keeps a timer for the
 *   earliest `run_at` of a scheduled job (re-read after every move, every sweep and every
 *   `CHANNELS.scheduler` notification, and at least once a minute), so a job leaves `scheduled` at
 *   its `run_at`, not up to a sweep interval late.
 * - **Semaphores.** While `queue_scheduled_jobs` is active, pending jobs are checked every 5 s
 *   with per-job backoff (see `semaphores.ts`), besides the sweep.
 */
import type { SessionLock } from '../../store/executor.js';
import { LOCK_KEYS } from '../../store/executor.js';
import type { EngineContext, Service } from '../context.js';
import { admitJobs } from '../controller/admission.js';
import { cleanupJobs } from '../maintenance/cleanup.js';
import { recoverStalledAttempts } from '../maintenance/recover-stalled.js';
import { readSettings } from '../settings.js';
import { CHANNELS } from '../signals.js';
import { moveDueJobs, nextScheduledRunAt } from './due-jobs.js';
import {
  SCHEDULE_NAMES,
  SCHEDULES,
  intervalSeconds,
  isScheduleName,
  readScheduleRows,
  type ScheduleName,
  type ScheduleRow,
} from './schedules.js';
import { SEMAPHORE_MAX_RECHECK_MS, SEMAPHORE_TIMEOUT_MS, SemaphoreChecker } from './semaphores.js';

/** The work of one schedule run; its result is logged (debug) and otherwise ignored. */
export type ScheduleHandler = (ctx: EngineContext) => Promise<unknown>;

/** Options of {@link createSchedulerService}; production needs none. */
export interface SchedulerServiceOptions {
  /** Replace the work of a schedule (tests count runs this way). */
  handlers?: Partial<Record<ScheduleName, ScheduleHandler>>;
  /** Override the timing of a schedule, in seconds (tests use short ones). */
  timing?: Partial<Record<ScheduleName, { everySeconds?: number; firstInSeconds?: number }>>;
  /** Milliseconds between leadership attempts. Default 2000. */
  leaderRetryMs?: number;
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

/** Longest single timer; longer waits re-check (Node timers overflow at 2^31 ms). */
const MAX_TIMER_MS = 3_600_000;
/** Longest wait of the run_at timer before it looks again (a safety net for lost notifications). */
const MAX_DUE_TIMER_MS = 60_000;

/**
 * Creates the scheduler service of this process (the `scheduler` role).
 * `start()` subscribes to `CHANNELS.scheduler` and begins the leader election; `stop()` stops
 * every timer, waits for runs in progress and releases leadership. Never throws out of its loops:
 * failures are logged to the process log and retried.
 * @param ctx - engine context.
 * @param options - test hooks; see {@link SchedulerServiceOptions}.
 */
export function createSchedulerService(
  ctx: EngineContext,
  options: SchedulerServiceOptions = {},
): SchedulerService {
  const log = ctx.logger.child({ service: 'scheduler' });
  const leaderRetryMs = options.leaderRetryMs ?? 2_000;
  const semaphoreRecheckMs = options.semaphoreRecheckMs ?? 5_000;
  const checker = new SemaphoreChecker(ctx, options.semaphoreTimeoutMs ?? SEMAPHORE_TIMEOUT_MS);

  let started = false;
  let stopping = false;
  let lock: SessionLock | null = null;
  let unlisten: (() => Promise<void>) | null = null;
  let electionTimer: NodeJS.Timeout | null = null;
  let dueTimer: NodeJS.Timeout | null = null;
  let semaphoreTimer: NodeJS.Timeout | null = null;
  const scheduleTimers = new Map<ScheduleName, NodeJS.Timeout>();
  const runs = new Map<ScheduleName, Promise<void>>();
  const background = new Set<Promise<unknown>>();
  const active: Record<ScheduleName, boolean> = {
    queue_scheduled_jobs: false,
    push_jobs: false,
    recover_stalled_tasks: false,
    cleanup_jobs: false,
  };
  /** `schedule_interval` used to plan the next `queue_scheduled_jobs` run. */
  let plannedInterval: number | null = null;
  let dueArming = false;
  let dueDirty = false;

  const isLeader = (): boolean => lock !== null && lock.held && !stopping;

  const track = (p: Promise<unknown>): void => {
    const q = p.catch((err: unknown) => log.error({ err }, 'scheduler: background step failed'));
    background.add(q);
    void q.finally(() => background.delete(q));
  };

  const handlers: Record<ScheduleName, ScheduleHandler> = {
    queue_scheduled_jobs: async (c) => {
      const moved = await moveDueJobs(c);
      const { known } = await readSettings(c.db);
      const semaphoreQueued = await checker.checkPending(
        Math.min(known.schedule_interval * 1000, SEMAPHORE_MAX_RECHECK_MS),
      );
      return { queued: moved.queued.length, pending: moved.pending.length, semaphoreQueued };
    },
    push_jobs: (c) => admitJobs(c),
    recover_stalled_tasks: (c) => recoverStalledAttempts(c),
    cleanup_jobs: (c) => cleanupJobs(c),
    ...options.handlers,
  };

  const everyMs = (name: ScheduleName, scheduleInterval: number): number =>
    (options.timing?.[name]?.everySeconds ?? intervalSeconds(name, scheduleInterval)) * 1000;
  const firstInMs = (name: ScheduleName): number =>
    (options.timing?.[name]?.firstInSeconds ?? SCHEDULES[name].firstIn) * 1000;

  const clearTimers = (): void => {
    for (const t of scheduleTimers.values()) clearTimeout(t);
    scheduleTimers.clear();
    if (dueTimer) clearTimeout(dueTimer);
    dueTimer = null;
    if (semaphoreTimer) clearTimeout(semaphoreTimer);
    semaphoreTimer = null;
  };

  // ---- leadership -------------------------------------------------------------------------

  const elect = async (): Promise<void> => {
    electionTimer = null;
    if (stopping) return;
    try {
      if (lock && !lock.held) {
        log.warn('scheduler: the leader lock connection was lost; no longer the scheduler leader');
        clearTimers();
        await lock.release().catch(() => undefined);
        lock = null;
      }
      if (!lock) {
        const got = await ctx.db.tryLock(LOCK_KEYS.schedulerLeader);
        if (got && stopping) await got.release();
        else if (got) {
          lock = got;
          log.info('scheduler: this process is now the scheduler leader');
          await becomeLeader();
        }
      }
    } catch (err) {
      log.error({ err }, 'scheduler: leader election step failed; retrying');
    } finally {
      if (!stopping) electionTimer = setTimeout(() => track(elect()), leaderRetryMs);
    }
  };

  const becomeLeader = async (): Promise<void> => {
    const now = ctx.clock.now();
    const { known } = await readSettings(ctx.db);
    plannedInterval = known.schedule_interval;
    await ctx.db.transaction(async (tx) => {
      // Every active schedule starts `first_in` after a leader takes over (resque-scheduler's rule).
      for (const name of SCHEDULE_NAMES) {
        const next = new Date(now.getTime() + firstInMs(name));
        await tx.query(
          `INSERT INTO schedules (name, active, next_run_at, updated_at) VALUES ($1, true, $2, $3)
           ON CONFLICT (name) DO UPDATE
           SET next_run_at = CASE WHEN schedules.active THEN EXCLUDED.next_run_at END, updated_at = EXCLUDED.updated_at`,
          [name, next, now],
        );
      }
    });
    await refresh();
  };

  /** Re-reads every schedule's switch and plan, and re-arms the timers to match. */
  const refresh = async (): Promise<void> => {
    if (!isLeader()) return;
    const rows = await readScheduleRows(ctx.db);
    for (const name of SCHEDULE_NAMES) await arm(name, rows[name]);
    track(armDue());
    armSemaphores(0);
    const { known } = await readSettings(ctx.db);
    if (plannedInterval !== null && known.schedule_interval !== plannedInterval && isLeader())
      await replanSweep(known.schedule_interval);
  };

  // ---- schedules --------------------------------------------------------------------------

  const arm = async (name: ScheduleName, row: ScheduleRow): Promise<void> => {
    const t = scheduleTimers.get(name);
    if (t) clearTimeout(t);
    scheduleTimers.delete(name);
    active[name] = row.active;
    if (!isLeader() || !row.active) {
      if (name === 'queue_scheduled_jobs') {
        if (dueTimer) clearTimeout(dueTimer);
        dueTimer = null;
        if (semaphoreTimer) clearTimeout(semaphoreTimer);
        semaphoreTimer = null;
      }
      return;
    }
    const now = ctx.clock.now();
    let next = row.next_run_at;
    if (!next) {
      // Switched on (or never planned): first run `first_in` from now.
      next = new Date(now.getTime() + firstInMs(name));
      await ctx.db.query(
        `UPDATE schedules SET next_run_at = $2 WHERE name = $1 AND active AND next_run_at IS NULL`,
        [name, next],
      );
    }
    const wait = Math.min(Math.max(0, next.getTime() - now.getTime()), MAX_TIMER_MS);
    scheduleTimers.set(
      name,
      setTimeout(() => {
        scheduleTimers.delete(name);
        run(name);
      }, wait),
    );
  };

  const run = (name: ScheduleName): void => {
    if (runs.has(name) || !isLeader()) return;
    const p = (async () => {
      const rows = await readScheduleRows(ctx.db);
      const row = rows[name];
      if (!row.active || !isLeader()) {
        await arm(name, row);
        return;
      }
      const startedAt = ctx.clock.now();
      if (row.next_run_at && row.next_run_at.getTime() > startedAt.getTime() + 20) {
        await arm(name, row); // a long wait was cut into pieces, or the plan changed
        return;
      }
      try {
        const result = await handlers[name](ctx);
        log.debug({ schedule: name, result }, 'scheduler: schedule ran');
      } catch (err) {
        log.error({ err, schedule: name }, 'scheduler: schedule run failed');
      }
      const { known } = await readSettings(ctx.db);
      if (name === 'queue_scheduled_jobs') plannedInterval = known.schedule_interval;
      const now = ctx.clock.now();
      const next = new Date(
        Math.max(startedAt.getTime() + everyMs(name, known.schedule_interval), now.getTime()),
      );
      const { rows: updated } = await ctx.db.query<ScheduleRow>(
        `UPDATE schedules SET last_run_at = $2, next_run_at = CASE WHEN active THEN $3::timestamptz END, updated_at = $4
         WHERE name = $1 RETURNING name, active, last_run_at, next_run_at`,
        [name, startedAt, next, now],
      );
      if (name === 'queue_scheduled_jobs') track(armDue());
      const fresh = updated[0];
      if (fresh) await arm(name, fresh);
    })();
    runs.set(name, p);
    track(p.finally(() => runs.delete(name)));
  };

  // ---- run_at timer -----------------------------------------------------------------------

  /** Moves due scheduled jobs now and sets the timer for the next `run_at`. Calls coalesce. */
  const armDue = async (): Promise<void> => {
    if (dueArming) {
      dueDirty = true;
      return;
    }
    dueArming = true;
    try {
      do {
        dueDirty = false;
        if (dueTimer) clearTimeout(dueTimer);
        dueTimer = null;
        if (!isLeader() || !active.queue_scheduled_jobs) return;
        const next = await nextScheduledRunAt(ctx);
        if (!isLeader() || !active.queue_scheduled_jobs) return;
        if (next === null) {
          dueTimer = setTimeout(() => track(armDue()), MAX_DUE_TIMER_MS);
          continue;
        }
        const wait = next.getTime() - ctx.clock.now().getTime();
        if (wait <= 0) {
          const moved = await moveDueJobs(ctx);
          if (moved.pending.length > 0) armSemaphores(0);
          if (moved.queued.length + moved.pending.length > 0) dueDirty = true;
          // Nothing moved although due: the rows are locked by a transaction in progress.
          else dueTimer = setTimeout(() => track(armDue()), 250);
          continue;
        }
        dueTimer = setTimeout(() => track(armDue()), Math.min(wait, MAX_DUE_TIMER_MS));
      } while (dueDirty && !stopping);
    } catch (err) {
      log.error({ err }, 'scheduler: run_at timer step failed; retrying in 2 s');
      if (!stopping) dueTimer = setTimeout(() => track(armDue()), 2_000);
    } finally {
      dueArming = false;
    }
  };

  // ---- semaphores and schedule_interval changes --------------------------------------------

  const armSemaphores = (delayMs: number = semaphoreRecheckMs): void => {
    if (semaphoreTimer) clearTimeout(semaphoreTimer);
    semaphoreTimer = null;
    if (!isLeader() || !active.queue_scheduled_jobs) return;
    semaphoreTimer = setTimeout(() => {
      semaphoreTimer = null;
      track(semaphorePass());
    }, delayMs);
  };

  const semaphorePass = async (): Promise<void> => {
    try {
      const { known } = await readSettings(ctx.db);
      await checker.checkPending(Math.min(known.schedule_interval * 1000, SEMAPHORE_MAX_RECHECK_MS));
      if (plannedInterval !== null && known.schedule_interval !== plannedInterval && isLeader())
        await replanSweep(known.schedule_interval);
    } finally {
      if (!semaphoreTimer) armSemaphores();
    }
  };

  /** `schedule_interval` changed: the next sweep is the last one plus the new interval. */
  const replanSweep = async (interval: number): Promise<void> => {
    plannedInterval = interval;
    const rows = await readScheduleRows(ctx.db);
    const row = rows.queue_scheduled_jobs;
    if (!row.active || !row.last_run_at || runs.has('queue_scheduled_jobs')) return;
    const next = new Date(
      Math.max(
        row.last_run_at.getTime() + everyMs('queue_scheduled_jobs', interval),
        ctx.clock.now().getTime(),
      ),
    );
    const { rows: updated } = await ctx.db.query<ScheduleRow>(
      `UPDATE schedules SET next_run_at = $2 WHERE name = $1 AND active RETURNING name, active, last_run_at, next_run_at`,
      ['queue_scheduled_jobs', next],
    );
    if (updated[0]) await arm('queue_scheduled_jobs', updated[0]);
    log.info({ schedule_interval: interval }, 'scheduler: schedule_interval changed; next sweep re-planned');
  };

  // ---- notifications ----------------------------------------------------------------------

  const onNotify = (payload: string): void => {
    if (!isLeader()) return;
    if (/^\d+$/.test(payload)) {
      // A job's run_at or semaphore changed (or a job was submitted as scheduled/pending). The
      // semaphore pass checks at once whatever pending job changed since its last check.
      track(armDue());
      armSemaphores(0);
      return;
    }
    if (payload === '' || isScheduleName(payload)) track(refresh());
  };

  return {
    name: 'scheduler',
    get isLeader() {
      return isLeader();
    },
    async start() {
      if (started) return;
      started = true;
      unlisten = await ctx.db.listen(CHANNELS.scheduler, onNotify);
      await elect();
    },
    async stop() {
      if (!started || stopping) return;
      stopping = true;
      if (electionTimer) clearTimeout(electionTimer);
      electionTimer = null;
      clearTimers();
      if (unlisten) await unlisten().catch(() => undefined);
      unlisten = null;
      while (background.size > 0) await Promise.allSettled([...background]);
      if (lock) await lock.release().catch(() => undefined);
      lock = null;
    },
  };
}
