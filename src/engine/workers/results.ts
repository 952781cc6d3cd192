/**
 * Recording the end of task attempts (SPEC section 6): success, failure (retry or final), stall
 * and hand-back at worker shutdown, one batch at a time through one path — lock the jobs, read
 * their tasks, plan ({@link planOutcomes}, pure), apply (`applyJobEffects`, one statement). Every
 * writer of a job's tasks takes the job lock first, and the read comes after it, so an outcome
 * whose attempt is no longer its task's live attempt (a newer attempt, a break or a stall
 * recovery got there first) is dropped (`stale`), never written over the newer state.
 */
import type { EngineMetrics } from '../metrics/metrics.js';
import { countFinishedJobs } from '../metrics/record.js';
import type { Queryable } from '../../store/executor.js';
import { cancelRunningAttempt, readOutcomeTasks } from '../../store/queries/attempts.js';
import { lockJobsForResults } from '../../store/queries/job-effects.js';
import type { Clock } from '../clock.js';
import type { EngineContext } from '../context.js';
import type { EngineTracing } from '../tracing/tracing.js';
import { applyEffects, type AdvanceTaskRow } from '../controller/advance.js';
import type { RuntimeJob } from '../controller/job-scope.js';
import { readClientSettings, readSettings } from '../settings.js';
import {
  planOutcomes,
  type AttemptOutcome,
  type AttemptRef,
  type OutcomeResult,
  type PlannedOutcome,
} from './outcome-plan.js';
import type { AttemptFailure } from './retry-decision.js';

export type { AttemptOutcome, AttemptRef, OutcomeResult } from './outcome-plan.js';
export { MAX_DELAY_SECONDS, type AttemptFailure } from './retry-decision.js';

/** Outcome of recording a failure. */
export type FailureOutcome = 'retry' | 'failed' | 'stale';

/** A successful attempt to record: which attempt, and its output as JSON text. */
export interface SuccessResult extends AttemptRef {
  outputJson: string;
}

/** What recording outcomes needs of the engine: its clock, and the storage root for templates. */
export interface OutcomeContext {
  clock: Clock;
  config: { storageRoot: string };
  /** Counts finished jobs when set. */
  metrics?: EngineMetrics | undefined;
  /** Exports the spans of the jobs that end (tracing on). */
  tracing?: EngineTracing | undefined;
}

/**
 * Locks the jobs `jobIds` in `tx`, in id order (the order every batch of results takes them in,
 * so concurrent batches never deadlock), and returns their runtime columns by id. Locking a job
 * this transaction already holds does not wait.
 */
export async function lockJobs(tx: Queryable, jobIds: number[]): Promise<Map<number, RuntimeJob>> {
  const rows = await lockJobsForResults.rows(tx, { jobIds: [...new Set(jobIds)] });
  return new Map(rows.map((r) => [Number(r.id), r]));
}

/**
 * Records attempt outcomes in `tx`, however many and of whatever kind: the jobs are locked
 * ({@link lockJobs}; skipped for jobs given in `locked`), one statement reads their tasks and
 * which attempts are live (`readOutcomeTasks`), the settings (global and per client) are read when
 * a live failure needs the retry defaults, {@link planOutcomes} decides, and one statement writes it all
 * ({@link applyEffects}). A batch of successes costs three round trips.
 * @param locked - jobs already locked by `tx`, with their runtime columns (read after locking).
 * @param readyQueues - when given, the queues of the tasks this write makes ready are added to it.
 * @returns per outcome, in the order given.
 * @throws the driver's error; the caller's transaction then rolls back and nothing is written.
 */
