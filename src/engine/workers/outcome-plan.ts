/**
 * The end of task attempts, planned (SPEC section 6): a pure function from the batch's results
 * and its jobs' tasks (read after the jobs were locked) to the {@link JobEffects} that one
 * statement then writes. Success, failure (retry or final), stall and hand-back all go through
 * {@link planOutcomes}; what a failed task means is decided by `decideFailure` and `failsJob`.
 */
import { callbackTargets, taskEventBody } from '../callbacks/bodies.js';
import {
  addAdvance,
  failsJob,
  type AdvanceTaskRow,
  type JobEffects,
  emptyEffects,
} from '../controller/advance.js';
import { taskDefinition, type RuntimeJob } from '../controller/job-scope.js';
import { SEVERITY } from '../jobs/job-log.js';
import { taskCompletedLine, taskHandedBackLine } from '../jobs/log-messages.js';
import { taskEdge } from '../jobs/task-transitions.js';
import { CHANNELS } from '../signals.js';
import { decideFailure, type AttemptFailure } from './retry-decision.js';

const SUCCEED = taskEdge('running', 'succeeded', 'succeed');
const RETRY = taskEdge('running', 'ready', 'retry');
const FAIL = taskEdge('running', 'failed', 'fail');
const HAND_BACK = taskEdge('running', 'ready', 'hand_back');

/** Which attempt a result belongs to. */
export interface AttemptRef {
  attemptId: number;
  taskId: number;
  jobId: number;
}

/** How an attempt ended, as its worker (or stall recovery) reports it. */
export type AttemptOutcome =
  | { kind: 'success'; ref: AttemptRef; /** The output as JSON text. */ outputJson: string }
  | { kind: 'failure'; ref: AttemptRef; failure: AttemptFailure }
  | { kind: 'hand_back'; ref: AttemptRef; reason: string };

/** What recording an outcome did; `stale` when the attempt was no longer its task's live attempt. */
export type OutcomeResult = 'recorded' | 'retry' | 'failed' | 'handed-back' | 'stale';

/** One outcome of the batch with what the read found: null when the attempt is not live. */
export interface PlannedOutcome {
  outcome: AttemptOutcome;
  live: { attemptNumber: number; earlierFailures: number } | null;
}

/** Inputs of {@link planOutcomes}. */
export interface OutcomeBatch {
  /** The batch, in the order it was queued. */
  items: PlannedOutcome[];
  /** The locked jobs, by id. */
  jobs: Map<number, RuntimeJob>;
  /** Their tasks by job (position order), as read after locking: a working copy, changed in place. */
  tasks: Map<number, AdvanceTaskRow[]>;
  /** The `retry_limit` and `retry_delay` settings (needed only when a live failure is in the batch). */
  settings: { retry_limit: number; retry_delay: number } | null;
  now: Date;
  storageRoot: string;
}

/** Reasons written on attempts closed without being their task's live attempt. */
export const SUPERSEDED_RESULT = 'result arrived after the attempt was superseded';

/**
 * Plans a batch of attempt outcomes, in the order the engine has always applied them: first every
 * success (each task `running → succeeded` with its output, "'<task>' completed successfully",
 * `complete` callbacks), then one advance of each job with a success; then every other outcome in
 * batch order — a failure's retry (`running → ready` after the delay, `<queue> retry` wake-up) or
 * final failure (`running → failed`, `fail` callbacks, then the job's advance), a hand-back
 * (`running → ready` at once, without using a retry). A stale outcome only closes its attempt if
 * that is still `running` (`cancelled`, or `stalled` for a stall), keeping an error already set.
 * @returns the effects to apply and each item's result, in batch order.
 */
