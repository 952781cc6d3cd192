/**
 * Claiming ready tasks (SPEC section 2: `FOR UPDATE SKIP LOCKED`, one statement) and reading
 * when the next delayed one falls due. The statements are `claimReadyTasks` and
 * `readMsUntilNextDue` in `store/queries/tasks.ts`.
 */
import type { Queryable } from '../../store/executor.js';
import { CLAIM_TASK_EDGE, claimReadyTasks, readMsUntilNextDue } from '../../store/queries/tasks.js';
import { systemClock, type Clock } from '../clock.js';
import type { RuntimeJob, TaskOutputs } from '../controller/job-scope.js';
import { SEVERITY } from '../jobs/job-log.js';
import { taskEdge } from '../jobs/task-transitions.js';
import { CHANNELS } from '../signals.js';

/** The edge a claim takes: `ready → running`, cause `claim` (checked against the table at load). */
export const CLAIM_EDGE = taskEdge(CLAIM_TASK_EDGE.from, CLAIM_TASK_EDGE.to, 'claim');

/**
 * The first log line of a claimed task, by the job's `definition_source`, passed to the claim
 * statement as parameters (the statement builds no message of its own for it).
 */
const DEFINITIONS_MESSAGE = {
  client: 'Client definitions found. Using client definitions.',
  common: 'No client definitions. Using common definitions.',
} as const;

/** A task claimed by this worker, with its new attempt and what the handler needs. */
export interface ClaimedTask {
  taskId: number;
  name: string;
  queue: string;
  attemptId: number;
  /** 1-based attempt number. */
  number: number;
  job: RuntimeJob;
  /** Outputs of the job's tasks that had ended when the attempt started. */
  outputs: TaskOutputs;
}

/**
 * Claims up to `limit` ready tasks on `queues` in one statement ({@link claimReadyTasks}) and
 * starts an attempt for each: the tasks go `ready → running`, each gets its `attempts` row, its
 * two "started" log lines and its `start` callbacks. One statement, so no explicit transaction
 * (and its two extra round trips) is needed.
 * @param clock - the time the claim is made at (due check, `started_at`, heartbeat); the pool
 *   passes `ctx.clock`.
 * @returns the claimed tasks (possibly none).
 * @throws the driver's error (nothing is claimed then).
 */
export async function claimTasks(
  db: Queryable,
  queues: string[],
  limit: number,
  workerId: string,
  clock: Clock = systemClock,
): Promise<ClaimedTask[]> {
  if (limit <= 0 || queues.length === 0) return [];
  const rows = await claimReadyTasks.rows(db, {
    queues,
    limit,
    workerId,
    now: clock.now(),
    callbacksChannel: CHANNELS.callbacks,
    clientDefinitionsMessage: DEFINITIONS_MESSAGE.client,
    commonDefinitionsMessage: DEFINITIONS_MESSAGE.common,
    severity: SEVERITY.INFO,
  });
  return rows.map((r) => ({
    taskId: r.task_id,
    name: r.name,
    queue: r.queue,
    attemptId: r.attempt_id,
    number: r.number,
    outputs: r.outputs ?? {},
    job: {
      id: r.id,
      client: r.client,
      workflow: r.workflow,
      priority: r.priority,
      queue_state: r.queue_state,
      content_id: r.content_id,
      resolved_parameters: r.resolved_parameters,
      definition: r.definition,
      definition_source: r.definition_source,
    },
  }));
}

/**
 * Milliseconds from `now` until the earliest delayed `ready` task on `queues` (of a started job)
 * becomes due, or null when none waits. Used to arm a timer for retries, instead of polling.
 * @throws the driver's error.
 */
export async function msUntilNextDue(db: Queryable, queues: string[], now: Date): Promise<number | null> {
  const ms = (await readMsUntilNextDue.first(db, { queues, now }))?.ms;
  return ms === null || ms === undefined ? null : Math.max(0, Number(ms));
}
