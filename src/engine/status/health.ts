/**
 * `GET /health` (seed "GET: /health"): the engine's version, the database check, one block per
 * queue, and task and job counts, all read from the database (nothing is kept in memory).
 */
import {
  countActiveTasksByQueue,
  countCallbackDeliveries,
  countJobsByState,
  countTasksByState,
  countWaitingJobs,
  pingDatabase,
  readAliveWorkers,
  readHealthSignals,
} from '../../store/queries/status.js';
import { LOCK_KEYS } from '../../store/executor.js';
import type { EngineContext } from '../context.js';
import { EngineError } from '../../errors/catalogue.js';
import type { Viewer } from '../jobs/records.js';
import { readSettings } from '../settings.js';

/** One queue's block: alive processes serving it, items in progress, items waiting. */
export interface QueueHealth {
  workers: number;
  working: number;
  pending: number;
}

/** One check of the report: `ok`, or `degraded` with why (in the report's `reasons` too). */
export interface HealthCheck {
  status: 'ok' | 'degraded';
  [detail: string]: unknown;
}

/** The `/health` reply (seed shape, plus `status`, `reasons` and `checks`). */
export interface HealthReport {
  /** `degraded` when any check is; `reasons` then says why, one line per problem. */
  status: 'ok' | 'degraded';
  reasons: string[];
  /**
   * `database` (round trip in ms), `workers` (per task queue with work: ready tasks and live
   * workers), `controller` (live controller processes), `scheduler` (whether a scheduler holds
   * the leader lock, and live scheduler processes), `callbacks` (due deliveries, the oldest's wait
   * in seconds, live processes serving `callback`).
   */
  checks: Record<'database' | 'workers' | 'controller' | 'scheduler' | 'callbacks', HealthCheck>;
  version: string;
  /** `postgres` is `OK` when the database answered. `redis` is `not used`: the engine dispatches through PostgreSQL (SPEC section 2). */
  databases: { postgres: string; redis: string };
  queues: Record<string, QueueHealth>;
  tasks: { failed: number; pending: number; processed: number };
  jobs: {
    completed: number;
    failed: number;
    pending: number;
    broken: number;
    queued: number;
    started: number;
    scheduled: number;
    paused: number;
    /** Broken jobs that a rerun replaced (`rerun_by` set); counted in `broken` too. */
    superseded: number;
    /** Of those, the ones whose own run had completed failed (`failed: true`): failures since rerun. */
    superseded_failed: number;
    max_jobs: number;
    priority_slots: number;
  };
}

/** A worker registration counts as alive while it has not stopped and heart-beat within this many seconds. */
export const WORKER_ALIVE_SECONDS = 30;

/** A due callback delivery waiting longer than this (s) makes `/health` degraded. */
export const CALLBACK_BACKLOG_DEGRADED_SECONDS = 300;

/**
 * Builds the health report.
 * - queues: `controller` and `scheduler` (workers = alive processes with that role; pending =
 *   queued jobs, resp. scheduled + pending jobs), `callback` (workers = alive processes serving
 *   it; working = deliveries being sent; pending = deliveries due), `work` and every queue a loaded
 *   workflow names (workers = alive processes serving it; working = running tasks; pending = ready tasks).
 * - tasks: `failed` = failed tasks, `pending` = ready tasks, `processed` = tasks that ran to an end
 *   (succeeded or failed).
 * - jobs: counts per state, with `completed` = completed and not failed, `failed` = completed with
 *   `failed`; `broken` counts every broken job, among them `superseded` (replaced by a rerun), of
 *   which `superseded_failed` had failed: a failure that was rerun leaves `failed` for `broken`
 *   but stays counted there; `max_jobs` and `priority_slots` are the current settings.
 * An admin sees counts over every client; any other client sees task and job counts of its own
 * jobs (queue blocks describe the shared engine and are the same for everyone).
 * @throws {EngineError} `STORE_UNAVAILABLE` (503) when the database does not answer.
 */