export async function writeOutcomes(
  tx: Queryable,
  ctx: OutcomeContext,
  outcomes: AttemptOutcome[],
  locked?: Map<number, RuntimeJob>,
  readyQueues?: Set<string>,
): Promise<OutcomeResult[]> {
  if (outcomes.length === 0) return [];
  const now = ctx.clock.now();
  const jobs = new Map(locked ?? []);
  const missing = outcomes.map((o) => o.ref.jobId).filter((id) => !jobs.has(id));
  if (missing.length > 0) for (const [id, j] of await lockJobs(tx, missing)) jobs.set(id, j);
  // One row per attempt in the read (a repeated attempt would repeat its task's row).
  const refs = new Map<number, { ref: AttemptRef; countFailures: boolean }>();
  for (const o of outcomes) {
    const seen = refs.get(o.ref.attemptId);
    if (!seen) refs.set(o.ref.attemptId, { ref: o.ref, countFailures: o.kind === 'failure' });
    else seen.countFailures ||= o.kind === 'failure';
  }
  const list = [...refs.values()];
  const rows = await readOutcomeTasks.rows(tx, {
    attemptIds: list.map((r) => r.ref.attemptId),
    taskIds: list.map((r) => r.ref.taskId),
    jobIds: list.map((r) => r.ref.jobId),
    countFailures: list.map((r) => r.countFailures),
  });
  const tasks = new Map<number, AdvanceTaskRow[]>();
  const live = new Map<number, PlannedOutcome['live']>();
  for (const { job_id, live_attempt, attempt_number, earlier_failures, ...t } of rows) {
    const jobId = Number(job_id);
    let forJob = tasks.get(jobId);
    if (!forJob) tasks.set(jobId, (forJob = []));
    forJob.push({ ...t, id: Number(t.id) });
    if (live_attempt !== null)
      live.set(Number(live_attempt), {
        attemptNumber: Number(attempt_number),
        earlierFailures: Number(earlier_failures ?? 0),
      });
  }
  const items = outcomes.map((outcome) => ({ outcome, live: live.get(outcome.ref.attemptId) ?? null }));
  const needsSettings = items.some((i) => i.outcome.kind === 'failure' && i.live !== null);
  const settings = needsSettings ? (await readSettings(tx)).known : null;
  // Clients' own retry_limit / retry_delay win over the global ones (per-client settings).
  const clientSettings = needsSettings ? await readClientSettings(tx, null) : undefined;
  const { effects, results } = planOutcomes({
    items,
    jobs,
    tasks,
    settings,
    clientSettings,
    now,
    storageRoot: ctx.config.storageRoot,
  });
  if (readyQueues && effects.ready.length > 0) {
    const made = new Set(effects.ready);
    for (const forJob of tasks.values()) for (const t of forJob) if (made.has(t.id)) readyQueues.add(t.queue);
  }
  const finished = await applyEffects(tx, effects, now);
  if (ctx.metrics) countFinishedJobs(ctx.metrics, effects.finishes, finished, (id) => jobs.get(id));
  // Tracing on: the job spans are marked and exported after this transaction (batched).
  if (ctx.tracing && finished.size > 0) ctx.tracing.jobsEnded(finished, now);
  return results;
}

/**
 * Records a successful attempt in its own transaction (see {@link writeOutcomes}): a live
 * attempt's task becomes `succeeded` with its output, "'<task>' completed successfully" is
 * logged, `complete` callbacks are enqueued, and the job advances.
 * @returns `recorded`, or `stale` when the attempt is no longer the task's running attempt.
 * @throws the driver's error (nothing is written then; the caller may retry).
 */
export async function recordSuccess(
  ctx: EngineContext,
  ref: AttemptRef,
  output: unknown,
): Promise<'recorded' | 'stale'> {
  const json = JSON.stringify(output === undefined ? null : output);
  const outcome: AttemptOutcome = { kind: 'success', ref, outputJson: json };
  return ctx.db.transaction(
    async (tx) => (await writeOutcomes(tx, ctx, [outcome]))[0] as 'recorded' | 'stale',
  );
}

/**
 * Records a failed (or stalled) attempt in `tx` (see {@link writeOutcomes}; the decision is
 * `decideFailure`'s): retried after its delay while retries remain and no sibling has failed the
 * job, else the task fails for good, its `fail` callbacks are enqueued and the job advances.
 * Cancelled attempts (worker shutdown) never count against `retry_limit`.
 * @returns `retry`, `failed`, or `stale` when the attempt is no longer the task's running attempt.
 */
export async function writeFailure(
  tx: Queryable,
  ctx: OutcomeContext,
  ref: AttemptRef,
  failure: AttemptFailure,
): Promise<FailureOutcome> {
  return (await writeOutcomes(tx, ctx, [{ kind: 'failure', ref, failure }]))[0] as FailureOutcome;
}

/**
 * Records a failed (or stalled) attempt in its own transaction (see {@link writeFailure}).
 * @throws the driver's error (nothing is written then).
 */
export async function recordFailure(
  ctx: EngineContext,
  ref: AttemptRef,
  failure: AttemptFailure,
): Promise<FailureOutcome> {
  return ctx.db.transaction((tx) => writeFailure(tx, ctx, ref, failure));
}

/**
 * Closes an attempt that this worker found superseded (its task moved on without it): state
 * `cancelled` if it is somehow still `running`. Touches nothing else.
 * @param now - when it ended (`ctx.clock.now()`).
 */
export async function closeLostAttempt(
  q: Queryable,
  attemptId: number,
  reason: string,
  now: Date,
): Promise<void> {
  await cancelRunningAttempt.run(q, { attemptId, reason, now });
}
