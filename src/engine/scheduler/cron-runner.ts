/**
 * The cron runner (issue 11 part 4): while this process is the scheduler leader, fires the user
 * schedules of `cron-schedules.ts` at their slots. One timer waits for the earliest
 * `next_run_at` among active schedules (at most {@link MAX_CRON_WAIT_MS}, a safety net); a change
 * of a schedule (`cron:<name>` on `CHANNELS.scheduler`) and a new leadership look again at once,
 * so slots missed while no leader ran are handled straight away, as `catch_up` says.
 *
 * Exactly once per slot: each schedule fires in its own transaction that locks its row, handles
 * every due slot from its cursor (`next_run_at`) to now, submits their jobs through the job
 * submission statement, stamps them with `schedule` and `scheduled_for` (unique together), and
 * moves the cursor past now. A second engine firing the same schedule (a leader that has not yet
 * noticed it lost its lock) waits for the row and then finds nothing due; a crash before the
 * commit leaves the cursor and submits nothing, and the next leader handles those slots.
 */
import type { Logger } from 'pino';
import type { Queryable } from '../../store/executor.js';
import {
  listDueCronSchedules,
  lockCronSchedule,
  readNextCronRunAt,
  readScheduledJobState,
  recordCronScheduleFiring,
  stampScheduledJobs,
  type CronScheduleRow,
} from '../../store/queries/cron-schedules.js';
import { EngineError } from '../../errors/catalogue.js';
import { assertJobStorage } from '../../storage/client-storage.js';
import { validateParameters } from '../../workflows/parameters.js';
import { callbackTargets, jobEndBody } from '../callbacks/bodies.js';
import { enqueueJobEnd } from '../callbacks/enqueue.js';
import { breakJob } from '../jobs/control.js';
import type { ClockTimer } from '../clock.js';
import type { EngineContext, Service } from '../context.js';
import { insertJobs } from '../jobs/submit.js';
import { FINAL_STATES, type JobState } from '../jobs/transitions.js';
import { BackgroundWork } from './background.js';
import { planSlots, type CatchUp, type Overlap, type SkipReason } from './cron-plan.js';
import { compileCron } from './cron-schedules.js';

/** Longest wait of the cron timer before it looks again. */
export const MAX_CRON_WAIT_MS = 60_000;

/** The first log entry of a job a schedule submitted. */
export function scheduledJobLogMessage(schedule: string, slot: Date): string {
  return `submitted by schedule ${schedule} for slot ${slot.toISOString()}`;
}

/** What one firing of a schedule did. */
export interface CronFiring {
  schedule: string;
  /** The jobs submitted, with their slots, earliest first. */
  submitted: { id: number; slot: Date }[];
  skipped: { slot: Date; reason: SkipReason | 'invalid' }[];
  /** Older missed slots than the latest MAX_DUE_SLOTS were dropped uncounted. */
  olderDropped: boolean;
  /** The cursor after the firing. */
  next: Date | null;
}

/** Whether the previous job of `row` is unfinished (not completed or broken, and not cleaned up). */
async function previousUnfinished(q: Queryable, row: CronScheduleRow): Promise<boolean> {
  if (row.last_job_id === null) return false;
  const job = await readScheduledJobState.first(q, { id: row.last_job_id });
  return job !== null && !FINAL_STATES.includes(job.queue_state as JobState);
}

/**
 * Fires schedule `name` once, in one transaction with its row locked: handles every slot from its
 * cursor to now (see `planSlots`), submits a job per chosen slot as the schedule's client (first
 * log entry `submitted by schedule <name> for slot <ISO>`), and moves the cursor to the first
 * slot after now. A workflow that no longer exists, or parameters its schema now refuses, skip
 * the slots (`invalid`) with an error in the process log. Parameters naming object storage the
 * client no longer has configured (the submission check of POST /job): the jobs are submitted and
 * broken at once, with the reason in their log and a `failed` job-end callback.
 * @returns what it did, or null when the schedule is gone, off or not due.
 */
