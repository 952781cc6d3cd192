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
