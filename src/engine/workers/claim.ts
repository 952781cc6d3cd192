/**
 * Claiming ready tasks (SPEC section 2: `FOR UPDATE SKIP LOCKED`, one statement; task weights and
 * concurrency keys, docs/task-slots-and-concurrency.md), reporting tasks too heavy for every live
 * worker, and reading when the next delayed one falls due. The statements are `claimReadyTasks`,
 * `markTooHeavyTasks` and `readMsUntilNextDue` in `store/queries/tasks.ts`.
 */
import type { Executor, Queryable } from '../../store/executor.js';
import { insertWorkerLogLines } from '../../store/queries/logs.js';
import {
  CLAIM_TASK_EDGE,
  claimReadyTasks,
  claimReadyTasksTraced,
  markTooHeavyTasks,
  readLostClaims,
  readMsUntilNextDue,
  type ClaimReadyTasksRow,
} from '../../store/queries/tasks.js';
import { systemClock, type Clock } from '../clock.js';
import type { RuntimeJob, TaskOutputs } from '../controller/job-scope.js';
import { SEVERITY } from '../jobs/job-log.js';
import { taskTooHeavyLine } from '../jobs/log-messages.js';
import { WORKER_ALIVE_SECONDS } from '../status/health.js';
import { taskEdge } from '../jobs/task-transitions.js';
import { CHANNELS } from '../signals.js';
import type { StoredJobSpan } from '../tracing/tracing.js';

/** The edge a claim takes: `ready → running`, cause `claim` (checked against the table at load). */
export const CLAIM_EDGE = taskEdge(CLAIM_TASK_EDGE.from, CLAIM_TASK_EDGE.to, 'claim');

/** A task claimed by this worker, with its new attempt and what the handler needs. */
export interface ClaimedTask {
  taskId: number;
  name: string;
  queue: string;
  /** Worker slots the task takes while it runs (`tasks[].slots`, default 1). */
  slots: number;
  attemptId: number;
  /** 1-based attempt number. */
  number: number;
  job: RuntimeJob;
  /** Outputs of the job's tasks that had ended when the attempt started. */
  outputs: TaskOutputs;
  /**
   * The job span's stored ids (claims with {@link ClaimOptions.traced}; null when the job has no
   * trace, absent when the claim did not read them): the parent of the attempt's span.
   */
  trace?: StoredJobSpan | null;
}

/** What one claim pass took. */
export interface ClaimResult {
  /** The claimed tasks (possibly none). */
  tasks: ClaimedTask[];
  /**
   * Candidates passed over because their concurrency key turned out to be at its limit when
   * counted under the key's lock: more may be claimable behind them, so the loop looks again.
   */
  heldBack: number;
}

/** Options of {@link claimReady}. */
export interface ClaimOptions {
  queues: string[];
  /** Free slots: the claimed tasks' `slots` add up to at most this. */
  freeSlots: number;
  /** The worker's whole capacity in slots: heavier tasks are left to bigger workers. */
  capacity: number;
  /** This process's `workers.id`. */
  workerId: string;
  /** The time the claim is made at (due check, `started_at`, heartbeat); the pool passes `ctx.clock`. */
  clock?: Clock;
  /**
   * The claim's time, when the caller must know it (it overrides `clock`): the attempts it starts
   * carry it as `started_at`, which finds them again when the claim's answer is lost
   * ({@link readLostClaimedTasks}).
   */
  now?: Date;
  /**
   * Tracing on: also read each claimed task's job trace ids, in the same statement
   * ({@link claimReadyTasksTraced}), into {@link ClaimedTask.trace}. Default false.
   */
  traced?: boolean;
  /**
   * A hand-off claim (inside a result transaction): tasks with a concurrency key are left to
   * passes and counted in `heldBack` (`ClaimReadyTasksParams.skipKeyed`). Default false.
   */
  skipKeyed?: boolean;
}

/**
 * Claims ready tasks on `queues` whose `slots` fit `freeSlots`, in one statement
 * ({@link claimReadyTasks}: concurrency keys are honoured across processes, and a heavy task at the
 * head is not overtaken), and starts an attempt for each: the tasks go `ready → running`, each gets
 * its `attempts` row, its two "started" log lines and its `start` callbacks. One statement, so no
 * explicit transaction (and its two extra round trips) is needed.
 * @returns the claimed tasks and how many candidates their keys held back.
 * @throws the driver's error (nothing is claimed then).
 */
