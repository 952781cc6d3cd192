/**
 * Why a started job's ready task is not running (docs/task-slots-and-concurrency.md): no live
 * worker serves its queue, it is heavier than every live worker of the queue, its concurrency key
 * is at its limit, or the workers of its queue are busy. One read (`readReadyTaskWaiting` in
 * `store/queries/tasks.ts`), then the pure {@link explainReadyTask}.
 */
import type { Queryable } from '../../store/executor.js';
import { readReadyTaskWaiting, type ReadyTaskWaitingRow } from '../../store/queries/tasks.js';
import { WORKER_ALIVE_SECONDS } from './health.js';

/** The stable codes of a ready task's waiting reason, most serious first. */
export const TASK_WAITING_REASONS = [
  'no_worker_for_queue',
  'task_too_heavy',
  'concurrency_key',
  'workers_busy',
] as const;
/** One of {@link TASK_WAITING_REASONS}. */
export type TaskWaitingReason = (typeof TASK_WAITING_REASONS)[number];

/** Why a ready task waits: a stable `reason`, a sentence (`detail`) and the task's name. */
export interface TaskWaiting {
  reason: TaskWaitingReason;
  detail: string;
  task: string;
}

/** Most holders a `concurrency_key` detail names. */
const NAMED_HOLDERS = 5;

/**
 * Why ready task `row` is not running at `now`, or null when it is only waiting out a retry
 * delay (`run_after` still ahead). Pure. In order: `no_worker_for_queue` (no live worker serves
 * its queue), `task_too_heavy` (its `slots` exceed the largest live worker of the queue),
 * `concurrency_key` (its key has `limit` running holders, named in the detail), else
 * `workers_busy`: no worker of the queue has `slots` free (the slots in use and what it needs), or
 * one has but a heavier ready task ahead of it in claim order waits for slots first (named).
 * Null too when a worker has room for it and nothing is ahead: the next claim (within
 * milliseconds) takes it, so it waits for nothing.
 */
export function explainReadyTask(row: ReadyTaskWaitingRow, now: Date): TaskWaiting | null {
  if (new Date(row.run_after).getTime() > now.getTime()) return null;
  const task = row.name;
  if (row.workers === 0)
    return {
      reason: 'no_worker_for_queue',
      task,
      detail: `No live worker takes tasks from queue '${row.queue}'; task '${task}' waits until a worker serving that queue runs (TASK_ENGINE_WORKER_QUEUES).`,
    };
  if (row.slots > row.largest)
    return {
      reason: 'task_too_heavy',
      task,
      detail: `Task '${task}' needs ${row.slots} worker slots, more than any live worker of queue '${row.queue}' has (the largest has ${row.largest}); it waits until a worker with ${row.slots} slots takes that queue.`,
    };
  if (
    row.concurrency_key !== null &&
    row.concurrency_limit !== null &&
    row.holders >= row.concurrency_limit
  ) {
    const named = (row.holder_tasks ?? [])
      .slice(0, NAMED_HOLDERS)
      .map((h) => `job ${h.job_id} (task '${h.task}')`);
    const more = row.holders - named.length;
    return {
      reason: 'concurrency_key',
      task,
      detail: `Task '${task}' waits for concurrency key '${row.concurrency_key}' (limit ${row.concurrency_limit}), held by ${named.join(', ')}${more > 0 ? ` and ${more} more` : ''}.`,
    };
  }
  if (row.largest_free >= row.slots) {
    // A worker has room for it: the next claim takes it, unless a heavier task ahead of it in
    // claim order waits for slots first (a claim stops at the first task that does not fit).
    if (row.ahead_task === null || row.ahead_job_id === null) return null;
    return {
      reason: 'workers_busy',
      task,
      detail: `A live worker of queue '${row.queue}' has ${row.largest_free} free slots, but task '${row.ahead_task}' of job ${Number(row.ahead_job_id)}, ahead in the queue, needs ${row.ahead_slots}: task '${task}' is taken after it.`,
    };
  }
  const workers = row.workers === 1 ? 'The live worker' : `The ${row.workers} live workers`;
  const use = row.workers === 1 ? 'uses' : 'use';
  return {
    reason: 'workers_busy',
    task,
    detail: `${workers} of queue '${row.queue}' ${use} ${row.slots_in_use} of ${row.capacity} slots; task '${task}' needs ${row.slots} and is taken when they are free, in turn.`,
  };
}

/**
 * For a started job whose ready task is not running: why, as `{reason, detail, task}` for the
 * ready task with the most serious reason ({@link TASK_WAITING_REASONS} order, then task id).
 * @returns null when the job has no ready task that is due (none, or only retry delays).
 * @throws the driver's error.
 */
export async function explainReadyTasks(
  q: Queryable,
  jobId: number,
  now: Date,
): Promise<{ reason: string; detail: string; task: string } | null> {
  const rows = await readReadyTaskWaiting.rows(q, { jobId, now, aliveSeconds: WORKER_ALIVE_SECONDS });
  let best: TaskWaiting | null = null;
  for (const row of rows) {
    const w = explainReadyTask(row, now);
    if (w && (!best || TASK_WAITING_REASONS.indexOf(w.reason) < TASK_WAITING_REASONS.indexOf(best.reason)))
      best = w;
  }
  return best;
}
