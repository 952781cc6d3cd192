/**
 * The template scope of a job (SPEC section 11): what `if`, `with` and `outputs` templates see.
 * Shared by the controller (conditions, outputs) and the workers (task inputs).
 */
import path from 'node:path';
import type { RuntimeJobRow } from '../../store/queries/job-effects.js';
import type { TaskDefinition } from '../../workflows/types.js';

/** The columns of a job that the runtime needs, as read from `jobs` (see `RuntimeJobRow`). */
export type RuntimeJob = RuntimeJobRow;

/** Outputs and states of a job's ended tasks, by task name. */
export type TaskOutputs = Record<string, { output: unknown; state: string }>;

/**
 * Builds the scope `{parameters, job, tasks, storage}` that templates render against; `job.outcome`
 * is {@link jobOutcome}.
 * @param storageRoot - `config.storageRoot` (absolute); `storage.root` is the client's folder under it.
 */
export function buildTemplateScope(
  job: RuntimeJob,
  tasks: TaskOutputs,
  storageRoot: string,
): {
  parameters: Record<string, unknown>;
  job: { id: number; client: string; workflow: string; priority: number; outcome: JobOutcome };
  tasks: TaskOutputs;
  storage: { root: string };
} {
  return {
    parameters: job.resolved_parameters ?? {},
    job: {
      id: job.id,
      client: job.client,
      workflow: job.workflow,
      priority: job.priority,
      outcome: jobOutcome(job, tasks),
    },
    tasks,
    storage: { root: path.join(storageRoot, job.client) },
  };
}

/** What `job.outcome` says in templates: the outcome of the job's tasks that are not cleanup tasks. */
export type JobOutcome = 'succeeded' | 'failed' | 'broken';

/** Whether task `name` of `job` is a cleanup task (`when: always|failed`). */
export function isCleanupTask(job: RuntimeJob, name: string): boolean {
  return taskDefinition(job, name)?.when !== undefined;
}

/**
 * The outcome so far: `broken` for a broken job; `failed` when an ended task that is not a
 * cleanup task failed or was cancelled without `continue_on_error`; else `succeeded`.
 */
export function jobOutcome(job: RuntimeJob, tasks: TaskOutputs): JobOutcome {
  if (job.queue_state === 'broken') return 'broken';
  for (const [name, t] of Object.entries(tasks))
    if (
      (t.state === 'failed' || t.state === 'cancelled') &&
      !isCleanupTask(job, name) &&
      taskDefinition(job, name)?.continue_on_error !== true
    )
      return 'failed';
  return 'succeeded';
}

/** The definition of task `name` in a job's frozen workflow, or undefined. */
export function taskDefinition(job: RuntimeJob, name: string): TaskDefinition | undefined {
  return job.definition?.tasks?.find((t) => t.name === name);
}
