/**
 * `GET /health` (seed "GET: /health"): the engine's version, the database check, one block per
 * queue, and task and job counts, all read from the database (nothing is kept in memory).
 */
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

/** The `/health` reply (seed shape). */
export interface HealthReport {
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
    max_jobs: number;
    priority_slots: number;
  };
}

/** A worker registration counts as alive while it has not stopped and heart-beat within this many seconds. */
export const WORKER_ALIVE_SECONDS = 30;

/**
 * Builds the health report.
 * - queues: `controller` and `scheduler` (workers = alive processes with that role; pending =
 *   queued jobs, resp. scheduled + pending jobs), `callback` (workers = alive processes serving
 *   it; working = deliveries being sent; pending = deliveries due), `work` and every queue a loaded
 *   workflow names (workers = alive processes serving it; working = running tasks; pending = ready tasks).
 * - tasks: `failed` = failed tasks, `pending` = ready tasks, `processed` = tasks that ran to an end
 *   (succeeded or failed).
 * - jobs: counts per state, with `completed` = completed and not failed, `failed` = completed with
 *   `failed`; `max_jobs` and `priority_slots` are the current settings.
 * An admin sees counts over every client; any other client sees task and job counts of its own
 * jobs (queue blocks describe the shared engine and are the same for everyone).
 * @throws {EngineError} `STORE_UNAVAILABLE` (503) when the database does not answer.
 */
export async function getHealth(ctx: EngineContext, viewer: Viewer): Promise<HealthReport> {
  try {
    await ctx.db.query('SELECT 1');
  } catch (err) {
    throw new EngineError('STORE_UNAVAILABLE', `postgres: ${(err as Error).message}`, { cause: err });
  }
  const now = ctx.clock.now();
  const scope = viewer.admin ? null : viewer.client;
  const taskQueues = [...new Set(['work', ...ctx.catalog.queues()])].sort();

  const [
    { rows: jobCounts },
    { rows: taskCounts },
    { rows: workerRows },
    { rows: queueTasks },
    { rows: deliveries },
    settings,
  ] = await Promise.all([
    ctx.db.query<{ queue_state: string; failed: boolean; n: number }>(
      `SELECT queue_state, failed, count(*)::int AS n FROM jobs
         WHERE ($1::text IS NULL OR client = $1) GROUP BY queue_state, failed`,
      [scope],
    ),
    ctx.db.query<{ state: string; n: number }>(
      `SELECT t.state, count(*)::int AS n FROM tasks t
         WHERE t.state IN ('failed', 'ready', 'succeeded')
           AND ($1::text IS NULL OR t.job_id IN (SELECT id FROM jobs WHERE client = $1))
         GROUP BY t.state`,
      [scope],
    ),
    ctx.db.query<{ queues: string[]; roles: string[] }>(
      `SELECT queues, roles FROM workers
         WHERE stopped_at IS NULL AND heartbeat_at > $1::timestamptz - make_interval(secs => $2)`,
      [now, WORKER_ALIVE_SECONDS],
    ),
    ctx.db.query<{ queue: string; state: string; n: number }>(
      `SELECT queue, state, count(*)::int AS n FROM tasks WHERE state IN ('ready', 'running') GROUP BY queue, state`,
    ),
    ctx.db.query<{ delivering: number; due: number }>(
      `SELECT count(*) FILTER (WHERE state = 'delivering')::int AS delivering,
                count(*) FILTER (WHERE state = 'pending' AND next_attempt_at <= $1)::int AS due
         FROM callback_deliveries WHERE state IN ('pending', 'delivering')`,
      [now],
    ),
    readSettings(ctx.db),
  ]);

  const jobs = {
    completed: 0,
    failed: 0,
    pending: 0,
    broken: 0,
    queued: 0,
    started: 0,
    scheduled: 0,
    paused: 0,
  };
  for (const r of jobCounts) {
    if (r.queue_state === 'completed') {
      if (r.failed) jobs.failed += r.n;
      else jobs.completed += r.n;
    } else if (r.queue_state in jobs) jobs[r.queue_state as keyof typeof jobs] += r.n;
  }
  const taskBy = (state: string) => taskCounts.find((r) => r.state === state)?.n ?? 0;
  const workersWith = (pred: (w: { queues: string[]; roles: string[] }) => boolean) =>
    workerRows.filter(pred).length;
  const queueCount = (queue: string, state: string) =>
    queueTasks.find((r) => r.queue === queue && r.state === state)?.n ?? 0;
  // Job counts for the controller/scheduler blocks are engine-wide, like every queue block.
  const { rows: waiting } = viewer.admin
    ? { rows: [{ queued: jobs.queued, due: jobs.scheduled + jobs.pending }] }
    : await ctx.db.query<{ queued: number; due: number }>(
        `SELECT count(*) FILTER (WHERE queue_state = 'queued')::int AS queued,
                count(*) FILTER (WHERE queue_state IN ('scheduled', 'pending'))::int AS due
         FROM jobs WHERE queue_state IN ('queued', 'scheduled', 'pending')`,
      );

  const queues: Record<string, QueueHealth> = {
    controller: {
      workers: workersWith((w) => w.roles.includes('controller')),
      working: 0,
      pending: waiting[0]?.queued ?? 0,
    },
    scheduler: {
      workers: workersWith((w) => w.roles.includes('scheduler')),
      working: 0,
      pending: waiting[0]?.due ?? 0,
    },
    callback: {
      workers: workersWith((w) => w.queues.includes('callback')),
      working: deliveries[0]?.delivering ?? 0,
      pending: deliveries[0]?.due ?? 0,
    },
  };
  for (const q of taskQueues) {
    queues[q] = {
      workers: workersWith((w) => w.queues.includes(q)),
      working: queueCount(q, 'running'),
      pending: queueCount(q, 'ready'),
    };
  }

  return {
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