export async function fireCronSchedule(
  ctx: EngineContext,
  log: Logger,
  name: string,
): Promise<CronFiring | null> {
  return ctx.db.transaction(async (tx) => {
    const row = await lockCronSchedule.first(tx, { name });
    const now = ctx.clock.now();
    if (!row || !row.active || !row.next_run_at || row.next_run_at.getTime() > now.getTime()) return null;
    const slots = compileCron(row.cron, row.timezone);
    const due = slots.due(row.next_run_at, now);
    const plan = planSlots({
      due: due.slots,
      now,
      catchUp: row.catch_up as CatchUp,
      overlap: row.overlap as Overlap,
      previousUnfinished: row.overlap === 'skip' && (await previousUnfinished(tx, row)),
    });
    const firing: CronFiring = {
      schedule: name,
      submitted: [],
      skipped: plan.skipped,
      olderDropped: due.olderDropped,
      next: slots.next(now),
    };
    if (plan.submit.length > 0) {
      const resolved = ctx.catalog.resolve(row.client, row.workflow);
      const validation = resolved ? validateParameters(resolved.definition, row.parameters) : null;
      if (!resolved || !validation?.ok) {
        const why = !resolved
          ? `workflow "${row.workflow}" no longer exists for client "${row.client}"`
          : `parameters are no longer valid for workflow "${row.workflow}": ${validation && !validation.ok ? validation.problems.join('; ') : ''}`;
        log.error(
          { schedule: name, slots: plan.submit.map((s) => s.toISOString()) },
          `scheduler: schedule ${name}: ${why}; no job submitted`,
        );
        firing.skipped = [
          ...firing.skipped,
          ...plan.submit.map((slot) => ({ slot, reason: 'invalid' as const })),
        ];
      } else {
        const created = await insertJobs(
          tx,
          plan.submit.map((slot) => ({
            job: {
              client: row.client,
              workflow: resolved.definition.name,
              priority: row.priority,
              persist: false,
              topOfQueue: false,
              runAt: now,
              semaphoreUrl: null,
              parameters: row.parameters,
              resolvedParameters: validation.resolved,
              definition: resolved.definition,
              definitionSource: resolved.source,
              rerunOf: null,
            },
            now,
            firstLog: scheduledJobLogMessage(name, slot),
            ...(ctx.tracing ? { trace: ctx.tracing.newJobTrace(undefined, now) } : {}),
          })),
        );
        firing.submitted = created.map((c, i) => ({ id: c.id, slot: plan.submit[i]! }));
        // The client's storage may have changed since the schedule was made: the check POST /job
        // makes. A job that fails it is broken at once, with the reason in its log and the job-end
        // callback (status failed), rather than failing later deep in a task.
        const storageProblem = await assertJobStorage(
          tx,
          row.client,
          validation.resolved,
          resolved.definition,
        ).then(
          () => null,
          (err: unknown) => {
            if (err instanceof EngineError) return err.message;
            throw err;
          },
        );
        if (storageProblem !== null) {
          log.error(
            { schedule: name, jobs: created.map((c) => c.id) },
            `scheduler: schedule ${name}: ${storageProblem}; job(s) broken`,
          );
          const contentId = validation.resolved.content_id;
          for (const c of created) {
            await breakJob(tx, c.id, `storage check failed: ${storageProblem}`, {
              now,
              progname: 'scheduler',
            });
            await enqueueJobEnd(
              tx,
              callbackTargets(validation.resolved),
              jobEndBody(
                {
                  id: c.id,
                  workflow: resolved.definition.name,
                  content_id: typeof contentId === 'string' ? contentId : null,
                  client: row.client,
                  resolved_parameters: validation.resolved,
                },
                'failed',
                now,
              ),
            );
          }
        }
        await stampScheduledJobs.run(tx, { name, ids: created.map((c) => c.id), slots: plan.submit });
      }
    }
    const last = firing.submitted.at(-1);
    await recordCronScheduleFiring.run(tx, {
      name,
      next: firing.next,
      lastRunAt: last ? now : null,
      lastSlot: last?.slot ?? null,
      lastJobId: last?.id ?? null,
      now,
    });
    return firing;
  });
}

