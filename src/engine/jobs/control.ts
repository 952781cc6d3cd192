/**
 * State changes a person asks for: break, pause, resume, reschedule (SPEC section 5.3). Each runs
 * inside the caller's transaction, checks the move with {@link assertTransition}, and writes it as
 * one statement of src/store/queries/jobs.ts with the current state in the `WHERE`: zero rows
 * means another writer got there first, which is reported as a 409 after re-reading the state,
 * never silently ignored.
 */
import type { Queryable } from '../../store/executor.js';
import {
  breakJobState,
  cancelRunningAttemptsOfJob,
  failUnfinishedTasksOfJob,
  type JobTransitionParams,
  lockJobForUpdate,
  moveJobState,
  queueJobState,
  readJobState,
} from '../../store/queries/jobs.js';
import type { Query } from '../../store/queries/define-query.js';
import { EngineError } from '../../errors/catalogue.js';
import { callbackTargets, jobEndBody } from '../callbacks/bodies.js';
import { enqueueJobEnd } from '../callbacks/enqueue.js';
import { CHANNELS, notify } from '../signals.js';
import type { EngineContext } from '../context.js';
import { advanceJob } from '../controller/advance.js';
import { lockJobForAdvance } from '../../store/queries/job-effects.js';
import { appendLog, type Progname } from './job-log.js';
import { taskEdge } from './task-transitions.js';
import { assertTransition, type JobState, type TransitionCause } from './transitions.js';

/** Error text written on tasks and attempts that a break ends. */
export const JOB_BROKEN_ERROR = 'job broken';

/** The task edge a break takes: every unfinished task fails. */
const BREAK_TASKS = taskEdge(['waiting', 'ready', 'running'], 'failed', 'break');

/** Options shared by the state-change helpers. */
export interface ChangeOptions {
  /** The time to record: the engine's clock (`ctx.clock.now()`). */
  now: Date;
  /** Who writes the job log entry; default `api`. */
  progname?: Progname;
}

interface LockedJob {
  id: number;
  client: string;
  workflow: string;
  queue_state: JobState;
  started_at: Date | null;
  content_id: string | null;
  resolved_parameters: Record<string, unknown>;
}

/**
 * Locks a job row for the rest of the transaction and reads what the state helpers need.
 * @throws {EngineError} `JOB_NOT_FOUND` when the row does not exist.
 */
export async function lockJob(tx: Queryable, jobId: number): Promise<LockedJob> {
  const row = (await lockJobForUpdate.first(tx, { id: jobId })) as LockedJob | null;
  if (!row) throw new EngineError('JOB_NOT_FOUND', `job ${jobId} not found`, { jobId });
  return row;
}

/**
 * Runs a transition statement of src/store/queries/jobs.ts, which writes only if the job is
 * still in `params.from`; on zero rows re-reads the state and throws.
 * @param to - the target state, for the error.
 * @throws {EngineError} `STATE_CONFLICT` when the job left `from` meanwhile; `JOB_NOT_FOUND`.
 */
export async function writeTransition<P extends JobTransitionParams>(
  tx: Queryable,
  statement: Query<P, unknown>,
  params: P,
  to: JobState,
): Promise<void> {
  const res = await statement.run(tx, params);
  if (res.rowCount === 1) return;
  const current = (await readJobState.first(tx, { id: params.id }))?.queue_state;
  const jobId = params.id;
  if (!current) throw new EngineError('JOB_NOT_FOUND', `job ${jobId} not found`, { jobId });
  throw new EngineError(
    'STATE_CONFLICT',
    `job ${jobId} changed to ${current} meanwhile; it was not moved to ${to}`,
    {
      jobId,
    },
  );
}

/** What a break did. */
export interface BreakResult {
  /** The state the job was in. */
  from: JobState;
  /** Whether a job-end callback (status `failed`) was enqueued. */
  jobEndEnqueued: boolean;
  /** Attempts cancelled. */
  cancelledAttempts: number;
}

/**
 * Breaks a job (PATCH `queue_state: broken`, or a rerun of a live job), in the caller's
 * transaction: job → broken with `finished_at`; its waiting/ready/running tasks → failed with
 * error `job broken`; its running attempts → cancelled; `CHANNELS.cancel` notified with the job id
 * so workers abort those attempts. When the job had started (started, or paused after starting)
 * it held or may hold a slot and its client has seen task callbacks: the job-end callback is
 * enqueued with status `failed` (outputs are not rendered on a break) and admission is woken.
 * Cleanup tasks (`when: always|failed`) of a job that had started are not failed when they have
 * not started yet: the job stays `broken` and they run after the break (claims take ready tasks
 * of broken jobs, outside the slot count); the job-end callback is enqueued when they have ended.
 * @param reason - written to the job log.
 * @param opts.cause - `break` (default); `rerun` also lets a completed job become broken.
 * @throws {EngineError} `STATE_CONFLICT` (409) when the job's state does not allow it (e.g. already broken);
 * `JOB_NOT_FOUND` when it does not exist.
 */
