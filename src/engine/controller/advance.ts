/**
 * Advancing a job when its tasks end (SPEC sections 5.3, 6 and 11): waiting tasks whose needs
 * have ended become ready (or skipped when their `if` renders falsy), and when every task has
 * ended the job finishes, gives its slot back and enqueues its job-end callbacks.
 */
import type { Queryable } from '../../store/executor.js';
import { isTruthy, renderTemplate } from '../../workflows/templates.js';
import { callbackTargets, type JobEndBody } from '../callbacks/enqueue.js';
import type { EngineContext } from '../context.js';
import { fitLogMessage, SEVERITY } from '../jobs/job-log.js';
import { CHANNELS } from '../signals.js';
import {
  buildTemplateScope,
  RUNTIME_JOB_COLUMNS,
  taskDefinition,
  type RuntimeJob,
  type TaskOutputs,
} from './job-scope.js';

/** Task states in which a task has ended for good. */
export const ENDED_TASK_STATES = ['succeeded', 'failed', 'skipped', 'cancelled'] as const;

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
 * A task row as {@link advanceJob} reads it (`SELECT id, name, queue, state, needs, output, error
 * FROM tasks`, ordered by position), for callers that read them already in the same transaction
 * after locking the job.
 */
export type AdvanceTaskRow = TaskRow;

interface TaskRow {
  id: number;
  name: string;
  queue: string;
  state: string;
  needs: string[];
  output: unknown;
  error: string | null;
}

/** A planned change of one job, computed from its tasks in memory. */
interface Plan {
  job: RuntimeJob;
  tasks: TaskRow[];
  toReady: TaskRow[];
  toSkip: { task: TaskRow; reason: string }[];
  warnings: { taskId: number; message: string }[];
  failedTask: TaskRow | undefined;
}

/** Works out which waiting tasks become ready or skipped (see {@link advanceJob} for the rules). */
function planAdvance(ctx: EngineContext, job: RuntimeJob, tasks: TaskRow[]): Plan {
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const continues = (t: TaskRow): boolean => taskDefinition(job, t.name)?.continue_on_error === true;
  const failsJob = (t: TaskRow): boolean =>
    (t.state === 'failed' || t.state === 'cancelled') && !continues(t);
  const endedWell = (t: TaskRow | undefined): boolean =>
    t === undefined ||
    t.state === 'succeeded' ||
    t.state === 'skipped' ||
    (t.state === 'failed' && continues(t));
  const plan: Plan = { job, tasks, toReady: [], toSkip: [], warnings: [], failedTask: tasks.find(failsJob) };
  const failedTask = plan.failedTask;
  if (failedTask) {
    for (const t of tasks)
      if (t.state === 'waiting' || t.state === 'ready') {
        plan.toSkip.push({ task: t, reason: `skipped: task '${failedTask.name}' failed` });
        t.state = 'skipped';
      }
    return plan;
  }
  // Repeat until nothing changes: a skipped task may release the tasks that need it.
  let changed = true;
  while (changed) {
    changed = false;
    for (const t of tasks) {
      if (t.state !== 'waiting') continue;
      if (!t.needs.every((n) => endedWell(byName.get(n)))) continue;
      const cond = taskDefinition(job, t.name)?.if;
      let run = true;
      if (cond !== undefined && cond !== null && cond !== '') {
        try {
          run = isTruthy(
            renderTemplate(cond, buildTemplateScope(job, outputsOf(tasks), ctx.config.storageRoot)),
          );
        } catch (err) {
          // A condition that cannot be rendered is treated as false and said so in the log.
          run = false;
          plan.warnings.push({
            taskId: t.id,
            message: `Task '${t.name}': condition ${JSON.stringify(cond)} could not be evaluated (${errorText(err)}); skipping it`,
          });
        }
      }
      if (run) {
        t.state = 'ready';
        plan.toReady.push(t);
      } else {
        t.state = 'skipped';
        plan.toSkip.push({ task: t, reason: `skipped: condition ${JSON.stringify(cond)} is false` });
        changed = true;
      }
    }
  }
  return plan;
}

