/**
 * Advancing a job when its tasks end (SPEC sections 5.3, 6 and 11): waiting tasks whose needs
 * have ended become ready (or skipped when their `if` renders falsy), and when every task has
 * ended the job finishes, gives its slot back and enqueues its job-end callbacks.
 *
 * The decisions are pure ({@link planAdvance}, {@link addAdvance}): they turn a job and its tasks
 * into {@link JobEffects}, which {@link applyEffects} writes in one statement
 * (`applyJobEffects`). The outcome of an attempt (workers/results.ts) adds its own changes to the
 * same effects and goes through the same statement.
 */
import { countFinishedJobs } from '../metrics/record.js';
import type { Queryable } from '../../store/executor.js';
import {
  applyJobEffects,
  lockJobForAdvance,
  readJobTasks,
  type JobTaskRow,
} from '../../store/queries/job-effects.js';
import { isTruthy, renderTemplate } from '../../workflows/templates.js';
import { callbackTargets, jobEndBody } from '../callbacks/bodies.js';
import type { EngineContext } from '../context.js';
import { fitLogMessage, SEVERITY } from '../jobs/job-log.js';
import {
  conditionErrorLine,
  jobFailureReason,
  jobFinishedLine,
  outputsErrorLine,
  taskSkippedLine,
  type SkipReason,
} from '../jobs/log-messages.js';
import { ENDED_TASK_STATES, taskEdge, type TaskEdge } from '../jobs/task-transitions.js';
import { jobEdge } from '../jobs/transitions.js';
import { CHANNELS } from '../signals.js';
import {
  buildTemplateScope,
  isCleanupTask,
  taskDefinition,
  type RuntimeJob,
  type TaskOutputs,
} from './job-scope.js';

/** A waiting task whose needs ended well (and whose `if` holds) becomes ready. */
const RELEASE = taskEdge('waiting', 'ready', 'release');
/** A task skipped: its `if` is false, or a sibling failed the job. */
const SKIP = taskEdge(['waiting', 'ready'], 'skipped', 'skip');
/** The job's last task ended. */
const FINISH = jobEdge('started', 'completed', 'finish');

/**
 * States whose jobs' tasks move on: started; paused (which never finishes); broken, whose cleanup
 * tasks (`when`) run after the break.
 */
export const ADVANCING_STATES: readonly string[] = ['started', 'paused', 'broken'];

/** What {@link advanceJob} did. */
export interface AdvanceResult {
  /** `missing`: no such job; `idle`: the job is not live (queued, completed, broken …), nothing done. */
  outcome: 'missing' | 'idle' | 'advanced' | 'finished';
  /** Tasks made ready. */
  ready: number;
  /** Tasks skipped (false `if`, or after a final failure). */
  skipped: number;
  /** When finished: whether the job failed. */
  failed?: boolean;
}

/**
 * A task as advancing reads it (`readJobTasks`, ordered by position). The plans change `state`
 * (and an outcome `output`/`error`) on these rows as they decide, so a caller's working copy
 * always shows the tasks as they will be.
 */
export type AdvanceTaskRow = Omit<JobTaskRow, 'job_id'>;

/** What {@link planAdvance} decided for one job. */
export interface AdvancePlan {
  /** Tasks `waiting → ready`. */
  toReady: AdvanceTaskRow[];
  /** Tasks `waiting`/`ready` → `skipped`, with why. */
  toSkip: { task: AdvanceTaskRow; reason: SkipReason }[];
  /** Conditions that could not be rendered (their task is skipped). */
  warnings: { taskId: number; message: string }[];
  /** The first task (by position) that failed the job: failed or cancelled without `continue_on_error`. */
  failedTask: AdvanceTaskRow | undefined;
}

/** Whether `state` is one a task does not leave. */
export function isEnded(state: string): boolean {
  return (ENDED_TASK_STATES as readonly string[]).includes(state);
}

/** Whether task `name` of `job` has `continue_on_error`. */
function continuesOnError(job: RuntimeJob, name: string): boolean {
  return taskDefinition(job, name)?.continue_on_error === true;
}

/**
 * Whether a task in state `state` fails its job: failed or cancelled without `continue_on_error`.
 * The one rule of what a failed task means to its job (advance and the retry decision share it).
 */
