/**
 * Statements of callback delivery (SPEC section 7): claiming due deliveries of the
 * `callback_deliveries` outbox, finding when the next one falls due, and recording the outcome of
 * an attempt. The dispatcher (`src/engine/callbacks/dispatcher.ts`) is their only caller.
 *
 * Delivery states: `pending` → `delivering` (claim, with a lease) → `delivered` | `pending` (retry
 * later) | `failed` (given up); `delivering` → `pending` also when a dispatcher stops mid-request
 * (the attempt is not counted), and `delivering` → `delivering` when a lease expired and another
 * claim takes the delivery over. Every outcome statement has the claimed `attempts` in its WHERE:
 * a statement that updates nothing is an outcome whose lease was lost.
 */
import { defineQuery } from './define-query.js';

// The targets that have undelivered deliveries, one index probe each (a loose index scan over
// callback_deliveries_target_due_idx), leaving out those this process has at their cap
// ($fullTargets). A fixed fragment shared by the two statements below; it binds no request value.
const OPEN_TARGETS = `
  targets AS (
    (SELECT target_url FROM callback_deliveries
      WHERE state IN ('pending', 'delivering') ORDER BY target_url LIMIT 1)
    UNION ALL
    SELECT (SELECT c.target_url FROM callback_deliveries c
             WHERE c.state IN ('pending', 'delivering') AND c.target_url > t.target_url
             ORDER BY c.target_url LIMIT 1)
      FROM targets t WHERE t.target_url IS NOT NULL
  ), open_targets AS (
    SELECT target_url FROM targets
     WHERE target_url IS NOT NULL AND NOT (target_url = ANY($fullTargets::text[]))
  )`;

// A delivery `d` is a head when no earlier delivery of its (job, target) is undelivered
// (callback_deliveries_chain_open_idx answers that with one probe).
const IS_HEAD = `NOT EXISTS (
      SELECT 1 FROM callback_deliveries e
       WHERE e.job_id = d.job_id AND e.target_url = d.target_url AND e.id < d.id
         AND e.state IN ('pending', 'delivering'))`;

/** A delivery as {@link claimDueDeliveries} returns it, with what signing and logging need. */
export interface ClaimedDeliveryRow {
  id: number;
  job_id: number;
  task_id: number;
  kind: 'task' | 'job';
  event: string;
  target_url: string;
  body: Record<string, unknown>;
  /** Attempts including this one (1-based); the outcome statements match on it. */
  attempts: number;
  client: string;
  signing_secret: string | null;
  /** The client's previous signing secret while a rotation overlaps, else null. */
  previous_signing_secret: string | null;
  definition_source: string;
  /**
   * The job span's stored ids (`job_traces`, null when the job has no trace): the delivery's
   * `traceparent` when tracing is on (docs/tracing.md), read with the claim instead of per delivery.
   */
  trace_id: string | null;
  span_id: string | null;
  trace_flags: number | null;
}

/**
 * Claims due deliveries: per open target, its first due heads in due order, as many as this
 * process may still start for it (`perTarget` minus what it has in flight, given as the parallel
 * arrays `busyUrls`/`busyCounts`), then the most overdue of those, at most `limit`. Each target is
 * walked only as far as those heads, so a claim costs about the same however long the backlog is,
 * and a backlog for one dead endpoint cannot crowd the other targets out.
 *
 * Locks: `FOR UPDATE OF d SKIP LOCKED` on the claimed deliveries; it re-checks state and due time
 * on the latest row version, so two dispatchers never claim the same delivery, and a head claimed
 * elsewhere (its `next_attempt_at` moved to its lease expiry) is not claimed again until that
 * lease expires. Edges: `pending` → `delivering`, and `delivering` (lease expired) → `delivering`;
 * `attempts` + 1, `locked_until` = `next_attempt_at` = `now` + `leaseSeconds`. Each row carries its
 * job's client, signing secrets and stored trace ids (`job_traces` by primary key; none with
 * tracing off, an empty table then).
 */
export const claimDueDeliveries = defineQuery<
  {
    now: Date;
    limit: number;
    leaseSeconds: number;
    busyUrls: string[];
    busyCounts: number[];
    perTarget: number;
    fullTargets: string[];
  },
  ClaimedDeliveryRow