/**
 * Advances job `jobId` inside the caller's transaction `tx`.
 *
 * Locks the job row first (`SELECT … FOR UPDATE`), so every change of one job's tasks and state
 * (worker results, break, pause, stalled-attempt recovery, admission) is serialised per job.
 * Works on `started` jobs, and on `paused` jobs as far as making tasks ready or skipped (a paused
 * job never finishes; it finishes once resumed and admitted again; when nothing of it runs any
 * more, admission is woken since its slot is free).
 *
 * Rules:
 * - A `waiting` task becomes `ready` when every task it `needs` has ended well: `succeeded`,
 *   `skipped`, or `failed` with `continue_on_error`. Its `if` (if any) is rendered over
 *   `{parameters, job, tasks, storage}`; falsy → `skipped`, which may in turn release others.
 * - When a task failed for good without `continue_on_error`, every `waiting`/`ready` task is
 *   skipped; tasks still `running` are left to end on their own (their results are recorded, and
 *   the job finishes once they have), so no half-done side effect is cut off mid-way.
 * - When every task has ended, the job goes `started → completed` with `failed` set when any task
 *   failed without `continue_on_error`; the workflow's `outputs` are rendered and stored in
 *   `jobs.outputs`; job-end callbacks are enqueued once; `CHANNELS.admission` and
 *   `CHANNELS.jobEnded` are notified (delivered on commit).
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
  const job =
    lockedJob ??
    (
      await tx.query<RuntimeJob>(`SELECT ${RUNTIME_JOB_COLUMNS} FROM jobs j WHERE j.id = $1 FOR UPDATE`, [
        jobId,
      ])
    ).rows[0];
  if (!job) return { outcome: 'missing', ready: 0, skipped: 0 };
  return (await advanceLockedJobs(tx, ctx, [job], { trigger: triggerTaskId }))[0]!;
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

/**
 * Changes of one or more locked jobs, gathered in memory and written by {@link applyEffects} in
 * a single statement (one round trip however many jobs and kinds of change there are).
 */
export interface JobEffects {
  /** Tasks `waiting → ready` (run_after now); the workers of their queues are woken. */
  ready: number[];
  /** Tasks `waiting`/`ready` → `skipped`. */
  skip: number[];
  /**
   * Log lines, written in this order. `ifFinished` (a job id): written only when that job's
   * finish below really took place.
   */
  logs: {
    jobId: number;
    taskId: number;
    severity: number;
    progname: 'worker' | 'controller';
    message: string;
    ifFinished?: number;
    /** A task id: written only when that task's skip below really took place. */
    ifSkipped?: number;
  }[];
  /** Jobs `started → completed`, with `failed`, the rendered outputs (JSON text) and the reason. */
  finishes: { jobId: number; failed: boolean; outputs: string; error: string | null }[];
  /** Task event callbacks, one row per (event, target). */
  taskCallbacks: TaskCallbackRow[];
  /**
   * Job-end callbacks of finishing jobs, one row per target; `body` without `time`, which is
   * set from the job's `finished_at`. Enqueued once per job and target (unique index).
   */
  jobCallbacks: { jobId: number; status: 'completed' | 'failed'; target: string; body: string }[];
  /** Wake admission even if no job finishes (a paused job's slot came free). */
  wakeAdmission: boolean;
}

/** An empty {@link JobEffects}. */
export function emptyEffects(): JobEffects {
  return {
    ready: [],
    skip: [],
    logs: [],
    finishes: [],
    taskCallbacks: [],
    jobCallbacks: [],
    wakeAdmission: false,
  };
}

function hasEffects(e: JobEffects): boolean {
  return (
    e.ready.length > 0 ||
    e.skip.length > 0 ||
    e.logs.length > 0 ||
    e.finishes.length > 0 ||
    e.taskCallbacks.length > 0 ||
    e.wakeAdmission
  );
}