export async function getHealth(ctx: EngineContext, viewer: Viewer): Promise<HealthReport> {
  const t0 = performance.now();
  try {
    await pingDatabase.run(ctx.db, {});
  } catch (err) {
    throw new EngineError('STORE_UNAVAILABLE', `postgres: ${(err as Error).message}`, { cause: err });
  }
  const databaseMs = Math.round((performance.now() - t0) * 10) / 10;
  const now = ctx.clock.now();
  const client = viewer.admin ? null : viewer.client;
  const [jobCounts, taskCounts, workers, queueTasks, deliveries, settings, leader] = await Promise.all([
    countJobsByState.rows(ctx.db, { client }),
    countTasksByState.rows(ctx.db, { client }),
    readAliveWorkers.rows(ctx.db, { now, aliveSeconds: WORKER_ALIVE_SECONDS }),
    countActiveTasksByQueue.rows(ctx.db, {}),
    countCallbackDeliveries.first(ctx.db, { now }),
    readSettings(ctx.db),
    readHealthSignals.first(ctx.db, { now, key: LOCK_KEYS.schedulerLeader }),
  ]);
  const jobs = jobsByState(jobCounts);
  // Job counts for the controller/scheduler blocks are engine-wide, like every queue block.
  const waiting = viewer.admin
    ? { queued: jobs.queued, due: jobs.scheduled + jobs.pending }
    : await countWaitingJobs.first(ctx.db, {});
  const taskBy = (state: string) => taskCounts.find((r) => r.state === state)?.n ?? 0;
  const queues = queueBlocks({
    taskQueues: [...new Set(['work', ...ctx.catalog.queues()])].sort(),
    workers,
    queueTasks,
    deliveries: deliveries ?? { delivering: 0, due: 0 },
    waiting: waiting ?? { queued: 0, due: 0 },
  });
  const { checks, reasons } = healthChecks({
    databaseMs,
    queues,
    queueTasks,
    // PGlite has no advisory locks between processes (one process owns the database): its leader
    // is its live scheduler process.
    schedulerLeader:
      ctx.db.kind === 'pglite' ? (queues.scheduler?.workers ?? 0) > 0 : (leader?.scheduler_leader ?? false),
    oldestDueSeconds: Number(leader?.oldest_due_seconds ?? 0),
  });
  return {
    status: reasons.length > 0 ? 'degraded' : 'ok',
    reasons,
    checks,
    version: ctx.version,
    databases: { postgres: 'OK', redis: 'not used' },
    queues,
    tasks: {
      failed: taskBy('failed'),
      pending: taskBy('ready'),
      processed: taskBy('succeeded') + taskBy('failed'),
    },
    jobs: { ...jobs, max_jobs: settings.known.max_jobs, priority_slots: settings.known.priority_slots },
  };
}

/**
 * Job counts per state, `completed` split into completed and failed, and the broken jobs a rerun
 * superseded (with those of them that had failed). Pure; exported for its unit test.
 */
export function jobsByState(
  counts: readonly { queue_state: string; failed: boolean; superseded: boolean; n: number }[],
): Omit<HealthReport['jobs'], 'max_jobs' | 'priority_slots'> {
  const states = {
    completed: 0,
    failed: 0,
    pending: 0,
    broken: 0,
    queued: 0,
    started: 0,
    scheduled: 0,
    paused: 0,
  };
  let superseded = 0;
  let supersededFailed = 0;
  for (const r of counts) {
    if (r.queue_state === 'completed') {
      if (r.failed) states.failed += r.n;
      else states.completed += r.n;
    } else if (r.queue_state in states) states[r.queue_state as keyof typeof states] += r.n;
    if (r.queue_state === 'broken' && r.superseded) {
      superseded += r.n;
      if (r.failed) supersededFailed += r.n;
    }
  }
  return { ...states, superseded, superseded_failed: supersededFailed };
}

/**
 * The checks of the report and the reasons it is degraded. Pure; exported for its unit test.
 * - workers: a queue with ready tasks (any queue, not only the catalog's) and no live worker
 *   serving it is degraded: its work cannot start.
 * - controller: no live process with the controller role means no job is admitted.
 * - scheduler: no session holds the scheduler leader lock means no schedules, due jobs or stall
 *   recovery.
 * - callbacks: due deliveries with no live process serving `callback`, or a due delivery waiting
 *   more than {@link CALLBACK_BACKLOG_DEGRADED_SECONDS}.
 */