>(
  'claim-due-deliveries',
  `
WITH RECURSIVE ${OPEN_TARGETS}, heads AS (
  SELECT h.id, h.next_attempt_at
    FROM open_targets t
    LEFT JOIN unnest($busyUrls::text[], $busyCounts::int[]) AS busy(url, n) ON busy.url = t.target_url
    CROSS JOIN LATERAL (
      SELECT d.id, d.next_attempt_at, row_number() OVER (ORDER BY d.next_attempt_at, d.id) AS rn
        FROM (SELECT d.id, d.next_attempt_at FROM callback_deliveries d
               WHERE d.target_url = t.target_url AND d.state IN ('pending', 'delivering')
                 AND d.next_attempt_at <= $now AND ${IS_HEAD}
               ORDER BY d.next_attempt_at, d.id
               LIMIT $perTarget) AS d
    ) AS h
   WHERE h.rn <= $perTarget::int - COALESCE(busy.n, 0)
), due AS (
  SELECT d.id, d.job_id
  FROM callback_deliveries d
  JOIN heads h ON h.id = d.id
  WHERE d.state IN ('pending', 'delivering') AND d.next_attempt_at <= $now
  ORDER BY h.next_attempt_at, d.id
  LIMIT $limit
  FOR UPDATE OF d SKIP LOCKED
)
UPDATE callback_deliveries c
SET state = 'delivering',
    attempts = c.attempts + 1,
    locked_until = $now::timestamptz + make_interval(secs => $leaseSeconds::double precision),
    next_attempt_at = $now::timestamptz + make_interval(secs => $leaseSeconds::double precision)
FROM due
JOIN jobs j ON j.id = due.job_id
LEFT JOIN clients cl ON cl.name = j.client
LEFT JOIN job_traces jt ON jt.job_id = due.job_id
WHERE c.id = due.id
RETURNING c.id, c.job_id, c.task_id, c.kind, c.event, c.target_url, c.body, c.attempts,
          j.client, cl.signing_secret, cl.previous_signing_secret, j.definition_source,
          jt.trace_id, jt.span_id, jt.trace_flags`,
);

/**
 * When the next head becomes due (a pending retry, or the lease of a delivery in flight): per open
 * target, its first head in due order; null when nothing is undelivered. Targets this process has
 * at their cap (`fullTargets`) are left out: a request of theirs ending wakes the dispatcher.
 * Read only; no locks.
 */
export const findNextDeliveryDue = defineQuery<{ fullTargets: string[] }, { next: Date | null }>(
  'find-next-delivery-due',
  `
WITH RECURSIVE ${OPEN_TARGETS}
SELECT min(h.next_attempt_at) AS next
  FROM open_targets t
  CROSS JOIN LATERAL (
    SELECT d.next_attempt_at FROM callback_deliveries d
     WHERE d.target_url = t.target_url AND d.state IN ('pending', 'delivering') AND ${IS_HEAD}
     ORDER BY d.next_attempt_at, d.id
     LIMIT 1) AS h`,
);

/** Parameters that identify one claimed attempt of a delivery. */
interface ClaimedAttempt {
  id: number;
  attempts: number;
}

/**
 * Hands a delivery back untouched after its request was cut by shutdown, so the next dispatcher
 * sends it at once: the attempt is not counted. Row lock on the delivery. Edge: `delivering` →
 * `pending` (only the claim of `attempts`).
 */
export const handBackDelivery = defineQuery<ClaimedAttempt & { now: Date }>(
  'hand-back-delivery',
  `UPDATE callback_deliveries
   SET state = 'pending', attempts = attempts - 1, next_attempt_at = $now, locked_until = NULL
   WHERE id = $id AND state = 'delivering' AND attempts = $attempts`,
);

/**
 * Records a 2xx answer. Row lock on the delivery. Edge: `delivering` → `delivered` (only the claim
 * of `attempts`), `delivered_at` = `now`.
 */
export const markDeliveryDelivered = defineQuery<ClaimedAttempt & { now: Date; status: number | null }>(
  'mark-delivery-delivered',
  `UPDATE callback_deliveries
   SET state = 'delivered', delivered_at = $now, last_status = $status, last_error = NULL, locked_until = NULL
   WHERE id = $id AND state = 'delivering' AND attempts = $attempts`,
);

/**
 * Records a failed attempt that is to be retried at `nextAttemptAt`. Row lock on the delivery.
 * Edge: `delivering` → `pending` (only the claim of `attempts`).
 */
export const scheduleDeliveryRetry = defineQuery<
  ClaimedAttempt & { nextAttemptAt: Date; status: number | null; lastError: string | null }
>(
  'schedule-delivery-retry',
  `UPDATE callback_deliveries
   SET state = 'pending', next_attempt_at = $nextAttemptAt, locked_until = NULL, last_status = $status, last_error = $lastError
   WHERE id = $id AND state = 'delivering' AND attempts = $attempts`,
);

/**
 * Records a failed attempt with no retries left: the delivery is given up and stops blocking the
 * ones after it. Row lock on the delivery. Edge: `delivering` → `failed` (only the claim of
 * `attempts`).
 */
export const markDeliveryFailed = defineQuery<
  ClaimedAttempt & { status: number | null; lastError: string | null }
>(
  'mark-delivery-failed',
  `UPDATE callback_deliveries
   SET state = 'failed', locked_until = NULL, last_status = $status, last_error = $lastError
   WHERE id = $id AND state = 'delivering' AND attempts = $attempts`,
);

/**
 * Whether a later pending delivery of the same job waits for the same target (it has just become
 * the head, so the dispatchers are worth waking). Read only; no locks.
 */
export const hasPendingSuccessor = defineQuery<
  { jobId: number; targetUrl: string; id: number },
  { more: boolean }
>(
  'has-pending-successor',
  `SELECT EXISTS (
     SELECT 1 FROM callback_deliveries
     WHERE job_id = $jobId AND target_url = $targetUrl AND id > $id AND state = 'pending') AS more`,
);
