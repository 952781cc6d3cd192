/**
 * Statements of the `workers` table (one row per engine process, with its heartbeat) and the
 * attempt heartbeats a worker pool sends for the attempts it runs. Every time in them is the
 * `$now` parameter (the engine's clock), never SQL `now()`.
 */
import { defineQuery } from './define-query.js';

/**
 * Registers (or re-registers) engine process `$id`: its queues, slots, host, pid and roles, a
 * fresh heartbeat and no `stopped_at`. Upsert on the primary key; takes the row's lock.
 */
export const registerWorker = defineQuery<{
  id: string;
  queues: string[];
  concurrency: number;
  host: string;
  pid: number;
  roles: string[];
  now: Date;
}>(
  'register-worker',
  `INSERT INTO workers (id, queues, concurrency, host, pid, roles, started_at, heartbeat_at)
   VALUES ($id, $queues::text[], $concurrency, $host, $pid, $roles::text[], $now::timestamptz, $now::timestamptz)
   ON CONFLICT (id) DO UPDATE SET queues = EXCLUDED.queues, concurrency = EXCLUDED.concurrency,
          roles = EXCLUDED.roles, heartbeat_at = $now::timestamptz, stopped_at = NULL`,
);

/** The process heartbeat: sets `heartbeat_at` of worker `$id` to `$now`. Locks that row. */
export const touchWorkerHeartbeat = defineQuery<{ id: string; now: Date }>(
  'touch-worker-heartbeat',
  `UPDATE workers SET heartbeat_at = $now::timestamptz WHERE id = $id`,
);

/** Records the queues worker `$id` takes now (after a workflow reload). Locks that row. */
export const setWorkerQueues = defineQuery<{ id: string; queues: string[] }>(
  'set-worker-queues',
  `UPDATE workers SET queues = $queues::text[] WHERE id = $id`,
);

/** Marks worker `$id` stopped at `$now` (its last heartbeat too). Locks that row. */
export const markWorkerStopped = defineQuery<{ id: string; now: Date }>(
  'mark-worker-stopped',
  `UPDATE workers SET stopped_at = $now::timestamptz, heartbeat_at = $now::timestamptz WHERE id = $id`,
);

/**
 * Marks every other worker row not yet stopped as stopped at `$now` (an embedded database has one
 * process at a time, so such rows are left over from a process that died). Locks those rows.
 */
export const markOtherWorkersStopped = defineQuery<{ id: string; now: Date }>(
  'mark-other-workers-stopped',
  `UPDATE workers SET stopped_at = $now::timestamptz WHERE stopped_at IS NULL AND id <> $id`,
);

/**
 * Attempt heartbeat: sets `heartbeat_at = $now` on those of `$attemptIds` still `running`.
 * `FOR UPDATE SKIP LOCKED`: a row locked by a result being written is not waited for (waiting
 * could deadlock with a batch of results); {@link selectLiveAttempts} then checks every attempt
 * without a lock. Takes no state edge.
 */
export const touchAttemptHeartbeats = defineQuery<{ attemptIds: number[]; now: Date }>(
  'touch-attempt-heartbeats',
  `UPDATE attempts a SET heartbeat_at = $now::timestamptz
    WHERE a.id IN (SELECT id FROM attempts WHERE id = ANY($attemptIds::bigint[]) AND state = 'running'
                    ORDER BY id FOR UPDATE SKIP LOCKED)`,
);

/**
 * Those of `$attemptIds` that are still live: the attempt `running` and its task `running` it
 * (`current_attempt_id`). Reads only, takes no locks.
 */
export const selectLiveAttempts = defineQuery<{ attemptIds: number[] }, { id: number }>(
  'select-live-attempts',
  `SELECT a.id FROM attempts a JOIN tasks t ON t.id = a.task_id
    WHERE a.id = ANY($attemptIds::bigint[]) AND a.state = 'running' AND t.current_attempt_id = a.id
      AND t.state = 'running'`,
);