/**
 * The one statement of {@link applyEffects}. Every part is driven by arrays, so parts with empty
 * arrays do nothing and the text never changes (prepared once per connection). Finishing is
 * guarded by `queue_state = 'started'` and by every listed skip of that job having taken place: a
 * claim does not lock the job, so a `ready` task read before it was claimed may be `running` by
 * the time it is to be skipped; it is then left to run, and the job finishes when it ends. The
 * finish's log lines, job-end callbacks and wake-ups depend on the finish having happened, and a
 * skip's log line on the skip. `pg_notify` parts are referenced by the final SELECT so
 * that they run; notifications are delivered at commit.
 */
const APPLY_EFFECTS_SQL = `
WITH r AS (UPDATE tasks SET state = 'ready', run_after = now(), updated_at = now()
            WHERE id = ANY($1::bigint[]) AND state = 'waiting' RETURNING queue),
     rn AS (SELECT pg_notify($2, q) FROM (SELECT DISTINCT queue AS q FROM r) AS queues),
     s AS (UPDATE tasks SET state = 'skipped', finished_at = now(), updated_at = now()
            WHERE id = ANY($3::bigint[]) AND state IN ('waiting', 'ready') RETURNING id),
     f AS (UPDATE jobs SET queue_state = 'completed', failed = x.failed, finished_at = now(), updated_at = now(),
                  outputs = x.outputs::jsonb, error = x.error
             FROM unnest($4::bigint[], $5::boolean[], $6::text[], $7::text[]) AS x(id, failed, outputs, error)
            WHERE jobs.id = x.id AND jobs.queue_state = 'started'
              AND NOT EXISTS (SELECT 1 FROM tasks tt
                               WHERE tt.job_id = x.id AND tt.id = ANY($3::bigint[])
                                 AND tt.id NOT IN (SELECT id FROM s))
           RETURNING jobs.id, jobs.finished_at),
     l AS (INSERT INTO logs (job_id, task_id, severity, progname, message, visible)
           SELECT y.j, y.t, y.s, y.p, y.m, true
             FROM unnest($8::bigint[], $9::bigint[], $10::smallint[], $11::text[], $12::text[], $13::bigint[],
                         $27::bigint[])
                  WITH ORDINALITY AS y(j, t, s, p, m, only_if, only_if_skipped, n)
            WHERE (y.only_if IS NULL OR y.only_if IN (SELECT id FROM f))
              AND (y.only_if_skipped IS NULL OR y.only_if_skipped IN (SELECT id FROM s))
            ORDER BY y.n),
     tc AS (INSERT INTO callback_deliveries (job_id, task_id, kind, event, target_url, body)
            SELECT c.j, c.t, 'task', c.e, c.u, c.b::jsonb
              FROM unnest($14::bigint[], $15::bigint[], $16::text[], $17::text[], $18::text[])
                   WITH ORDINALITY AS c(j, t, e, u, b, n)
             ORDER BY c.n
            RETURNING job_id),
     jc AS (INSERT INTO callback_deliveries (job_id, task_id, kind, event, target_url, body)
            SELECT c.j, 0, 'job', c.e, c.u,
                   c.b::jsonb || jsonb_build_object('time',
                     to_char(f.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
              FROM unnest($19::bigint[], $20::text[], $21::text[], $22::text[]) WITH ORDINALITY AS c(j, e, u, b, n)
              JOIN f ON f.id = c.j
             ORDER BY c.n
            ON CONFLICT (job_id, target_url) WHERE kind = 'job' DO NOTHING
            RETURNING job_id),
     cn AS (SELECT pg_notify($23, j::text) FROM (SELECT job_id AS j FROM tc UNION SELECT job_id FROM jc) AS cb),
     en AS (SELECT pg_notify($24, id::text) FROM f),
     an AS (SELECT pg_notify($25, 'job finished')
             WHERE $26::boolean OR EXISTS (SELECT 1 FROM f))
SELECT f.id,
       (SELECT count(*) FROM rn) + (SELECT count(*) FROM cn) + (SELECT count(*) FROM en)
         + (SELECT count(*) FROM an) AS notified
  FROM (SELECT 1) AS one LEFT JOIN f ON true`;

/**
 * Writes `effects` in one statement inside the caller's transaction (the jobs concerned must be
 * locked by it).
 * @returns the ids of the jobs that were finished (a listed finish of a job no longer `started`
 *   does not happen, nor do its conditional log lines and job-end callbacks).
 * @throws the driver's error; the caller's transaction then rolls back.
 */