export async function breakJob(
  tx: Queryable,
  jobId: number,
  reason: string,
  opts: ChangeOptions & {
    cause?: Extract<TransitionCause, 'break' | 'rerun'>;
    /** The engine, to run the job's cleanup tasks after the break; without it they fail too. */
    ctx?: EngineContext;
  },
): Promise<BreakResult> {
  const now = opts.now;
  const job = await lockJob(tx, jobId);
  const from = job.queue_state;
  const cause = from === 'completed' ? (opts.cause ?? 'break') : 'break';
  assertTransition(jobId, from, 'broken', cause);
  // A completed job (rerun) keeps its finished_at; a live one finishes now.
  await writeTransition(
    tx,
    breakJobState,
    { id: jobId, from, now, keepFinishedAt: from === 'completed' },
    'broken',
  );
  // Tracing on: the job span ends with the break, marked and exported after this transaction
  // (once: a rerun's break of a completed job finds it ended).
  opts.ctx?.tracing?.jobsEnded([jobId], now);
  await appendLog(tx, {
    now,
    jobId,
    progname: opts.progname ?? 'api',
    message: `Job broken (was ${from}): ${reason}`,
  });
  if (from === 'completed') return { from, jobEndEnqueued: false, cancelledAttempts: 0 };

  const cancelled = await cancelRunningAttemptsOfJob.run(tx, { jobId, now, error: JOB_BROKEN_ERROR });
  const hadStarted = from === 'started' || (from === 'paused' && job.started_at !== null);
  // A job that had started keeps its cleanup tasks (`when`) that have not started: they run
  // after the break, and its job-end callback waits for them (advance enqueues it).
  const runtime = hadStarted && opts.ctx ? await lockJobForAdvance.first(tx, { jobId }) : null;
  const cleanup = (runtime?.definition.tasks ?? []).filter((t) => t.when !== undefined).map((t) => t.name);
  await failUnfinishedTasksOfJob.run(tx, {
    jobId,
    from: BREAK_TASKS.from,
    now,
    error: JOB_BROKEN_ERROR,
    keepUnstarted: cleanup,
  });
  await notify(tx, CHANNELS.cancel, jobId);

  let jobEndEnqueued = false;
  if (runtime && opts.ctx && cleanup.length > 0) {
    await advanceJob(tx, opts.ctx, jobId, 0, runtime);
    await notify(tx, CHANNELS.admission, 'job_broken');
  } else if (hadStarted) {
    const n = await enqueueJobEnd(
      tx,
      callbackTargets(job.resolved_parameters),
      jobEndBody(job, 'failed', now),
    );
    jobEndEnqueued = n > 0;
    await notify(tx, CHANNELS.admission, 'job_broken');
  }
  await notify(tx, CHANNELS.jobEnded, jobId);
  return { from, jobEndEnqueued, cancelledAttempts: cancelled.rowCount };
}

/**
 * Pauses a job (PATCH `queue_state: paused`), in the caller's transaction. Running attempts go
 * on; nothing new is claimed (claims require a started job); finished tasks stay finished. A
 * paused job that still has a running task counts against `max_jobs` until that task ends, so
 * admission is woken: if nothing of it runs, its slot is free at once.
 * @returns the state the job was in.
 * @throws {EngineError} `STATE_CONFLICT` (409) when the job is completed, broken or already paused.
 */
export async function pauseJob(tx: Queryable, jobId: number, opts: ChangeOptions): Promise<JobState> {
  const now = opts.now;
  const job = await lockJob(tx, jobId);
  assertTransition(jobId, job.queue_state, 'paused', 'pause');
  await writeTransition(tx, moveJobState, { id: jobId, from: job.queue_state, to: 'paused', now }, 'paused');
  await appendLog(tx, {
    now,
    jobId,
    progname: opts.progname ?? 'api',
    message: `Job paused (was ${job.queue_state})`,
  });
  if (job.queue_state === 'started') await notify(tx, CHANNELS.admission, 'job_paused');
  return job.queue_state;
}

/**
 * Moves a paused, scheduled or pending job to queued (PATCH `queue_state: queued`), in the
 * caller's transaction. From paused it resumes: `queued_at` = now, finished tasks are not run
 * again, ready tasks stay ready. From scheduled or pending it forces the job due now: it is queued
 * at once without waiting for `run_at` or the semaphore, and a scheduled job's `run_at` becomes now.
 * @returns the state the job was in.
 * @throws {EngineError} `STATE_CONFLICT` (409) for any other state.
 */
export async function queueJobNow(tx: Queryable, jobId: number, opts: ChangeOptions): Promise<JobState> {
  const now = opts.now;
  const job = await lockJob(tx, jobId);
  const from = job.queue_state;
  assertTransition(jobId, from, 'queued', 'resume');
  await writeTransition(tx, queueJobState, { id: jobId, from, now }, 'queued');
  const message =
    from === 'paused'
      ? 'Job resumed: queued again'
      : `Job queued now by request (was ${from}; run_at and semaphore no longer waited for)`;
  await appendLog(tx, { jobId, progname: opts.progname ?? 'api', message, now });
  await notify(tx, CHANNELS.admission, 'job_queued');
  return from;
}