export function healthChecks(c: {
  databaseMs: number;
  queues: Record<string, QueueHealth>;
  queueTasks: readonly { queue: string; state: string; n: number }[];
  schedulerLeader: boolean;
  oldestDueSeconds: number;
}): { checks: HealthReport['checks']; reasons: string[] } {
  const reasons: string[] = [];
  const stranded: Record<string, { ready: number; workers: number }> = {};
  const perQueue: Record<string, { ready: number; workers: number }> = {};
  for (const r of c.queueTasks) {
    if (r.state !== 'ready' || r.n === 0) continue;
    const workers = c.queues[r.queue]?.workers ?? 0;
    perQueue[r.queue] = { ready: r.n, workers };
    if (workers === 0) {
      stranded[r.queue] = perQueue[r.queue]!;
      reasons.push(`queue "${r.queue}" has ${r.n} ready task(s) and no live worker`);
    }
  }
  const controllers = c.queues.controller?.workers ?? 0;
  if (controllers === 0) reasons.push('no live controller process: queued jobs are not admitted');
  const schedulers = c.queues.scheduler?.workers ?? 0;
  if (!c.schedulerLeader)
    reasons.push('no scheduler leader: schedules, due jobs and stall recovery do not run');
  const cb = c.queues.callback ?? { workers: 0, working: 0, pending: 0 };
  const cbReasons: string[] = [];
  if (cb.pending > 0 && cb.workers === 0)
    cbReasons.push(`${cb.pending} callback deliveries are due and no live process sends callbacks`);
  if (c.oldestDueSeconds > CALLBACK_BACKLOG_DEGRADED_SECONDS)
    cbReasons.push(
      `the oldest due callback delivery has waited ${Math.round(c.oldestDueSeconds)} s (more than ${CALLBACK_BACKLOG_DEGRADED_SECONDS} s)`,
    );
  reasons.push(...cbReasons);
  const st = (bad: boolean): 'ok' | 'degraded' => (bad ? 'degraded' : 'ok');
  return {
    reasons,
    checks: {
      database: { status: 'ok', round_trip_ms: c.databaseMs },
      workers: { status: st(Object.keys(stranded).length > 0), queues: perQueue },
      controller: { status: st(controllers === 0), live: controllers },
      scheduler: { status: st(!c.schedulerLeader), leader: c.schedulerLeader, live: schedulers },
      callbacks: {
        status: st(cbReasons.length > 0),
        due: cb.pending,
        delivering: cb.working,
        oldest_due_seconds: Math.round(c.oldestDueSeconds * 10) / 10,
        live: cb.workers,
      },
    },
  };
}

/** The queue blocks of the report (see {@link getHealth}). Pure. */
function queueBlocks(c: {
  taskQueues: readonly string[];
  workers: readonly { queues: string[]; roles: string[] }[];
  queueTasks: readonly { queue: string; state: string; n: number }[];
  deliveries: { delivering: number; due: number };
  waiting: { queued: number; due: number };
}): Record<string, QueueHealth> {
  const workersWith = (pred: (w: { queues: string[]; roles: string[] }) => boolean) =>
    c.workers.filter(pred).length;
  const queueCount = (queue: string, state: string) =>
    c.queueTasks.find((r) => r.queue === queue && r.state === state)?.n ?? 0;
  const queues: Record<string, QueueHealth> = {
    controller: {
      workers: workersWith((w) => w.roles.includes('controller')),
      working: 0,
      pending: c.waiting.queued,
    },
    scheduler: {
      workers: workersWith((w) => w.roles.includes('scheduler')),
      working: 0,
      pending: c.waiting.due,
    },
    callback: {
      workers: workersWith((w) => w.queues.includes('callback')),
      working: c.deliveries.delivering,
      pending: c.deliveries.due,
    },
  };
  for (const q of c.taskQueues) {
    queues[q] = {
      workers: workersWith((w) => w.queues.includes(q)),
      working: queueCount(q, 'running'),
      pending: queueCount(q, 'ready'),
    };
  }
  return queues;
}
