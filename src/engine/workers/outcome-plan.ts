/**
 * The end of task attempts, planned (SPEC section 6): a pure function from the batch's results
 * and its jobs' tasks (read after the jobs were locked) to the {@link JobEffects} that one
 * statement then writes. Success, failure (retry or final), stall and hand-back all go through
 * {@link planOutcomes}; what a failed task means is decided by `decideFailure` and `failsJob`.
 */
import { callbackTargets, taskEventBody } from '../callbacks/bodies.js';
import {
  ADVANCING_STATES,
  addAdvance,
  failsJob,
  type AdvanceTaskRow,
  type JobEffects,
  emptyEffects,
} from '../controller/advance.js';
import { isCleanupTask, taskDefinition, type RuntimeJob } from '../controller/job-scope.js';
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
  /** Clients' own `retry_limit` / `retry_delay` (per-client settings), by client; they win over `settings`. */
  clientSettings?: ReadonlyMap<string, { retry_limit?: number; retry_delay?: number }>;
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
  const p: Planning = {
    batch,
    effects: emptyEffects(),
    results: new Array<OutcomeResult>(batch.items.length).fill('stale'),
    closed: new Set(),
  };
  planSuccesses(p);
  // Failures and hand-backs, one by one in batch order.
  batch.items.forEach((item, i) => {
    const { outcome, live } = item;
    if (outcome.kind === 'success') return;
    const { ref } = outcome;
    const job = batch.jobs.get(ref.jobId);
    const task = taskOf(batch, ref);
    if (live === null || !job || task?.state !== 'running' || p.closed.has(ref.attemptId)) {
      const closeAs =
        outcome.kind === 'failure' && outcome.failure.attemptState === 'stalled' ? 'stalled' : 'cancelled';
      closeAttempt(
        p,
        ref.attemptId,
        closeAs,
        outcome.kind === 'failure' ? outcome.failure.error : outcome.reason,
        true,
      );
    } else if (outcome.kind === 'hand_back') p.results[i] = planHandBack(p, outcome, job, task);
    else p.results[i] = planFailure(p, outcome, live, job, task);
  });
  return { effects: p.effects, results: p.results };
}

/** The state of one {@link planOutcomes} call. */
interface Planning {
  batch: OutcomeBatch;
  effects: JobEffects;
  results: OutcomeResult[];
  /** Attempts already closed by the plan (each is closed once). */
  closed: Set<number>;
}

function closeAttempt(
  p: Planning,
  attemptId: number,
  state: string,
  error: string | null,
  keepError: boolean,
): void {
  if (p.closed.has(attemptId)) return;
  p.closed.add(attemptId);
  p.effects.attempts.push({ attemptId, state, error, keepError });
}

function taskOf(batch: OutcomeBatch, ref: AttemptRef): AdvanceTaskRow | undefined {
  return batch.tasks.get(ref.jobId)?.find((t) => t.id === ref.taskId);
}

/** Whether a job's tasks move on when one ends: started, paused (never finishes), broken (cleanup). */
function advances(job: RuntimeJob): boolean {
  return ADVANCING_STATES.includes(job.queue_state);
}

/**
 * The batch's successes: their log lines by job and task id, their callbacks by job and task
 * position (the order one statement wrote them in before), then one advance of each job.
 */
function planSuccesses(p: Planning): void {
  const { batch, effects } = p;
  const late: number[] = [];
  const succeeded = new Map<number, { outcome: SuccessOutcome; attemptNumber: number }>();
  batch.items.forEach(({ outcome, live }, i) => {
    if (outcome.kind !== 'success') return;
    if (live && !succeeded.has(outcome.ref.taskId) && taskOf(batch, outcome.ref)) {
      succeeded.set(outcome.ref.taskId, { outcome, attemptNumber: live.attemptNumber });
      p.results[i] = 'recorded';
    } else late.push(outcome.ref.attemptId);
  });
  const trigger = new Map<number, number>();
  const logs: JobEffects['logs'] = [];
  for (const jobId of [...batch.tasks.keys()].sort((a, b) => a - b)) {
    const job = batch.jobs.get(jobId);
    for (const t of batch.tasks.get(jobId)!) {
      const s = succeeded.get(t.id);
      if (!s) continue;
      const { ref, outputJson } = s.outcome;
      closeAttempt(p, ref.attemptId, 'succeeded', null, true);
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
      logs.push({ jobId, taskId: t.id, severity: SEVERITY.INFO, progname: 'worker', message });
      if (job) addTaskCallbacks(effects, job, t, 'complete', message, s.attemptNumber, batch.now);
    }
  }
  for (const attemptId of late) closeAttempt(p, attemptId, 'cancelled', SUPERSEDED_RESULT, true);
  logs.sort((a, b) => a.jobId - b.jobId || a.taskId - b.taskId);
  effects.logs.push(...logs);
  for (const [jobId, taskId] of trigger) {
    const job = batch.jobs.get(jobId);
    if (job && advances(job))
      addAdvance(effects, job, batch.tasks.get(jobId)!, taskId, batch.storageRoot, batch.now);
  }
}

