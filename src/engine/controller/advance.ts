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

interface TaskRow {
  id: number;
  name: string;
  queue: string;
  state: string;
  needs: string[];
  output: unknown;
  error: string | null;
}

/**
 * Advances job `jobId` inside the caller's transaction `tx`.
 *
 * Locks the job row first (`SELECT … FOR UPDATE`), so every change of one job's tasks and state
 * (worker results, break, pause, stalled-attempt recovery, admission) is serialised per job.
 * Works on `started` jobs, and on `paused` jobs as far as making tasks ready or skipped (a paused
 * job never finishes; it finishes once resumed and admitted again).
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
 * @throws the driver's error; the caller's transaction then rolls back and nothing is half-done.
 */
export async function advanceJob(
  tx: Queryable,
  ctx: EngineContext,
  jobId: number,
  triggerTaskId = 0,
): Promise<AdvanceResult> {
  const jobRes = await tx.query<RuntimeJob>(
    `SELECT ${RUNTIME_JOB_COLUMNS} FROM jobs j WHERE j.id = $1 FOR UPDATE`,
    [jobId],
  );
  const job = jobRes.rows[0];
  if (!job) return { outcome: 'missing', ready: 0, skipped: 0 };
  if (job.queue_state !== 'started' && job.queue_state !== 'paused')
    return { outcome: 'idle', ready: 0, skipped: 0 };

  const { rows: tasks } = await tx.query<TaskRow>(
    `SELECT id, name, queue, state, needs, output, error FROM tasks WHERE job_id = $1 ORDER BY position, id`,
    [jobId],
  );
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const continues = (t: TaskRow): boolean => taskDefinition(job, t.name)?.continue_on_error === true;
  const failsJob = (t: TaskRow): boolean =>
    (t.state === 'failed' || t.state === 'cancelled') && !continues(t);
  const endedWell = (t: TaskRow | undefined): boolean =>
    t === undefined ||
    t.state === 'succeeded' ||
    t.state === 'skipped' ||
    (t.state === 'failed' && continues(t));

  const toReady: TaskRow[] = [];
  const toSkip: { task: TaskRow; reason: string }[] = [];
  const failedTask = tasks.find(failsJob);

  if (failedTask) {
    for (const t of tasks)
      if (t.state === 'waiting' || t.state === 'ready') {
        toSkip.push({ task: t, reason: `skipped: task '${failedTask.name}' failed` });
        t.state = 'skipped';
      }
  } else {
    // Repeat until nothing changes: a skipped task may release the tasks that need it.
    let changed = true;
    let scope: ReturnType<typeof buildTemplateScope> | null = null;
    while (changed) {
      changed = false;
      for (const t of tasks) {
        if (t.state !== 'waiting') continue;
        if (!t.needs.every((n) => endedWell(byName.get(n)))) continue;
        const cond = taskDefinition(job, t.name)?.if;
        let run = true;
        if (cond !== undefined && cond !== null && cond !== '') {
          scope ??= buildTemplateScope(job, outputsOf(tasks), ctx.config.storageRoot);
          scope.tasks = outputsOf(tasks);
          try {
            run = isTruthy(renderTemplate(cond, scope));
          } catch (err) {
            // A condition that cannot be rendered is treated as false and said so in the log.
            run = false;
            await appendLog(tx, {
              jobId,
              taskId: t.id,
              severity: SEVERITY.WARN,
              progname: 'controller',
              message: `Task '${t.name}': condition ${JSON.stringify(cond)} could not be evaluated (${errorText(err)}); skipping it`,
            });
          }
        }
        if (run) {
          t.state = 'ready';
          toReady.push(t);
        } else {
          t.state = 'skipped';
          toSkip.push({ task: t, reason: `skipped: condition ${JSON.stringify(cond)} is false` });
          changed = true;
        }
      }
    }
  }

  if (toReady.length > 0) {
    await tx.query(
      `UPDATE tasks SET state = 'ready', run_after = now(), updated_at = now() WHERE id = ANY($1::bigint[]) AND state = 'waiting'`,
      [toReady.map((t) => t.id)],
    );
    for (const q of new Set(toReady.map((t) => t.queue))) await notify(tx, CHANNELS.tasks, q);
  }
  if (toSkip.length > 0) {
    await tx.query(
      `UPDATE tasks SET state = 'skipped', finished_at = now(), updated_at = now()
        WHERE id = ANY($1::bigint[]) AND state IN ('waiting', 'ready')`,
      [toSkip.map((s) => s.task.id)],
    );
    await insertLogs(
      tx,
      toSkip.map((s) => ({ jobId, taskId: s.task.id, message: `Task '${s.task.name}' ${s.reason}` })),
    );
  }

  const allEnded = tasks.every((t) => (ENDED_TASK_STATES as readonly string[]).includes(t.state));
  if (job.queue_state === 'paused') {
    // A paused job holds its slot only while something of it runs: once nothing does, the slot
    // is free and admission must hear of it.
    if (!tasks.some((t) => t.state === 'running')) await notify(tx, CHANNELS.admission, 'paused job idle');
    return { outcome: 'advanced', ready: toReady.length, skipped: toSkip.length };
  }
  if (!allEnded) return { outcome: 'advanced', ready: toReady.length, skipped: toSkip.length };

  const failed = failedTask !== undefined;
  const reason = failedTask
    ? `task '${failedTask.name}' failed${failedTask.error ? `: ${failedTask.error}` : ''}`
    : null;
  const scope = buildTemplateScope(job, outputsOf(tasks), ctx.config.storageRoot);
  let outputs: Record<string, unknown> = {};
  if (job.definition?.outputs) {
    try {
      const rendered = renderTemplate(job.definition.outputs, scope);
      if (rendered && typeof rendered === 'object' && !Array.isArray(rendered))
        outputs = rendered as Record<string, unknown>;
    } catch (err) {
      await appendLog(tx, {
        jobId,
        severity: SEVERITY.WARN,
        progname: 'controller',
        message: `workflow outputs could not be rendered: ${errorText(err)}`,
      });
    }
  }
  const done = await tx.query<{ finished_at: Date }>(
    `UPDATE jobs SET queue_state = 'completed', failed = $2, finished_at = now(), updated_at = now(),
            outputs = $3::jsonb, error = $4
      WHERE id = $1 AND queue_state = 'started'
      RETURNING finished_at`,
    [jobId, failed, JSON.stringify(outputs), reason],
  );
  // The row is locked and was `started`, so this cannot miss; checked all the same.
  if (done.rowCount === 0) return { outcome: 'advanced', ready: toReady.length, skipped: toSkip.length };

  const params = job.resolved_parameters ?? {};
  const body: JobEndBody = {
    ...outputs,
    job_id: job.id,
    status: failed ? 'failed' : 'completed',
    workflow: job.workflow,
    content_id: job.content_id,
    custom_data: params.custom_data ?? null,
    time: done.rows[0]!.finished_at.toISOString(),
    client: job.client,
  };
  await enqueueJobEnd(tx, callbackTargets(params), body);
  await appendLog(tx, {
    jobId,
    taskId: triggerTaskId,
    severity: failed ? SEVERITY.ERROR : SEVERITY.INFO,
    progname: 'controller',
    message: failed ? `job has failed: ${reason}` : 'job has completed successfully',
  });
  await notify(tx, CHANNELS.admission, 'job finished');
  await notify(tx, CHANNELS.jobEnded, jobId);
  return { outcome: 'finished', ready: toReady.length, skipped: toSkip.length, failed };
}

function outputsOf(tasks: TaskRow[]): TaskOutputs {
  const out: TaskOutputs = {};
  for (const t of tasks)
    if ((ENDED_TASK_STATES as readonly string[]).includes(t.state))
      out[t.name] = { output: t.output ?? null, state: t.state };
  return out;
}

/** Inserts several INFO entries (progname controller) in one statement, in order. */
async function insertLogs(
  tx: Queryable,
  entries: { jobId: number; taskId: number; message: string }[],
): Promise<void> {
  await tx.query(
    `INSERT INTO logs (job_id, task_id, severity, progname, message, visible)
     SELECT j, t, 1, 'controller', m, true FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS u(j, t, m)`,
    [entries.map((e) => e.jobId), entries.map((e) => e.taskId), entries.map((e) => e.message)],
  );
}

/** A one-line description of a thrown value. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
