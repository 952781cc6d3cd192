/**
 * The task state machine as one table, beside the job's (transitions.ts). Every change of a
 * task's `state` is one of these edges, named by its cause; a statement that changes task states
 * declares its edges with {@link taskEdge} when its module loads, so an edge missing from the
 * table fails at start-up and in the unit tests, not in production.
 *
 * States (the `tasks.state` CHECK in migration 0001): a task is `waiting` until every task it
 * `needs` has ended well, `ready` until a worker claims it, `running` while an attempt runs, and
 * ends `succeeded`, `failed`, `skipped` or `cancelled`.
 */

/** `tasks.state` values. */
export const TASK_STATES = [
  'waiting',
  'ready',
  'running',
  'succeeded',
  'failed',
  'skipped',
  'cancelled',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** States a task does not leave within one run of its job (only a retry of the job, `retry_job`, sends
 * a failed, skipped or cancelled task back to waiting, and a succeeded one only if it is a cleanup task). */
export const ENDED_TASK_STATES: readonly TaskState[] = ['succeeded', 'failed', 'skipped', 'cancelled'];

/** Why a task changes state. */
export type TaskTransitionCause =
  | 'release' // controller: every task it needs ended well (and its `if` holds)
  | 'skip' // controller: its `if` is false, or a sibling failed the job
  | 'claim' // worker: an attempt starts
  | 'succeed' // worker: the attempt's handler returned
  | 'retry' // worker or stall recovery: the attempt failed and retries remain (back to ready, with a delay)
  | 'fail' // worker or stall recovery: the attempt failed for good
  | 'hand_back' // worker shutdown: the attempt is given back unfinished, without using a retry
  | 'break' // PATCH queue_state=broken: every unfinished task fails with "job broken"
  | 'retry_job'; // POST /jobs/<id>/retry: a task that did not succeed waits again for the job's new run

/** The allowed edges: from → to → the causes that may take it. */
export const TASK_TRANSITIONS: Readonly<
  Record<TaskState, Partial<Record<TaskState, readonly TaskTransitionCause[]>>>
> = {
  waiting: { ready: ['release'], skipped: ['skip'], failed: ['break'] },
  ready: { running: ['claim'], skipped: ['skip'], failed: ['break'] },
  running: {
    succeeded: ['succeed'],
    ready: ['retry', 'hand_back'],
    failed: ['fail', 'break'],
  },
  succeeded: { waiting: ['retry_job'] }, // only a cleanup task (`when`): it runs again in each run
  failed: { waiting: ['retry_job'] },
  skipped: { waiting: ['retry_job'] },
  cancelled: { waiting: ['retry_job'] },
};

/** Whether `from → to` is an edge for `cause`. */
export function canTaskTransition(from: TaskState, to: TaskState, cause: TaskTransitionCause): boolean {
  return TASK_TRANSITIONS[from][to]?.includes(cause) ?? false;
}

/** One declared edge (or set of edges sharing a target and cause). */
export interface TaskEdge {
  readonly from: readonly TaskState[];
  readonly to: TaskState;
  readonly cause: TaskTransitionCause;
}

/**
 * Declares the edges a statement takes: `from` (one state or several) → `to` for `cause`.
 * Call it at module level next to the statement, and use `edge.from` in the statement's `WHERE`,
 * so the table and the SQL cannot disagree.
 * @throws Error naming the edge when the table does not allow it.
 */
export function taskEdge(
  from: TaskState | readonly TaskState[],
  to: TaskState,
  cause: TaskTransitionCause,
): TaskEdge {
  const froms: readonly TaskState[] = typeof from === 'string' ? [from] : from;
  for (const f of froms)
    if (!canTaskTransition(f, to, cause))
      throw new Error(`task transition ${f} → ${to} (${cause}) is not in the table`);
  return { from: froms, to, cause };
}