export async function applyEffects(tx: Queryable, effects: JobEffects): Promise<Set<number>> {
  if (!hasEffects(effects)) return new Set();
  const e = effects;
  const logs = e.logs.map((l) => ({ ...l, message: fitLogMessage(l.message) }));
  const { rows } = await tx.query<{ id: number | null }>(APPLY_EFFECTS_SQL, [
    e.ready,
    CHANNELS.tasks,
    e.skip,
    e.finishes.map((f) => f.jobId),
    e.finishes.map((f) => f.failed),
    e.finishes.map((f) => f.outputs),
    e.finishes.map((f) => f.error),
    logs.map((l) => l.jobId),
    logs.map((l) => l.taskId),
    logs.map((l) => l.severity),
    logs.map((l) => l.progname),
    logs.map((l) => l.message),
    logs.map((l) => l.ifFinished ?? null),
    e.taskCallbacks.map((c) => c.jobId),
    e.taskCallbacks.map((c) => c.taskId),
    e.taskCallbacks.map((c) => c.event),
    e.taskCallbacks.map((c) => c.target),
    e.taskCallbacks.map((c) => c.body),
    e.jobCallbacks.map((c) => c.jobId),
    e.jobCallbacks.map((c) => c.status),
    e.jobCallbacks.map((c) => c.target),
    e.jobCallbacks.map((c) => c.body),
    CHANNELS.callbacks,
    CHANNELS.jobEnded,
    CHANNELS.admission,
    e.wakeAdmission,
    logs.map((l) => l.ifSkipped ?? null),
  ]);
  return new Set(rows.flatMap((r) => (r.id === null ? [] : [Number(r.id)])));
}

/** Options of {@link advanceLockedJobs}. */
export interface AdvanceOptions {
  /** The task whose end caused the call (log entries' task id): one for all jobs, or per job id. */
  trigger?: number | Map<number, number>;
  /** Task rows already read in this transaction after the jobs were locked, by job id. */
  preloaded?: Map<number, AdvanceTaskRow[]>;
  /** Changes gathered by the caller, written in the same statement (before the advance's own). */
  effects?: JobEffects;
}

/**
 * Advances several jobs the caller has already locked in `tx` (admission starts many at once;
 * the result writer records many results at once), with at most one read of their tasks and one
 * statement for every change of all of them ({@link applyEffects}).
 * @returns one result per job, in the order given.
 */
export async function advanceLockedJobs(
  tx: Queryable,
  ctx: EngineContext,
  jobs: RuntimeJob[],
  options: AdvanceOptions = {},
): Promise<AdvanceResult[]> {
  const { preloaded } = options;
  const effects = options.effects ?? emptyEffects();
  const triggerOf = (jobId: number): number =>
    typeof options.trigger === 'number' ? options.trigger : (options.trigger?.get(jobId) ?? 0);
  const live = jobs.filter((j) => j.queue_state === 'started' || j.queue_state === 'paused');
  const tasksByJob = new Map<number, TaskRow[]>(live.map((j) => [j.id, preloaded?.get(j.id) ?? []]));
  const toRead = live.filter((j) => !preloaded?.has(j.id));
  if (toRead.length > 0) {
    const { rows } = await tx.query<TaskRow & { job_id: number }>(
      `SELECT job_id, id, name, queue, state, needs, output, error FROM tasks
        WHERE job_id = ANY($1::bigint[]) ORDER BY job_id, position, id`,
      [toRead.map((j) => j.id)],
    );
    for (const r of rows) tasksByJob.get(r.job_id)?.push(r);
  }
  const plans = live.map((j) => planAdvance(ctx, j, tasksByJob.get(j.id)!));

  for (const p of plans) {
    effects.ready.push(...p.toReady.map((t) => t.id));
    effects.skip.push(...p.toSkip.map((s) => s.task.id));
    for (const w of p.warnings)
      effects.logs.push({
        jobId: p.job.id,
        taskId: w.taskId,
        severity: SEVERITY.WARN,
        progname: 'controller',
        message: w.message,
      });
    for (const s of p.toSkip)
      effects.logs.push({
        jobId: p.job.id,
        taskId: s.task.id,
        severity: SEVERITY.INFO,
        progname: 'controller',
        message: `Task '${s.task.name}' ${s.reason}`,
        ifSkipped: s.task.id,
      });
  }

  const results = new Map<number, AdvanceResult>();
  const finishing: Plan[] = [];
  for (const p of plans) {
    const counts = { ready: p.toReady.length, skipped: p.toSkip.length };
    results.set(p.job.id, { outcome: 'advanced', ...counts });
    if (p.job.queue_state === 'paused') {
      // A paused job holds its slot only while something of it runs: once nothing does, the
      // slot is free and admission must hear of it.
      if (!p.tasks.some((t) => t.state === 'running')) effects.wakeAdmission = true;
      continue;
    }
    const allEnded = p.tasks.every((t) => (ENDED_TASK_STATES as readonly string[]).includes(t.state));
    if (!allEnded) continue;
    planFinish(ctx, p, triggerOf(p.job.id), effects);
    finishing.push(p);
  }
  const finished = await applyEffects(tx, effects);
  for (const p of finishing)
    if (finished.has(p.job.id))
      results.set(p.job.id, {
        ...results.get(p.job.id)!,
        outcome: 'finished',
        failed: p.failedTask !== undefined,
      });
  return jobs.map((j) => results.get(j.id) ?? { outcome: 'idle', ready: 0, skipped: 0 });
}