export function failsJob(job: RuntimeJob, task: { name: string; state: string }): boolean {
  return (
    (task.state === 'failed' || task.state === 'cancelled') &&
    !continuesOnError(job, task.name) &&
    !isCleanupTask(job, task.name)
  );
}

/**
 * Works out which waiting tasks of `job` become ready or skipped, and marks their new states on
 * `tasks` (the caller's working copy).
 * - A `waiting` task becomes `ready` when every task it `needs` has ended well: `succeeded`,
 *   `skipped`, or `failed` with `continue_on_error`. Its `if` (if any) is rendered over
 *   `{parameters, job, tasks, storage}`; falsy (or not renderable: a warning) → `skipped`, which
 *   may in turn release others.
 * - When a task failed the job ({@link failsJob}), every `waiting`/`ready` task is skipped; tasks
 *   still `running` are left to end on their own.
 * @param storageRoot - `config.storageRoot`, for the templates' `storage.root`.
 */
export function planAdvance(job: RuntimeJob, tasks: AdvanceTaskRow[], storageRoot: string): AdvancePlan {
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const endedWell = (t: AdvanceTaskRow | undefined): boolean =>
    t === undefined ||
    t.state === 'succeeded' ||
    t.state === 'skipped' ||
    (t.state === 'failed' && continuesOnError(job, t.name));
  const failedTask = tasks.find((t) => failsJob(job, t));
  const plan: AdvancePlan = { toReady: [], toSkip: [], warnings: [], failedTask };
  const cleanup = (t: AdvanceTaskRow): boolean => isCleanupTask(job, t.name);
  /** Renders `t`'s `if` (true when it has none); a condition that cannot be rendered is false. */
  const conditionHolds = (t: AdvanceTaskRow): { run: boolean; cond: string } => {
    const cond = taskDefinition(job, t.name)?.if;
    if (cond === undefined || cond === null || cond === '') return { run: true, cond: '' };
    try {
      return {
        run: isTruthy(renderTemplate(cond, buildTemplateScope(job, outputsOf(tasks), storageRoot))),
        cond: String(cond),
      };
    } catch (err) {
      plan.warnings.push({ taskId: t.id, message: conditionErrorLine(t.name, cond, errorText(err)) });
      return { run: false, cond: String(cond) };
    }
  };
  const release = (t: AdvanceTaskRow, reasonIfFalse: SkipReason | null): boolean => {
    const { run, cond } = reasonIfFalse ? { run: false, cond: '' } : conditionHolds(t);
    if (run) {
      t.state = 'ready';
      plan.toReady.push(t);
      return false;
    }
    t.state = 'skipped';
    plan.toSkip.push({ task: t, reason: reasonIfFalse ?? { kind: 'condition-false', condition: cond } });
    return true;
  };
  if (failedTask) {
    for (const t of tasks)
      if ((t.state === 'waiting' || t.state === 'ready') && !cleanup(t)) {
        plan.toSkip.push({ task: t, reason: { kind: 'sibling-failed', sibling: failedTask.name } });
        t.state = 'skipped';
      }
  } else if (job.queue_state !== 'broken') {
    // Repeat until nothing changes: a skipped task may release the tasks that need it.
    let changed = true;
    while (changed) {
      changed = false;
      for (const t of tasks) {
        if (t.state !== 'waiting' || cleanup(t)) continue;
        if (!t.needs.every((n) => endedWell(byName.get(n)))) continue;
        if (release(t, null)) changed = true;
      }
    }
  }
  // Cleanup tasks (`when`) wait for every other task to end, then for their own needs to end in
  // any state; `when: failed` is skipped when the job succeeded.
  if (!tasks.every((t) => cleanup(t) || isEnded(t.state))) return plan;
  const failed = failedTask !== undefined || job.queue_state === 'broken';
  let changed = true;
  while (changed) {
    changed = false;
    for (const t of tasks) {
      if (t.state !== 'waiting' || !cleanup(t)) continue;
      if (!t.needs.every((n) => isEnded(byName.get(n)?.state ?? 'succeeded'))) continue;
      const onlyOnFailure = taskDefinition(job, t.name)?.when === 'failed';
      if (release(t, onlyOnFailure && !failed ? { kind: 'not-failed' } : null)) changed = true;
    }
  }
  return plan;
}