/** The cron runner of the leader. */
export interface CronRunner extends Service {
  /** Looks for due schedules now and re-arms the timer (a schedule changed, or leadership began). */
  poke(): void;
  /** Cancels the timer (leadership lost); a firing in progress finishes. */
  cancel(): void;
}

/**
 * Creates the runner. `start()` looks at once (call it on becoming leader); `stop()` cancels the
 * timer and waits for a firing in progress. One pass at a time; a poke during a pass runs another
 * after it. A failed firing is logged and tried again at the next pass.
 */
export function createCronRunner(
  ctx: EngineContext,
  log: Logger,
  options: { isLeader: () => boolean },
): CronRunner {
  const background = new BackgroundWork(log, 'cron runner');
  let timer: ClockTimer | null = null;
  let passing = false;
  let again = false;
  let stopped = false;

  const cancel = (): void => {
    timer?.cancel();
    timer = null;
  };

  const arm = (waitMs: number): void => {
    cancel();
    if (stopped || !options.isLeader()) return;
    timer = ctx.clock.setTimeout(() => {
      timer = null;
      poke();
    }, waitMs);
  };

  /** Fires every due schedule, then waits for the earliest next slot. */
  const pass = async (): Promise<void> => {
    let waitMs = 1_000; // after a failed pass
    try {
      const due = await listDueCronSchedules.rows(ctx.db, { now: ctx.clock.now() });
      for (const { name } of due) {
        if (stopped || !options.isLeader()) return;
        try {
          const firing = await fireCronSchedule(ctx, log, name);
          if (firing) report(log, firing);
        } catch (err) {
          log.error({ err, schedule: name }, `scheduler: schedule ${name} failed to fire; trying again`);
        }
      }
      const { next_run_at: next } = (await readNextCronRunAt.first(ctx.db, {})) ?? { next_run_at: null };
      const now = ctx.clock.now().getTime();
      waitMs = next ? Math.min(Math.max(0, next.getTime() - now), MAX_CRON_WAIT_MS) : MAX_CRON_WAIT_MS;
    } finally {
      arm(waitMs);
    }
  };

  const poke = (): void => {
    if (stopped || !options.isLeader()) return;
    if (passing) {
      again = true;
      return;
    }
    passing = true;
    background.track(
      (async () => {
        try {
          do {
            again = false;
            await pass();
          } while (again && !stopped);
        } finally {
          passing = false;
        }
      })(),
    );
  };

  return {
    name: 'scheduler-cron-runner',
    poke,
    cancel,
    // eslint-disable-next-line @typescript-eslint/require-await -- the service contract's start() is async; a throw of poke() must reject it
    async start() {
      stopped = false;
      poke();
    },
    async stop() {
      stopped = true;
      cancel();
      await background.drain();
    },
  };
}

/** Logs a firing: each job at debug, skipped slots at info (a missed slot is worth knowing). */
function report(log: Logger, f: CronFiring): void {
  for (const s of f.submitted)
    log.debug(
      { schedule: f.schedule, job: s.id, slot: s.slot.toISOString() },
      'scheduler: schedule submitted a job',
    );
  if (f.skipped.length > 0 || f.olderDropped)
    log.info(
      {
        schedule: f.schedule,
        skipped: f.skipped.length,
        first: f.skipped[0]?.slot.toISOString(),
        last: f.skipped.at(-1)?.slot.toISOString(),
        reasons: [...new Set(f.skipped.map((s) => s.reason))],
        older_dropped: f.olderDropped,
      },
      `scheduler: schedule ${f.schedule} skipped ${f.skipped.length} slot(s)`,
    );
}