type SuccessOutcome = Extract<AttemptOutcome, { kind: 'success' }>;

function addTaskCallbacks(
  effects: JobEffects,
  job: RuntimeJob,
  task: AdvanceTaskRow,
  event: 'complete' | 'fail',
  message: string,
  attempt: number,
  now: Date,
): void {
  const body = JSON.stringify(taskEventBody(job, task, event, message, attempt, now));
  for (const target of callbackTargets(job.resolved_parameters))
    effects.taskCallbacks.push({ jobId: job.id, taskId: task.id, event, target, body });
}

/** A live attempt given back at shutdown: the task is ready again at once, the job does not advance. */
function planHandBack(
  p: Planning,
  outcome: Extract<AttemptOutcome, { kind: 'hand_back' }>,
  job: RuntimeJob,
  task: AdvanceTaskRow,
): OutcomeResult {
  const { effects } = p;
  closeAttempt(p, outcome.ref.attemptId, 'cancelled', outcome.reason, false);
  effects.outcomes.push({
    taskId: task.id,
    attemptId: outcome.ref.attemptId,
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
  return 'handed-back';
}

/**
 * A live attempt that failed or stalled: {@link decideFailure} says retry (the task is ready
 * again after the delay) or fail for good (`fail` callbacks, then the job's advance).
 */
function planFailure(
  p: Planning,
  outcome: Extract<AttemptOutcome, { kind: 'failure' }>,
  live: NonNullable<PlannedOutcome['live']>,
  job: RuntimeJob,
  task: AdvanceTaskRow,
): OutcomeResult {
  const { batch, effects } = p;
  const { ref, failure } = outcome;
  const def = taskDefinition(job, task.name);
  const own = batch.clientSettings?.get(job.client);
  const siblings = batch.tasks.get(job.id)!;
  const decision = decideFailure({
    task: task.name,
    failure,
    failedAttempts: live.earlierFailures + 1,
    retryLimit: def?.retry_limit ?? own?.retry_limit ?? batch.settings!.retry_limit,
    retryDelay: def?.retry_delay ?? own?.retry_delay ?? batch.settings!.retry_delay,
    continues: def?.continue_on_error === true,
    // A cleanup task runs because the job failed: that does not stop its own retries.
    failedBy: isCleanupTask(job, task.name)
      ? undefined
      : siblings.find((t) => t.id !== task.id && failsJob(job, t))?.name,
  });
  closeAttempt(p, ref.attemptId, failure.attemptState ?? 'failed', failure.error, false);
  effects.logs.push({
    jobId: job.id,
    taskId: task.id,
    severity: decision.severity,
    progname: 'worker',
    message: decision.message,
  });
  task.error = failure.error;
  effects.outcomes.push({
    taskId: task.id,
    attemptId: ref.attemptId,
    edge: decision.retry ? RETRY : FAIL,
    output: null,
    error: failure.error,
    delaySeconds: decision.retry ? decision.delaySeconds : null,
    finished: !decision.retry,
  });
  if (decision.retry) {
    task.state = 'ready';
    // `<queue> retry` tells workers to re-read the earliest due time.
    effects.notices.push({ channel: CHANNELS.tasks, payload: `${task.queue} retry` });
    if (job.queue_state === 'paused')
      effects.notices.push({ channel: CHANNELS.admission, payload: 'paused job task ended' });
    return 'retry';
  }
  task.state = 'failed';
  addTaskCallbacks(effects, job, task, 'fail', decision.message, live.attemptNumber, batch.now);
  if (advances(job)) addAdvance(effects, job, siblings, task.id, batch.storageRoot, batch.now);
  return 'failed';
}