/** A task event callback to enqueue with a job's other changes (see {@link JobEffects}). */
export interface TaskCallbackRow {
  jobId: number;
  taskId: number;
  event: 'start' | 'complete' | 'fail';
  target: string;
  /** The body as JSON text. */
  body: string;
}

/** The task edge an attempt's outcome takes, with what it writes besides the state. */
export interface TaskOutcomeRow {
  taskId: number;
  attemptId: number;
  edge: TaskEdge;
  /** The output as JSON text; null keeps the task's output. */
  output: string | null;
  /** The error to store; undefined keeps the task's error. */
  error?: string | null;
  /** `run_after = now + delaySeconds`; null keeps it. */
  delaySeconds: number | null;
  /** Sets `finished_at`. */
  finished: boolean;
}

/**
 * Changes of one or more locked jobs, gathered in memory and written by {@link applyEffects} in
 * a single statement (one round trip however many jobs and kinds of change there are).
 */
export interface JobEffects {
  /** Attempts closed (only while still `running`); `keepError`: an error already set stays. */
  attempts: { attemptId: number; state: string; error: string | null; keepError: boolean }[];
  /** Task edges of attempt outcomes (only while the task runs that attempt). */
  outcomes: TaskOutcomeRow[];
  /** Tasks `waiting → ready` (run_after now); the workers of their queues are woken. */
  ready: number[];
  /** Tasks `waiting`/`ready` → `skipped`. */
  skip: number[];
  /**
   * Log lines, written in this order. `ifFinished` (a job id): written only when that job's
   * finish below really took place; `ifSkipped` (a task id): only when that task's skip did.
   */
  logs: {
    jobId: number;
    taskId: number;
    severity: number;
    progname: 'worker' | 'controller';
    message: string;
    ifFinished?: number;
    ifSkipped?: number;
  }[];
  /** Jobs `started → completed`, with `failed`, the rendered outputs (JSON text) and the reason. */
  finishes: { jobId: number; failed: boolean; outputs: string; error: string | null }[];
  /** Task event callbacks, one row per (event, target). */
  taskCallbacks: TaskCallbackRow[];
  /** Job-end callbacks of finishing jobs, one row per target (enqueued once per job and target). */
  jobCallbacks: {
    jobId: number;
    status: 'completed' | 'failed';
    target: string;
    body: string;
    /** Enqueue it even though no finish of the job is listed (a broken job's cleanup ended). */
    always?: boolean;
  }[];
  /** Wake-ups sent whatever happens (a retried task's queue, admission for a paused job). */
  notices: { channel: string; payload: string }[];
  /** Wake admission even if no job finishes (a paused job's slot came free). */
  wakeAdmission: boolean;
}

/** An empty {@link JobEffects}. */
export function emptyEffects(): JobEffects {
  return {
    attempts: [],
    outcomes: [],
    ready: [],
    skip: [],
    logs: [],
    finishes: [],
    taskCallbacks: [],
    jobCallbacks: [],
    notices: [],
    wakeAdmission: false,
  };
}

function hasEffects(e: JobEffects): boolean {
  return (
    e.attempts.length > 0 ||
    e.outcomes.length > 0 ||
    e.ready.length > 0 ||
    e.skip.length > 0 ||
    e.logs.length > 0 ||
    e.finishes.length > 0 ||
    e.taskCallbacks.length > 0 ||
    e.notices.length > 0 ||
    e.wakeAdmission
  );
}

/**
 * Adds the advance of `job` to `effects` (pure): {@link planAdvance}'s ready tasks, skips and
 * warnings; for a paused job with nothing running any more, the admission wake-up (its slot is
 * free); for a started job whose tasks have all ended, its finish ({@link addFinish}). A task
 * released by an earlier advance in the same effects and skipped now is only skipped.
 * @param trigger - the task whose end caused this (the finish line's task id), or 0.
 * @returns the plan, and whether the job is to finish.
 */
