/**
 * Retry from the failed step (`POST /jobs/<id>/retry`, issue 11): a completed-failed or broken job
 * runs again as the same job. Tasks that succeeded keep their outputs and do not run again; failed,
 * cancelled and skipped tasks wait again, and the job goes back through admission like any queued
 * job (admission releases the tasks whose needs ended well). Each run has its number (`jobs.run`):
 * a task's retry budget is counted within a run, while its attempt numbers go on from the earlier
 * runs, and the job-end callback is sent once per run and target.
 */
import { EngineError } from '../../errors/catalogue.js';
import { readJobTasks } from '../../store/queries/jobs.js';
import { resetTasksForRetry, retryJobState } from '../../store/queries/retry.js';
import { validateParameters } from '../../workflows/parameters.js';
import type { WorkflowDefinition } from '../../workflows/types.js';
import { retriedFromLine } from '../callbacks/bodies.js';
import { renderConcurrency } from '../controller/admission.js';
import type { EngineContext } from '../context.js';
import { CHANNELS, notify } from '../signals.js';
import { isPlainObject, parseJobId, rejectUnknownFields, withJobId } from './input.js';
import { appendLog } from './job-log.js';
import { findVisibleJob, type Viewer } from './records.js';
import { taskEdge } from './task-transitions.js';
import { describe } from './time.js';
import { jobEdge, type JobState } from './transitions.js';

/** The job's edge: a completed (failed) or broken job is queued for a new run. */
const RETRY_JOB = jobEdge(['completed', 'broken'], 'queued', 'retry');
/** The tasks' edge: what did not succeed waits again. */
const RETRY_TASKS = taskEdge(['failed', 'cancelled', 'skipped'], 'waiting', 'retry_job');
/** A cleanup task (`when`) runs again in each run, also when it succeeded in the earlier one. */
const RETRY_CLEANUP_TASKS = taskEdge(['succeeded', 'failed', 'cancelled', 'skipped'], 'waiting', 'retry_job');

/** Fields the body of `POST /jobs/<id>/retry` accepts. */
export const RETRY_FIELDS = ['parameters'] as const;

/**
 * Reads the optional body `{"parameters": {...}}`: changed parameters, merged over the ones
 * submitted (a key given replaces that key; the others stay).
 * @throws {EngineError} `VALIDATION_FAILED` for anything else.
 */
function readRetryBody(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null || body === '') return {};
  if (!isPlainObject(body))
    throw new EngineError('VALIDATION_FAILED', `the body must be a JSON object; got ${describe(body)}`);
  rejectUnknownFields('POST /jobs/<id>/retry', body, RETRY_FIELDS);
  if (body.parameters === undefined) return {};
  if (!isPlainObject(body.parameters))
    throw new EngineError(
      'VALIDATION_FAILED',
      `parameters must be an object of parameters to change; got ${describe(body.parameters)}`,
    );
  return body.parameters;
}

/**
 * Retries job `idText` from the tasks that did not succeed, in one transaction with the job row
 * locked: merges the changed parameters into the submitted ones and validates them against the
 * job's frozen definition (defaults applied again); moves the job completed/broken → queued (run
 * + 1, `retried_at`); sends its failed, cancelled and skipped tasks back to waiting; logs
 * `Job retried from task <name> (run <n>)` and wakes admission. Tasks that succeeded keep their
 * outputs and are not run again, whatever the parameters now say.
 * @returns the same id.
 * @throws {EngineError} `VALIDATION_FAILED` (400) for a bad id, body or parameters;
 * `JOB_NOT_FOUND` (404); `STATE_CONFLICT` (409) when the job is not completed-failed or broken.
 */
export async function retryJob(
  ctx: EngineContext,
  viewer: Viewer,
  idText: string,
  body: unknown,
): Promise<{ id: number; result: 'accepted' }> {
  const id = parseJobId(idText);
  const changes = withJobId(id, () => readRetryBody(body));
  const now = ctx.clock.now();
  await ctx.db.transaction(async (tx) => {
    const job = await findVisibleJob(tx, viewer, id, { forUpdate: true });
    const state: JobState = job.queue_state;
    if (!RETRY_JOB.from.includes(state) || (state === 'completed' && !job.failed))
      throw new EngineError(
        'STATE_CONFLICT',
        `job ${id} is ${state === 'completed' ? 'completed without failure' : state}; only failed (completed with failed: true) or broken jobs can be retried`,
        { jobId: id },
      );
    const definition = job.definition as WorkflowDefinition;
    const parameters = { ...job.parameters, ...changes };
    const validation = validateParameters(definition, parameters);
    if (!validation.ok)
      throw new EngineError(
        'VALIDATION_FAILED',
        `parameters are not valid for workflow "${job.workflow}": ${validation.problems.join('; ')}`,
        { jobId: id, details: validation.problems },
      );
    const tasks = await readJobTasks.rows(tx, { jobId: id });
    const isCleanup = (name: string) =>
      definition.tasks?.some((t) => t.name === name && t.when !== undefined);
    const from =
      tasks.find((t) => (t.state === 'failed' || t.state === 'cancelled') && !isCleanup(t.name)) ??
      tasks.find((t) => t.state !== 'succeeded' && !isCleanup(t.name));
    const retriedFrom = from?.name ?? null;
    const moved = await retryJobState.first(tx, {
      id,
      from: state,
      now,
      parameters: JSON.stringify(parameters),
      resolvedParameters: JSON.stringify(validation.resolved),
      retriedFrom,
      // The key follows the parameters (a changed content_id is another key).
      concurrencyKey:
        renderConcurrency(definition, { ...job, resolvedParameters: validation.resolved })?.key ?? null,
    });
    // The row is locked above, so this is only reached if the lock was not taken as expected.
    if (!moved)
      throw new EngineError('STATE_CONFLICT', `job ${id} changed meanwhile; it was not retried`, {
        jobId: id,
      });
    const cleanup = (definition.tasks ?? []).filter((t) => t.when !== undefined).map((t) => t.name);
    const reset = await resetTasksForRetry.rows(tx, {
      jobId: id,
      from: RETRY_TASKS.from,
      cleanup,
      cleanupFrom: RETRY_CLEANUP_TASKS.from,
      now,
    });
    const changed = Object.keys(changes);
    await appendLog(tx, {
      now,
      jobId: id,
      progname: 'api',
      message:
        `Job ${retriedFromLine(retriedFrom)} (was ${state}${state === 'completed' ? ', failed' : ''}; ` +
        `${reset.length} task${reset.length === 1 ? '' : 's'} to run again` +
        (changed.length ? `; parameters changed: ${changed.join(', ')}` : '') +
        ')',
    });
    await notify(tx, CHANNELS.admission, 'job_queued');
  });
  return { id, result: 'accepted' };
}
