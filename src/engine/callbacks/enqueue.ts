/**
 * Putting callbacks in the outbox (SPEC section 7). Called inside the transaction that records
 * the event, so a callback exists exactly when its event does. Bodies and targets are built in
 * `bodies.ts`; the task events of an attempt's end and the job end of a finish are enqueued by
 * `applyJobEffects` with the rest of the job's changes. Delivery is the callback dispatcher's
 * work (`dispatcher.ts`), on the `callback` queue.
 */
import type { Queryable } from '../../store/executor.js';
import { insertJobEndCallbacks } from '../../store/queries/job-effects.js';
import { CHANNELS } from '../signals.js';
import type { JobEndBody } from './bodies.js';

/**
 * SQL form of `callbackTargets` (bodies.ts), still used by the claim statement to build `start`
 * callbacks in SQL: a subquery of columns `url` and `n` (its first position; order by `n` for the
 * targets' order) over the jsonb expression `parameters` (fixed SQL text from this codebase, never
 * request input). To be removed once the claim takes its targets and bodies as parameters; until
 * then callback-targets.test.ts checks that both pick the same targets.
 * @deprecated compute targets with `callbackTargets` and pass them as parameters.
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

/**
 * Enqueues the job-end callback for every target, once per job and target (a unique index makes a
 * second call a no-op, so a replayed finish can never send it twice), with the dispatchers'
 * wake-up in the same round trip.
 * @returns how many deliveries were newly enqueued.
 */
export async function enqueueJobEnd(q: Queryable, targets: string[], body: JobEndBody): Promise<number> {
  if (targets.length === 0) return 0;
  const row = await insertJobEndCallbacks.first(q, {
    jobId: body.job_id,
    status: body.status,
    body: JSON.stringify(body),
    targets,
    callbacksChannel: CHANNELS.callbacks,
  });
  return Number(row?.n ?? 0);
}