export function addAdvance(
  effects: JobEffects,
  job: RuntimeJob,
  tasks: AdvanceTaskRow[],
  trigger: number,
  storageRoot: string,
  now: Date,
): { plan: AdvancePlan; finishing: boolean } {
  const plan = planAdvance(job, tasks, storageRoot);
  effects.ready.push(...plan.toReady.map((t) => t.id));
  for (const s of plan.toSkip) {
    const released = effects.ready.indexOf(s.task.id);
    if (released >= 0) effects.ready.splice(released, 1);
    effects.skip.push(s.task.id);
  }
  for (const w of plan.warnings)
    effects.logs.push({
      jobId: job.id,
      taskId: w.taskId,
      severity: SEVERITY.WARN,
      progname: 'controller',
      message: w.message,
    });
  for (const s of plan.toSkip)
    effects.logs.push({
      jobId: job.id,
      taskId: s.task.id,
      severity: SEVERITY.INFO,
      progname: 'controller',
      message: taskSkippedLine(s.task.name, s.reason),
      ifSkipped: s.task.id,
    });
  if (job.queue_state === 'broken') {
    // A broken job that had started runs its cleanup tasks after the break (see breakJob); its
    // job-end callback waits for them and is enqueued once they have all ended.
    if (tasks.some((t) => isCleanupTask(job, t.name)) && tasks.every((t) => isEnded(t.state))) {
      const body = JSON.stringify(jobEndBody(job, 'failed', now));
      for (const target of callbackTargets(job.resolved_parameters))
        effects.jobCallbacks.push({ jobId: job.id, status: 'failed', target, body, always: true });
    }
    return { plan, finishing: false };
  }
  if (job.queue_state === 'paused') {
    // A paused job holds its slot only while something of it runs: once nothing does, the
    // slot is free and admission must hear of it.
    if (!tasks.some((t) => t.state === 'running')) effects.wakeAdmission = true;
    return { plan, finishing: false };
  }
  if (!FINISH.from.includes(job.queue_state as 'started') || !tasks.every((t) => isEnded(t.state)))
    return { plan, finishing: false };
  addFinish(effects, job, tasks, plan.failedTask, trigger, storageRoot, now);
  return { plan, finishing: true };
}

/**
 * Adds the finish of a started job whose tasks have all ended to `effects`: state `completed`
 * (with `failed` when a task failed the job), rendered `outputs`, the "job has completed/failed"
 * log line and the job-end callbacks (all only if the finish takes place).
 */
function addFinish(
  effects: JobEffects,
  job: RuntimeJob,
  tasks: AdvanceTaskRow[],
  failedTask: AdvanceTaskRow | undefined,
  trigger: number,
  storageRoot: string,
  now: Date,
): void {
  const reason = failedTask ? jobFailureReason(failedTask.name, failedTask.error) : null;
  let outputs: Record<string, unknown> = {};
  if (job.definition?.outputs) {
    try {
      const rendered = renderTemplate(
        job.definition.outputs,
        buildTemplateScope(job, outputsOf(tasks), storageRoot),
      );
      if (rendered && typeof rendered === 'object' && !Array.isArray(rendered))
        outputs = rendered as Record<string, unknown>;
    } catch (err) {
      effects.logs.push({
        jobId: job.id,
        taskId: 0,
        severity: SEVERITY.WARN,
        progname: 'controller',
        message: outputsErrorLine(errorText(err)),
        ifFinished: job.id,
      });
    }
  }
  const failed = failedTask !== undefined;
  effects.finishes.push({ jobId: job.id, failed, outputs: JSON.stringify(outputs), error: reason });
  effects.logs.push({
    jobId: job.id,
    taskId: trigger,
    severity: failed ? SEVERITY.ERROR : SEVERITY.INFO,
    progname: 'controller',
    message: jobFinishedLine(reason),
    ifFinished: job.id,
  });
  const status = failed ? 'failed' : 'completed';
  const body = JSON.stringify(jobEndBody(job, status, now, outputs));
  for (const target of callbackTargets(job.resolved_parameters))
    effects.jobCallbacks.push({ jobId: job.id, status, target, body });
}

/**
 * Writes `effects` in one statement inside the caller's transaction (the jobs concerned must be
 * locked by it), at time `now`.
 * @returns the ids of the jobs that were finished (a listed finish of a job no longer `started`,
 *   or one of whose skips did not take place, does not happen, nor do its conditional log lines
 *   and job-end callbacks).
 * @throws the driver's error; the caller's transaction then rolls back.
 */
