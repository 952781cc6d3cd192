/**
 * The statement of task progress: what running attempts' handlers report through
 * `ctx.progress`, written for many attempts at once (the worker pool's progress writer batches
 * them). The time in it is the `$now` parameter (the engine's clock), never SQL `now()`.
 */
import { defineQuery } from './define-query.js';

/** Parameters of {@link writeTaskProgress}: parallel arrays, one entry per attempt. */
export interface WriteTaskProgressParams {
  taskIds: number[];
  attemptIds: number[];
  /** 0 to 1 (the column's CHECK). */
  fractions: number[];
  messages: (string | null)[];
  /** JSON object text, or null. */
  details: (string | null)[];
  now: Date;
}

/**
 * Writes the progress of each `(task, attempt)`: `progress`, `progress_message`,
 * `progress_detail` and `progress_at = $now`, only while the task is `running` that very attempt
 * (`current_attempt_id`), so a superseded or ended attempt never writes over its task; and stamps
 * `heartbeat_at = $now` on each attempt whose progress was written (progress counts as a heartbeat).
 * Locks: the task and attempt rows, `SKIP LOCKED` (a row held by a result being written is passed
 * over, never waited for, so it cannot deadlock with a batch of results; its attempt is ending).
 * No state edge. The tasks' event trigger (migration 0009) records a `task` event per changed row.
 * @returns one row per attempt whose progress was written; `beat` false when its heartbeat row was locked.
 */
export const writeTaskProgress = defineQuery<WriteTaskProgressParams, { attempt_id: number; beat: boolean }>(
  'write-task-progress',
  `WITH p AS (SELECT * FROM unnest($taskIds::bigint[], $attemptIds::bigint[], $fractions::double precision[],
                                   $messages::text[], $details::text[])
                    AS p(task_id, attempt_id, fraction, message, detail)),
        lt AS (SELECT t.id FROM tasks t JOIN p ON p.task_id = t.id
                WHERE t.current_attempt_id = p.attempt_id AND t.state = 'running'
                ORDER BY t.id FOR NO KEY UPDATE OF t SKIP LOCKED),
        ut AS (UPDATE tasks t SET progress = p.fraction, progress_message = p.message,
                      progress_detail = p.detail::jsonb, progress_at = $now::timestamptz
                 FROM p
                WHERE t.id = p.task_id AND t.id IN (SELECT id FROM lt)
                  AND t.current_attempt_id = p.attempt_id AND t.state = 'running'
               RETURNING p.attempt_id),
        ua AS (UPDATE attempts a SET heartbeat_at = $now::timestamptz
                WHERE a.id IN (SELECT id FROM attempts
                                WHERE id IN (SELECT attempt_id FROM ut) AND state = 'running'
                                ORDER BY id FOR UPDATE SKIP LOCKED)
               RETURNING a.id)
   SELECT ut.attempt_id, (ua.id IS NOT NULL) AS beat FROM ut LEFT JOIN ua ON ua.id = ut.attempt_id`,
);
