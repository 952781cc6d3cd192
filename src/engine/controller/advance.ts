/**
 * Advancing a job when its tasks end (SPEC sections 5.3, 6 and 11): waiting tasks whose needs
 * have ended become ready (or skipped when their `if` renders falsy), and when every task has
 * ended the job finishes, gives its slot back and enqueues its job-end callbacks.
 */
import type { Queryable } from '../../store/executor.js';
import { isTruthy, renderTemplate } from '../../workflows/templates.js';
import { callbackTargets, enqueueJobEnd, type JobEndBody } from '../callbacks/enqueue.js';
import type { EngineContext } from '../context.js';
import { appendLog, SEVERITY } from '../jobs/job-log.js';
import { CHANNELS, notify } from '../signals.js';
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
  tasksRead?: AdvanceTaskRow[],
): Promise<AdvanceResult> {
  const job =
    lockedJob ??
    (
      await tx.query<RuntimeJob>(`SELECT ${RUNTIME_JOB_COLUMNS} FROM jobs j WHERE j.id = $1 FOR UPDATE`, [
        jobId,
      ])
    ).rows[0];
  if (!job) return { outcome: 'missing', ready: 0, skipped: 0 };
  const preloaded = tasksRead ? new Map([[job.id, tasksRead]]) : undefined;
  return (await advanceLockedJobs(tx, ctx, [job], triggerTaskId, preloaded))[0]!;
}

/**
 * Advances several jobs the caller has already locked in `tx` (admission starts many at once),
 * with one read of their tasks and one statement per kind of change for all of them.
 * @returns one result per job, in the order given.
 */
export async function advanceLockedJobs(
  tx: Queryable,
  ctx: EngineContext,
  jobs: RuntimeJob[],
  triggerTaskId = 0,
  preloaded?: Map<number, AdvanceTaskRow[]>,
): Promise<AdvanceResult[]> {
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

  const ready = plans.flatMap((p) => p.toReady.map((t) => t.id));
  if (ready.length > 0)
    // Tasks made ready and the workers' wake-up (one per queue) in one round trip.
    await tx.query(
      `WITH u AS (UPDATE tasks SET state = 'ready', run_after = now(), updated_at = now()
                   WHERE id = ANY($1::bigint[]) AND state = 'waiting' RETURNING queue)
       SELECT pg_notify($2, q) FROM (SELECT DISTINCT queue AS q FROM u) AS queues`,
      [ready, CHANNELS.tasks],
    );
  const skips = plans.flatMap((p) => p.toSkip.map((s) => ({ jobId: p.job.id, ...s })));
  const notes = [
    ...plans.flatMap((p) =>
      p.warnings.map((w) => ({
        jobId: p.job.id,
        taskId: w.taskId,
        severity: SEVERITY.WARN,
        message: w.message,
      })),
    ),
    ...skips.map((s) => ({
      jobId: s.jobId,
      taskId: s.task.id,
      severity: SEVERITY.INFO,
      message: `Task '${s.task.name}' ${s.reason}`,
    })),
  ];
  if (skips.length > 0 || notes.length > 0)
    await tx.query(
      `WITH u AS (UPDATE tasks SET state = 'skipped', finished_at = now(), updated_at = now()
                   WHERE id = ANY($1::bigint[]) AND state IN ('waiting', 'ready'))
       INSERT INTO logs (job_id, task_id, severity, progname, message, visible)
       SELECT j, t, s, 'controller', m, true FROM unnest($2::bigint[], $3::bigint[], $4::smallint[], $5::text[]) AS x(j, t, s, m)`,
      [
        skips.map((s) => s.task.id),
        notes.map((n) => n.jobId),
        notes.map((n) => n.taskId),
        notes.map((n) => n.severity),
        notes.map((n) => n.message),
      ],
    );

  const results = new Map<number, AdvanceResult>();
  for (const p of plans) {
    const counts = { ready: p.toReady.length, skipped: p.toSkip.length };
    if (p.job.queue_state === 'paused') {
      // A paused job holds its slot only while something of it runs: once nothing does, the
      // slot is free and admission must hear of it.
      if (!p.tasks.some((t) => t.state === 'running'))
        await notify(tx, CHANNELS.admission, 'paused job idle');
      results.set(p.job.id, { outcome: 'advanced', ...counts });
      continue;
    }
    const allEnded = p.tasks.every((t) => (ENDED_TASK_STATES as readonly string[]).includes(t.state));
    if (!allEnded) {
      results.set(p.job.id, { outcome: 'advanced', ...counts });
      continue;
    }
    const finished = await finishJob(tx, ctx, p, triggerTaskId);
    results.set(
      p.job.id,
      finished
        ? { outcome: 'finished', ...counts, failed: p.failedTask !== undefined }
        : { outcome: 'advanced', ...counts },
    );
  }
  return jobs.map((j) => results.get(j.id) ?? { outcome: 'idle', ready: 0, skipped: 0 });
}

/** Finishes a started job whose tasks have all ended. Returns false if it was not `started`. */
async function finishJob(
  tx: Queryable,
  ctx: EngineContext,
  p: Plan,
  triggerTaskId: number,
): Promise<boolean> {
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
      await appendLog(tx, {
        jobId: job.id,
        severity: SEVERITY.WARN,
        progname: 'controller',
        message: `workflow outputs could not be rendered: ${errorText(err)}`,
      });
    }
  }
  // State, log line and wake-ups in one round trip; all of it only if the job was `started`.
  const done = await tx.query<{ finished_at: Date; notified: number }>(
    `WITH d AS (UPDATE jobs SET queue_state = 'completed', failed = $2, finished_at = now(), updated_at = now(),
                       outputs = $3::jsonb, error = $4
                 WHERE id = $1 AND queue_state = 'started'
                 RETURNING finished_at),
          l AS (INSERT INTO logs (job_id, task_id, severity, progname, message, visible)
                SELECT $1, $5::bigint, $6::smallint, 'controller', $7::text, true FROM d),
          n AS (SELECT pg_notify($8, 'job finished') AS a, pg_notify($9, $1::text) AS b FROM d)
     SELECT d.finished_at, (SELECT count(*) FROM n) AS notified FROM d`,
    [
      job.id,
      failed,
      JSON.stringify(outputs),
      reason,
      triggerTaskId,
      failed ? SEVERITY.ERROR : SEVERITY.INFO,
      failed ? `job has failed: ${reason}` : 'job has completed successfully',
      CHANNELS.admission,
      CHANNELS.jobEnded,
    ],
  );
  // The row is locked and was `started`, so this cannot miss; checked all the same.
  const row = done.rows[0];
  if (!row) return false;
  const params = job.resolved_parameters ?? {};
  const targets = callbackTargets(params);
  if (targets.length > 0) {
    const body: JobEndBody = {
      ...outputs,
      job_id: job.id,
      status: failed ? 'failed' : 'completed',
      workflow: job.workflow,
      content_id: job.content_id,
      custom_data: params.custom_data ?? null,
      time: row.finished_at.toISOString(),
      client: job.client,
    };
    await enqueueJobEnd(tx, targets, body);
  }
  return true;
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