export async function applyEffects(tx: Queryable, effects: JobEffects, now: Date): Promise<Set<number>> {
  if (!hasEffects(effects)) return new Set();
  const e = effects;
  const logs = e.logs.map((l) => ({ ...l, message: fitLogMessage(l.message) }));
  // A job's lines up to its first conditional one are written early (see applyJobEffects).
  const late = new Set<number>();
  const early = logs.map((l) => {
    if (l.ifFinished !== undefined || l.ifSkipped !== undefined) late.add(l.jobId);
    return !late.has(l.jobId);
  });
  const rows = await applyJobEffects.rows(tx, {
    now,
    attemptIds: e.attempts.map((a) => a.attemptId),
    attemptStates: e.attempts.map((a) => a.state),
    attemptErrors: e.attempts.map((a) => a.error),
    attemptKeepErrors: e.attempts.map((a) => a.keepError),
    outcomeTaskIds: e.outcomes.map((o) => o.taskId),
    outcomeAttemptIds: e.outcomes.map((o) => o.attemptId),
    outcomeFrom: e.outcomes.map((o) => o.edge.from[0]!),
    outcomeTo: e.outcomes.map((o) => o.edge.to),
    outcomeOutputs: e.outcomes.map((o) => o.output),
    outcomeSetErrors: e.outcomes.map((o) => o.error !== undefined),
    outcomeErrors: e.outcomes.map((o) => o.error ?? null),
    outcomeDelays: e.outcomes.map((o) => o.delaySeconds),
    outcomeFinished: e.outcomes.map((o) => o.finished),
    taskCallbackJobIds: e.taskCallbacks.map((c) => c.jobId),
    taskCallbackTaskIds: e.taskCallbacks.map((c) => c.taskId),
    taskCallbackEvents: e.taskCallbacks.map((c) => c.event),
    taskCallbackTargets: e.taskCallbacks.map((c) => c.target),
    taskCallbackBodies: e.taskCallbacks.map((c) => c.body),
    ready: e.ready,
    readyFrom: [...RELEASE.from],
    tasksChannel: CHANNELS.tasks,
    skip: e.skip,
    skipFrom: [...SKIP.from],
    finishJobIds: e.finishes.map((f) => f.jobId),
    finishFailed: e.finishes.map((f) => f.failed),
    finishOutputs: e.finishes.map((f) => f.outputs),
    finishErrors: e.finishes.map((f) => f.error),
    finishFrom: [...FINISH.from],
    finishTo: FINISH.to,
    logJobIds: logs.map((l) => l.jobId),
    logTaskIds: logs.map((l) => l.taskId),
    logSeverities: logs.map((l) => l.severity),
    logPrognames: logs.map((l) => l.progname),
    logMessages: logs.map((l) => l.message),
    logIfFinished: logs.map((l) => l.ifFinished ?? null),
    logIfSkipped: logs.map((l) => l.ifSkipped ?? null),
    logEarly: early,
    jobCallbackJobIds: e.jobCallbacks.map((c) => c.jobId),
    jobCallbackStatuses: e.jobCallbacks.map((c) => c.status),
    jobCallbackTargets: e.jobCallbacks.map((c) => c.target),
    jobCallbackBodies: e.jobCallbacks.map((c) => c.body),
    jobCallbackAlways: e.jobCallbacks.map((c) => c.always === true),
    noticeChannels: e.notices.map((n) => n.channel),
    noticePayloads: e.notices.map((n) => n.payload),
    callbacksChannel: CHANNELS.callbacks,
    jobEndedChannel: CHANNELS.jobEnded,
    admissionChannel: CHANNELS.admission,
    wakeAdmission: e.wakeAdmission,
  });
  return new Set(rows.flatMap((r) => (r.id === null ? [] : [Number(r.id)])));
}