export function planOutcomes(batch: OutcomeBatch): { effects: JobEffects; results: OutcomeResult[] } {
  const { items, jobs, tasks, now, storageRoot } = batch;
  const effects = emptyEffects();
  const results: OutcomeResult[] = new Array<OutcomeResult>(items.length).fill('stale');
  const closed = new Set<number>();
  const closeAttempt = (attemptId: number, state: string, error: string | null, keepError: boolean): void => {
    if (closed.has(attemptId)) return;
    closed.add(attemptId);
    effects.attempts.push({ attemptId, state, error, keepError });
  };
  const taskOf = (ref: AttemptRef): AdvanceTaskRow | undefined =>
    tasks.get(ref.jobId)?.find((t) => t.id === ref.taskId);
  const advances = (job: RuntimeJob): boolean =>
    job.queue_state === 'started' || job.queue_state === 'paused';

  // Successes, with their log lines by job and task id and their callbacks by job and position.
  const lateSuccesses: number[] = [];
  const succeeded = new Map<number, { item: PlannedOutcome & { outcome: { kind: 'success' } }; i: number }>();
  items.forEach((item, i) => {
    const { outcome } = item;
    if (outcome.kind !== 'success') return;
    if (item.live && !succeeded.has(outcome.ref.taskId) && taskOf(outcome.ref)) {
      succeeded.set(outcome.ref.taskId, { item: item as typeof item & { outcome: typeof outcome }, i });
      results[i] = 'recorded';
    } else lateSuccesses.push(outcome.ref.attemptId);
  });
  const trigger = new Map<number, number>();
  const successLogs: JobEffects['logs'] = [];
  for (const jobId of [...tasks.keys()].sort((a, b) => a - b)) {
    const job = jobs.get(jobId);
    for (const t of tasks.get(jobId)!) {
      const s = succeeded.get(t.id);
      if (!s) continue;
      const { ref, outputJson } = s.item.outcome;
      closeAttempt(ref.attemptId, 'succeeded', null, true);
      effects.outcomes.push({
        taskId: t.id,
        attemptId: ref.attemptId,
        edge: SUCCEED,
        output: outputJson,
        error: null,
        delaySeconds: null,
        finished: true,
      });
      t.state = 'succeeded';
      t.output = JSON.parse(outputJson) as unknown;
      t.error = null;
      trigger.set(jobId, t.id);
      const message = taskCompletedLine(t.name);
      successLogs.push({ jobId, taskId: t.id, severity: SEVERITY.INFO, progname: 'worker', message });
      if (!job) continue;
      const body = JSON.stringify(
        taskEventBody(job, t, 'complete', message, s.item.live!.attemptNumber, now),
      );
      for (const target of callbackTargets(job.resolved_parameters))
        effects.taskCallbacks.push({ jobId, taskId: t.id, event: 'complete', target, body });
    }
  }
  for (const attemptId of lateSuccesses) closeAttempt(attemptId, 'cancelled', SUPERSEDED_RESULT, true);
  successLogs.sort((a, b) => a.jobId - b.jobId || a.taskId - b.taskId);
  effects.logs.push(...successLogs);
  for (const [jobId, taskId] of trigger) {
    const job = jobs.get(jobId);
    if (job && advances(job)) addAdvance(effects, job, tasks.get(jobId)!, taskId, storageRoot, now);
  }

  // Failures and hand-backs, one by one in batch order.
  items.forEach((item, i) => {
    const { outcome, live } = item;
    if (outcome.kind === 'success') return;
    const { ref } = outcome;
    const job = jobs.get(ref.jobId);
    const task = taskOf(ref);
    const isLive =
      live !== null &&
      job !== undefined &&
      task !== undefined &&
      task.state === 'running' &&
      !closed.has(ref.attemptId);
    if (outcome.kind === 'hand_back') {
      if (!isLive) return closeAttempt(ref.attemptId, 'cancelled', outcome.reason, true);
      closeAttempt(ref.attemptId, 'cancelled', outcome.reason, false);
      effects.outcomes.push({
        taskId: task.id,
        attemptId: ref.attemptId,
        edge: HAND_BACK,
        output: null,
        delaySeconds: 0,
        finished: false,
      });
      task.state = 'ready';
      effects.logs.push({
        jobId: job.id,
        taskId: task.id,
        severity: SEVERITY.WARN,
        progname: 'worker',
        message: taskHandedBackLine(task.name, outcome.reason),
      });
      effects.notices.push({ channel: CHANNELS.tasks, payload: task.queue });
      if (job.queue_state === 'paused')
        effects.notices.push({ channel: CHANNELS.admission, payload: 'paused job task handed back' });
      results[i] = 'handed-back';
      return;
    }
    const { failure } = outcome;
    const attemptState = failure.attemptState ?? 'failed';
    if (!isLive)
      return closeAttempt(
        ref.attemptId,
        attemptState === 'stalled' ? 'stalled' : 'cancelled',
        failure.error,
        true,
      );
    const def = taskDefinition(job, task.name);
    const siblings = tasks.get(job.id)!;
    const decision = decideFailure({
      task: task.name,
      failure,
      failedAttempts: live.earlierFailures + 1,
      retryLimit: def?.retry_limit ?? batch.settings!.retry_limit,
      retryDelay: def?.retry_delay ?? batch.settings!.retry_delay,
      continues: def?.continue_on_error === true,
      failedBy: siblings.find((t) => t.id !== task.id && failsJob(job, t))?.name,
    });
    closeAttempt(ref.attemptId, attemptState, failure.error, false);
    effects.logs.push({
      jobId: job.id,
      taskId: task.id,
      severity: decision.severity,
      progname: 'worker',
      message: decision.message,
    });
    task.error = failure.error;
    if (decision.retry) {
      effects.outcomes.push({
        taskId: task.id,
        attemptId: ref.attemptId,
        edge: RETRY,
        output: null,
        error: failure.error,
        delaySeconds: decision.delaySeconds,
        finished: false,
      });
      task.state = 'ready';
      // `<queue> retry` tells workers to re-read the earliest due time.
      effects.notices.push({ channel: CHANNELS.tasks, payload: `${task.queue} retry` });
      if (job.queue_state === 'paused')
        effects.notices.push({ channel: CHANNELS.admission, payload: 'paused job task ended' });
      results[i] = 'retry';
      return;
    }
    effects.outcomes.push({
      taskId: task.id,
      attemptId: ref.attemptId,
      edge: FAIL,
      output: null,
      error: failure.error,
      delaySeconds: null,
      finished: true,
    });
    task.state = 'failed';
    const body = JSON.stringify(taskEventBody(job, task, 'fail', decision.message, live.attemptNumber, now));
    for (const target of callbackTargets(job.resolved_parameters))
      effects.taskCallbacks.push({ jobId: job.id, taskId: task.id, event: 'fail', target, body });
    if (advances(job)) addAdvance(effects, job, siblings, task.id, storageRoot, now);
    results[i] = 'failed';
  });
  return { effects, results };
}
