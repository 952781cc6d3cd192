/**
 * Callback bodies and targets (SPEC section 7), built here and nowhere else: the task events
 * (`start`, `complete`, `fail`) and the job end. Statements that enqueue callbacks take the
 * targets and the finished bodies as parameters.
 */

/** The job columns a callback body needs. */
export interface CallbackJob {
  id: number;
  workflow: string;
  content_id: string | null;
  client: string;
  resolved_parameters: Record<string, unknown> | null;
  /** The run of the job (1 + its retries); a job-end body of a retried run says so. */
  run?: number;
  /** The task a retry resumed from. */
  retried_from?: string | null;
}

/** The targets of a job: every distinct string URL (http or https) in `parameters.rest_endpoints`, first position first. */
export function callbackTargets(parameters: Record<string, unknown> | null | undefined): string[] {
  const list = parameters?.rest_endpoints;
  if (!Array.isArray(list)) return [];
  return [...new Set(list.filter((u): u is string => typeof u === 'string' && /^https?:\/\//i.test(u)))];
}

/** Body of a task event callback. */
export interface TaskEventBody {
  job_id: number;
  task_id: number;
  task_name: string;
  workflow: string;
  event: 'start' | 'complete' | 'fail';
  content_id: string | null;
  message: string;
  time: string;
  client: string;
  attempt: number;
}

/** Body of the job-end callback; `outputs` of the workflow are merged in. */
export interface JobEndBody {
  job_id: number;
  status: 'completed' | 'failed';
  workflow: string;
  content_id: string | null;
  custom_data: unknown;
  time: string;
  client: string;
  /** Only on a retried run: its number (2 for the first retry) … */
  run?: number;
  /** … and `retried from task <name>`. */
  retried_from?: string;
  [output: string]: unknown;
}

/** The body of a task event of task `task` (id and name) in `job`, at `time`. */
export function taskEventBody(
  job: CallbackJob,
  task: { id: number; name: string },
  event: TaskEventBody['event'],
  message: string,
  attempt: number,
  time: Date,
): TaskEventBody {
  return {
    job_id: job.id,
    task_id: task.id,
    task_name: task.name,
    workflow: job.workflow,
    event,
    content_id: job.content_id,
    message,
    time: time.toISOString(),
    client: job.client,
    attempt,
  };
}

/**
 * The body of `job`'s end callback at `time`: the workflow's rendered `outputs` first, then the
 * fixed fields (which win over an output of the same name); a retried run adds `run` and
 * `retried_from`.
 */
export function jobEndBody(
  job: CallbackJob,
  status: JobEndBody['status'],
  time: Date,
  outputs: Record<string, unknown> = {},
): JobEndBody {
  return {
    ...outputs,
    job_id: job.id,
    status,
    workflow: job.workflow,
    content_id: job.content_id,
    custom_data: job.resolved_parameters?.custom_data ?? null,
    time: time.toISOString(),
    client: job.client,
    ...(job.run !== undefined && job.run > 1
      ? { run: job.run, retried_from: retriedFromLine(job.retried_from ?? null) }
      : {}),
  };
}

/** `retried from task <name>`: the words of a retried run in its log and job-end callback. */
export function retriedFromLine(task: string | null): string {
  return task ? `retried from task ${task}` : 'retried';
}