/**
 * Advances job `jobId` inside the caller's transaction `tx`.
 *
 * Locks the job row first (`SELECT … FOR UPDATE`), so every change of one job's tasks and state
 * (worker results, break, pause, stalled-attempt recovery, admission) is serialised per job.
 * Works on `started` jobs, and on `paused` jobs as far as making tasks ready or skipped (a paused
 * job never finishes; it finishes once resumed and admitted again; when nothing of it runs any
 * more, admission is woken since its slot is free). The rules are {@link planAdvance}'s; when
 * every task has ended, the job goes `started → completed` with `failed` set when a task failed
 * it, the workflow's `outputs` are rendered and stored in `jobs.outputs`, job-end callbacks are
 * enqueued once, and `CHANNELS.admission` and `CHANNELS.jobEnded` are notified (on commit).
 *
 * @param triggerTaskId - the task whose end caused this call (used as the log entries' task id).
 * @param lockedJob - the job row when the caller has already locked it in `tx` (saves a round trip).
 * @throws the driver's error; the caller's transaction then rolls back and nothing is half-done.
 */
export async function advanceJob(
  tx: Queryable,
  ctx: EngineContext,
  jobId: number,
  triggerTaskId = 0,
  lockedJob?: RuntimeJob,
): Promise<AdvanceResult> {
  const job = lockedJob ?? (await lockJobForAdvance.first(tx, { jobId }));
  if (!job) return { outcome: 'missing', ready: 0, skipped: 0 };
  return (await advanceLockedJobs(tx, ctx, [job], { trigger: triggerTaskId }))[0]!;
}

/** Options of {@link advanceLockedJobs}. */
export interface AdvanceOptions {
  /** The task whose end caused the call (log entries' task id): one for all jobs, or per job id. */
  trigger?: number | Map<number, number>;
}

/**
 * Advances several jobs the caller has already locked in `tx` (admission starts many at once),
 * with one read of their tasks and one statement for every change of all of them
 * ({@link applyEffects}).
 * @returns one result per job, in the order given.
 */
export async function advanceLockedJobs(
  tx: Queryable,
  ctx: EngineContext,
  jobs: RuntimeJob[],
  options: AdvanceOptions = {},
): Promise<AdvanceResult[]> {
  const now = ctx.clock.now();
  const effects = emptyEffects();
  const triggerOf = (jobId: number): number =>
    typeof options.trigger === 'number' ? options.trigger : (options.trigger?.get(jobId) ?? 0);
  const live = jobs.filter((j) => ADVANCING_STATES.includes(j.queue_state));
  const tasksByJob = new Map<number, AdvanceTaskRow[]>(live.map((j) => [j.id, []]));
  if (live.length > 0)
    for (const { job_id, ...t } of await readJobTasks.rows(tx, { jobIds: live.map((j) => j.id) }))
      tasksByJob.get(Number(job_id))?.push(t);
  const results = new Map<number, AdvanceResult>();
  const finishing: { jobId: number; failed: boolean }[] = [];
  for (const j of live) {
    const tasks = tasksByJob.get(j.id)!;
    const { plan, finishing: f } = addAdvance(
      effects,
      j,
      tasks,
      triggerOf(j.id),
      ctx.config.storageRoot,
      now,
    );
    results.set(j.id, { outcome: 'advanced', ready: plan.toReady.length, skipped: plan.toSkip.length });
    if (f) finishing.push({ jobId: j.id, failed: plan.failedTask !== undefined });
  }
  const finished = await applyEffects(tx, effects, now);
  // Tracing on: the job spans are marked and exported after this transaction (batched).
  if (ctx.tracing && finished.size > 0) ctx.tracing.jobsEnded(finished, now);
  if (ctx.metrics) {
    const byId = new Map(jobs.map((j) => [j.id, j]));
    countFinishedJobs(ctx.metrics, finishing, finished, (id) => byId.get(id));
  }
  for (const f of finishing)
    if (finished.has(f.jobId))
      results.set(f.jobId, { ...results.get(f.jobId)!, outcome: 'finished', failed: f.failed });
  return jobs.map((j) => results.get(j.id) ?? { outcome: 'idle', ready: 0, skipped: 0 });
}

function outputsOf(tasks: AdvanceTaskRow[]): TaskOutputs {
  const out: TaskOutputs = {};
  for (const t of tasks) if (isEnded(t.state)) out[t.name] = { output: t.output ?? null, state: t.state };
  return out;
}

/** A one-line description of a thrown value. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