/**
 * Adds the finish of a started job whose tasks have all ended to `effects`: state `completed`
 * (with `failed` when a task failed without `continue_on_error`), rendered `outputs`, the
 * "job has completed/failed" log line, job-end callbacks and wake-ups.
 */
function planFinish(ctx: EngineContext, p: Plan, triggerTaskId: number, effects: JobEffects): void {
  const { job, failedTask } = p;
  const failed = failedTask !== undefined;
  const reason = failedTask
    ? `task '${failedTask.name}' failed${failedTask.error ? `: ${failedTask.error}` : ''}`
    : null;
  let outputs: Record<string, unknown> = {};
  if (job.definition?.outputs) {
    try {
      const rendered = renderTemplate(
        job.definition.outputs,
        buildTemplateScope(job, outputsOf(p.tasks), ctx.config.storageRoot),
      );
      if (rendered && typeof rendered === 'object' && !Array.isArray(rendered))
        outputs = rendered as Record<string, unknown>;
    } catch (err) {
      effects.logs.push({
        jobId: job.id,
        taskId: 0,
        severity: SEVERITY.WARN,
        progname: 'controller',
        message: `workflow outputs could not be rendered: ${errorText(err)}`,
        ifFinished: job.id,
      });
    }
  }
  effects.finishes.push({ jobId: job.id, failed, outputs: JSON.stringify(outputs), error: reason });
  effects.logs.push({
    jobId: job.id,
    taskId: triggerTaskId,
    severity: failed ? SEVERITY.ERROR : SEVERITY.INFO,
    progname: 'controller',
    message: failed ? `job has failed: ${reason}` : 'job has completed successfully',
    ifFinished: job.id,
  });
  const params = job.resolved_parameters ?? {};
  const status = failed ? 'failed' : 'completed';
  // `time` is added in SQL from the job's finished_at.
  const body: Omit<JobEndBody, 'time'> = {
    ...outputs,
    job_id: job.id,
    status,
    workflow: job.workflow,
    content_id: job.content_id,
    custom_data: params.custom_data ?? null,
    client: job.client,
  };
  const text = JSON.stringify(body);
  for (const target of callbackTargets(params))
    effects.jobCallbacks.push({ jobId: job.id, status, target, body: text });
}

function outputsOf(tasks: TaskRow[]): TaskOutputs {
  const out: TaskOutputs = {};
  for (const t of tasks)
    if ((ENDED_TASK_STATES as readonly string[]).includes(t.state))
      out[t.name] = { output: t.output ?? null, state: t.state };
  return out;
}

/** A one-line description of a thrown value. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