export async function claimReady(db: Queryable, options: ClaimOptions): Promise<ClaimResult> {
  const { queues, freeSlots, capacity, workerId } = options;
  if (freeSlots <= 0 || queues.length === 0) return { tasks: [], heldBack: 0 };
  const rows = await (options.traced ? claimReadyTasksTraced : claimReadyTasks).rows(db, {
    queues,
    limit: freeSlots,
    capacity,
    workerId,
    now: options.now ?? (options.clock ?? systemClock).now(),
    callbacksChannel: CHANNELS.callbacks,
    severity: SEVERITY.INFO,
    skipKeyed: options.skipKeyed === true,
  });
  const heldBack = rows[0]?.held_back ?? 0;
  const tasks: ClaimedTask[] = [];
  for (const r of rows) {
    // The one row of a claim that took nothing carries only `held_back`.
    if ((r.task_id as number | null) === null) continue;
    tasks.push(claimedTaskOf(r, options.traced === true));
  }
  return { tasks, heldBack };
}

/** A claim statement's row as a {@link ClaimedTask}; `traced`: the row carries the job's trace ids. */
function claimedTaskOf(r: ClaimReadyTasksRow, traced: boolean): ClaimedTask {
  return {
    taskId: r.task_id,
    name: r.name,
    queue: r.queue,
    slots: r.slots,
    attemptId: r.attempt_id,
    number: r.number,
    outputs: r.outputs ?? {},
    ...(traced
      ? {
          trace: r.trace_id
            ? { traceId: r.trace_id, spanId: r.span_id!, traceFlags: r.trace_flags ?? 0 }
            : null,
        }
      : {}),
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
  };
}

/**
 * The tasks that claims of worker `workerId` made at `claimedAts` (their `now`) took and that
 * still run as those claims' attempts, other than `knownAttemptIds` ({@link readLostClaims}): when
 * the connection is lost after a claim was sent, the claim may have committed without its answer
 * reaching the worker, and these are what it took. Their heartbeats are stamped with `now`. The
 * caller runs them as claimed; their attempt and its "started" line and callbacks are the claim's
 * own, so the task still starts once.
 * @returns the tasks, in claim order (possibly none).
 * @throws the driver's error.
 */
export async function readLostClaimedTasks(
  db: Queryable,
  workerId: string,
  claimedAts: Date[],
  knownAttemptIds: number[],
  now: Date,
): Promise<ClaimedTask[]> {
  if (claimedAts.length === 0) return [];
  const rows = await readLostClaims.rows(db, { workerId, claimedAts, knownAttemptIds, now });
  return rows.map((r) => claimedTaskOf(r, true));
}

/**
 * {@link claimReady} for `limit` free slots out of a capacity of `capacity` (default `limit`),
 * returning only the claimed tasks (possibly none).
 * @throws the driver's error (nothing is claimed then).
 */
export async function claimTasks(
  db: Queryable,
  queues: string[],
  limit: number,
  workerId: string,
  clock: Clock = systemClock,
  capacity: number = limit,
): Promise<ClaimedTask[]> {
  return (await claimReady(db, { queues, freeSlots: limit, capacity, workerId, clock })).tasks;
}

/**
 * Writes one WARN job log line for each ready task on `queues` that needs more slots than any
 * live worker of its queue has (and than this worker's `capacity`), once per task
 * ({@link markTooHeavyTasks} marks it in the same transaction).
 * @returns how many tasks were reported.
 * @throws the driver's error (nothing is marked then).
 */
export async function reportTooHeavyTasks(
  db: Executor,
  queues: string[],
  capacity: number,
  now: Date,
): Promise<number> {
  if (queues.length === 0) return 0;
  return db.transaction(async (tx) => {
    const heavy = await markTooHeavyTasks.rows(tx, {
      queues,
      capacity,
      now,
      aliveSeconds: WORKER_ALIVE_SECONDS,
    });
    if (heavy.length === 0) return 0;
    await insertWorkerLogLines.run(tx, {
      jobIds: heavy.map((h) => h.job_id),
      taskIds: heavy.map((h) => h.id),
      severities: heavy.map(() => SEVERITY.WARN),
      messages: heavy.map((h) => taskTooHeavyLine(h.name, h.slots, h.queue, h.largest)),
      hiddenSeverity: SEVERITY.DEBUG,
      now,
    });
    return heavy.length;
  });
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
