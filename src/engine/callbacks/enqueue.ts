/**
 * Putting callbacks in the outbox (SPEC section 7). Called inside the transaction that records
 * the event, so a callback exists exactly when its event does. Delivery is the callback
 * dispatcher's work (`dispatcher.ts`), on the `callback` queue.
 */
import type { Queryable } from '../../store/executor.js';
import { CHANNELS } from '../signals.js';

/** The targets of a job: every string URL in `parameters.rest_endpoints`. */
export function callbackTargets(parameters: Record<string, unknown>): string[] {
  const list = parameters.rest_endpoints;
  if (!Array.isArray(list)) return [];
  return [...new Set(list.filter((u): u is string => typeof u === 'string' && /^https?:\/\//i.test(u)))];
}

/**
 * SQL form of {@link callbackTargets}, for statements that enqueue callbacks themselves: a
 * subquery of columns `url` and `n` (its first position; order by `n` for the targets' order)
 * over the jsonb expression `parameters` (fixed SQL text from this codebase, never request
 * input). Keep both in step.
 */
export function callbackTargetsSql(parameters: string): string {
  return `(SELECT e.url, e.n FROM (
             SELECT x.v #>> '{}' AS url, min(x.n) AS n
               FROM jsonb_array_elements(CASE WHEN jsonb_typeof(${parameters} -> 'rest_endpoints') = 'array'
                                              THEN ${parameters} -> 'rest_endpoints' ELSE '[]'::jsonb END)
                    WITH ORDINALITY AS x(v, n)
              WHERE jsonb_typeof(x.v) = 'string' AND (x.v #>> '{}') ~* '^https?://'
              GROUP BY 1) AS e
          ORDER BY e.n)`;
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
  [output: string]: unknown;
}

/** Enqueues a task event for every target. */
export async function enqueueTaskEvent(q: Queryable, targets: string[], body: TaskEventBody): Promise<void> {
  if (targets.length === 0) return;
  // Rows and the dispatchers' wake-up in one round trip.
  await q.query(
    `WITH i AS (INSERT INTO callback_deliveries (job_id, task_id, kind, event, target_url, body)
                SELECT $1, $2, 'task', $3, t, $4::jsonb FROM unnest($5::text[]) AS t)
     SELECT pg_notify($6, $1::text)`,
    [body.job_id, body.task_id, body.event, JSON.stringify(body), targets, CHANNELS.callbacks],
  );
}

/**
 * Enqueues the job-end callback for every target, once per job and target (a unique index makes a
 * second call a no-op, so a replayed finish can never send it twice).
 * @returns how many deliveries were newly enqueued.
 */
export async function enqueueJobEnd(q: Queryable, targets: string[], body: JobEndBody): Promise<number> {
  if (targets.length === 0) return 0;
  const { rows } = await q.query<{ n: number }>(
    `WITH i AS (INSERT INTO callback_deliveries (job_id, task_id, kind, event, target_url, body)
                SELECT $1, 0, 'job', $2, t, $3::jsonb FROM unnest($4::text[]) AS t
                ON CONFLICT (job_id, target_url) WHERE kind = 'job' DO NOTHING
                RETURNING 1),
          n AS (SELECT pg_notify($5, $1::text) FROM (SELECT 1 FROM i LIMIT 1) AS any_row)
     SELECT (SELECT count(*) FROM i)::int AS n, (SELECT count(*) FROM n) AS notified`,
    [body.job_id, body.status, JSON.stringify(body), targets, CHANNELS.callbacks],
  );
  return Number(rows[0]?.n ?? 0);
}
