/**
 * The callback dispatcher (SPEC section 7): delivers the rows of the `callback_deliveries` outbox
 * by HTTP POST, on the `callback` queue, never inside a task worker.
 *
 * Guarantees and their mechanics:
 * - **Order per target.** Only the earliest undelivered delivery (state `pending` or `delivering`)
 *   of each (job, target URL) may be claimed, so a job's callbacks reach one target in the order
 *   they were enqueued. A delivery that is given up (`failed`) stops blocking the ones after it.
 * - **Crash safety.** A claim sets `state = 'delivering'` with a lease (`locked_until`, mirrored in
 *   `next_attempt_at`); a dispatcher that dies mid-request leaves the lease to expire and the
 *   delivery is claimed again. Delivery is therefore at-least-once: a crash after the receiver
 *   answered 2xx but before the result is committed sends that callback again (receivers can drop
 *   duplicates by the `X-Task-Engine-Delivery` header). The window is the one short UPDATE after
 *   the response.
 * - **Isolation.** At most {@link CallbackDispatcherOptions.concurrency} requests are in flight per
 *   process and at most {@link CallbackDispatcherOptions.perTargetConcurrency} per target URL, each
 *   bounded by a 10 s timeout, so a slow or dead endpoint holds only its own share and never a
 *   task worker; a failing callback never fails a job.
 * - **Retries.** A non-2xx answer (redirects are not followed and count as failures), a network
 *   error or a timeout is retried after 1 s, 2 s, 4 s … (capped at 5 min, 10 % jitter) until
 *   `callback_retry_limit` retries are used; then the delivery is `failed` (given up).
 * - **Wake-ups.** LISTEN on `CHANNELS.callbacks` plus one timer for the next due retry or lease
 *   expiry; no fixed polling while work is ready. A 30 s safety timer covers lost notifications.
 */
import type { EngineContext, Service } from '../context.js';
import type { Queryable } from '../../store/executor.js';
import { CHANNELS, notify } from '../signals.js';
import { readSettings } from '../settings.js';
import { appendLog, SEVERITY } from '../jobs/job-log.js';
import { callbackBackoffMs, shouldRetryCallback } from './backoff.js';
import { redactUrl } from './redact-url.js';
import {
  ATTEMPT_HEADER,
  DELIVERY_HEADER,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  signCallbackBody,
} from './signing.js';

/** Tuning of {@link createCallbackDispatcher}; every field has a production default. */
export interface CallbackDispatcherOptions {
  /** Requests in flight at once in this process. Default 8. */
  concurrency?: number;
  /** Requests in flight at once to one target URL in this process. Default 2. */
  perTargetConcurrency?: number;
  /** Timeout of one request, in milliseconds. Default 10 000 (SPEC section 7). */
  requestTimeoutMs?: number;
  /** Lease of a claimed delivery, in milliseconds; must exceed the request timeout. Default 30 000. */
  leaseMs?: number;
  /** Longest sleep without a notification, in milliseconds (lost-notification safety net). Default 30 000. */
  safetyIntervalMs?: number;
  /** Source of backoff jitter in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/** A claimed delivery, as the claim statement returns it. */
interface ClaimedDelivery {
  id: number;
  job_id: number;
  task_id: number;
  kind: 'task' | 'job';
  event: string;
  target_url: string;
  body: Record<string, unknown>;
  attempts: number;
  client: string;
  signing_secret: string | null;
  definition_source: string;
}

/** Outcome of one HTTP attempt. */
interface AttemptOutcome {
  status: number | null;
  error: string | null;
  durationMs: number;
}

// The targets that have undelivered deliveries, one index probe each (a loose index scan over
// callback_deliveries_target_due_idx), leaving out those this process has at their cap ($FULL).
const OPEN_TARGETS_SQL = (full: string): string => `
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
     WHERE target_url IS NOT NULL AND NOT (target_url = ANY(${full}::text[]))
  )`;

// A delivery is a head when no earlier delivery of its (job, target) is undelivered
// (callback_deliveries_chain_open_idx answers that with one probe).
const IS_HEAD = `NOT EXISTS (
      SELECT 1 FROM callback_deliveries e
       WHERE e.job_id = d.job_id AND e.target_url = d.target_url AND e.id < d.id
         AND e.state IN ('pending', 'delivering'))`;

// Claims due deliveries: per open target, its first due heads in due order, as many as this
// process may still start for it ($6 minus what it has in flight, passed as the arrays $4/$5),
// then the most overdue of those, at most $2. Each target is walked only as far as those heads,
// so a claim costs about the same however long the backlog is, and a backlog for one dead
// endpoint cannot crowd the other targets out. `FOR UPDATE OF d SKIP LOCKED` re-checks state and
// due time on the latest row version, so two dispatchers never claim the same delivery, and a
// head claimed elsewhere (its next_attempt_at moved to its lease expiry) is not claimed again
// until that lease expires.
const CLAIM_SQL = `
WITH RECURSIVE ${OPEN_TARGETS_SQL('$7')}, heads AS (
  SELECT h.id, h.next_attempt_at
    FROM open_targets t
    LEFT JOIN unnest($4::text[], $5::int[]) AS busy(url, n) ON busy.url = t.target_url
    CROSS JOIN LATERAL (
      SELECT d.id, d.next_attempt_at, row_number() OVER (ORDER BY d.next_attempt_at, d.id) AS rn
        FROM (SELECT d.id, d.next_attempt_at FROM callback_deliveries d
               WHERE d.target_url = t.target_url AND d.state IN ('pending', 'delivering')
                 AND d.next_attempt_at <= $1 AND ${IS_HEAD}
               ORDER BY d.next_attempt_at, d.id
               LIMIT $6) AS d
    ) AS h
   WHERE h.rn <= $6::int - COALESCE(busy.n, 0)
), due AS (
  SELECT d.id, d.job_id
  FROM callback_deliveries d
  JOIN heads h ON h.id = d.id
  WHERE d.state IN ('pending', 'delivering') AND d.next_attempt_at <= $1
  ORDER BY h.next_attempt_at, d.id
  LIMIT $2
  FOR UPDATE OF d SKIP LOCKED
)
UPDATE callback_deliveries c
SET state = 'delivering',
    attempts = c.attempts + 1,
    locked_until = $1::timestamptz + make_interval(secs => $3::double precision),
    next_attempt_at = $1::timestamptz + make_interval(secs => $3::double precision)
FROM due
JOIN jobs j ON j.id = due.job_id
LEFT JOIN clients cl ON cl.name = j.client
WHERE c.id = due.id
RETURNING c.id, c.job_id, c.task_id, c.kind, c.event, c.target_url, c.body, c.attempts,
          j.client, cl.signing_secret, j.definition_source`;

// When the next head becomes due (a pending retry, or the lease of a delivery in flight): per
// open target, its first head in due order. Targets this process has at their cap ($1) are left
// out: a request of theirs ending wakes the pump.
const NEXT_DUE_SQL = `
WITH RECURSIVE ${OPEN_TARGETS_SQL('$1')}
SELECT min(h.next_attempt_at) AS next
  FROM open_targets t
  CROSS JOIN LATERAL (
    SELECT d.next_attempt_at FROM callback_deliveries d
     WHERE d.target_url = t.target_url AND d.state IN ('pending', 'delivering') AND ${IS_HEAD}
     ORDER BY d.next_attempt_at, d.id
     LIMIT 1) AS h`;

/**
 * Creates the callback dispatcher of this process. `start()` subscribes to `CHANNELS.callbacks`
 * and delivers what is due; `stop()` stops claiming, aborts requests in flight and puts their
 * deliveries back to `pending` (the attempt is not counted), then resolves.
 * @param ctx - engine context (`db`, `clock`, `logger`, `version`).
 * @param options - tuning; defaults follow SPEC section 7.
 */
export function createCallbackDispatcher(
  ctx: EngineContext,
  options: CallbackDispatcherOptions = {},
): Service {
  const concurrency = options.concurrency ?? 8;
  const perTarget = options.perTargetConcurrency ?? 2;
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const leaseMs = Math.max(options.leaseMs ?? 30_000, timeoutMs + 5_000);
  const safetyMs = options.safetyIntervalMs ?? 30_000;
  const random = options.random ?? Math.random;
  const log = ctx.logger.child({ service: 'callback-dispatcher' });

  const inFlight = new Map<number, { target: string; done: Promise<void> }>();
  const stopController = new AbortController();
  let running = false;
  let stopping = false;
  let unlisten: (() => Promise<void>) | null = null;
  let timer: NodeJS.Timeout | null = null;
  let pumping: Promise<void> | null = null;
  let pumpAgain = false;

  const busyTargets = (): { urls: string[]; counts: number[]; full: string[] } => {
    const counts = new Map<string, number>();
    for (const f of inFlight.values()) counts.set(f.target, (counts.get(f.target) ?? 0) + 1);
    const full = [...counts].filter(([, n]) => n >= perTarget).map(([url]) => url);
    return { urls: [...counts.keys()], counts: [...counts.values()], full };
  };

  const setTimer = (ms: number): void => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (stopping) return;
    timer = setTimeout(
      () => {
        timer = null;
        wake();
      },
      Math.max(5, Math.min(ms, safetyMs)),
    );
  };

  /** Requests a pump; coalesces requests that arrive while one runs. */
  const wake = (): void => {
    if (stopping || !running) return;
    if (pumping) {
      pumpAgain = true;
      return;
    }
    pumping = pump().finally(() => {
      pumping = null;
      if (pumpAgain && !stopping) {
        pumpAgain = false;
        wake();
      }
    });
  };

  const pump = async (): Promise<void> => {
    let claimedAll = true;
    try {
      while (!stopping) {
        const free = concurrency - inFlight.size;
        if (free <= 0) break;
        const busy = busyTargets();
        const now = ctx.clock.now();
        const { rows } = await ctx.db.query<ClaimedDelivery>(CLAIM_SQL, [
          now,
          free,
          leaseMs / 1000,
          busy.urls,
          busy.counts,
          perTarget,
          busy.full,
        ]);
        for (const row of rows) startDelivery(row);
        if (rows.length < free) {
          claimedAll = false;
          break;
        }
      }
      if (stopping) return;
      if (inFlight.size >= concurrency && claimedAll) {
        // Full: a finishing delivery wakes the pump; keep only the safety net.
        setTimer(safetyMs);
        return;
      }
      const { rows } = await ctx.db.query<{ next: Date | null }>(NEXT_DUE_SQL, [busyTargets().full]);
      const next = rows[0]?.next ?? null;
      if (next === null) setTimer(safetyMs);
      else {
        const wait = next.getTime() - ctx.clock.now().getTime();
        // Something due that could not be claimed is held by a request in flight (its end wakes
        // the pump) or by another process's claim: look again in a second, not in a spin.
        setTimer(wait <= 0 ? 1_000 : wait);
      }
    } catch (err) {
      if (stopping) return;
      log.error({ err }, 'callback dispatcher: claim failed; retrying in 2 s');
      setTimer(2_000);
    }
  };

  const startDelivery = (row: ClaimedDelivery): void => {
    const done = deliver(row)
      .catch((err: unknown) => {
        log.error(
          { err, deliveryId: row.id, jobId: row.job_id },
          'callback dispatcher: recording a delivery failed',
        );
      })
      .finally(() => {
        inFlight.delete(row.id);
        wake();
      });
    inFlight.set(row.id, { target: row.target_url, done });
  };

  const deliver = async (row: ClaimedDelivery): Promise<void> => {
    const outcome = await post(row);
    if (stopping && stopController.signal.aborted && outcome.status === null) {
      // Shut down mid-request: hand the delivery back untouched so the next dispatcher sends it.
      await ctx.db.query(
        `UPDATE callback_deliveries
         SET state = 'pending', attempts = attempts - 1, next_attempt_at = $3, locked_until = NULL
         WHERE id = $1 AND state = 'delivering' AND attempts = $2`,
        [row.id, row.attempts, ctx.clock.now()],
      );
      return;
    }
    await ctx.db.transaction((tx) => recordOutcome(tx, row, outcome));
  };

  const post = async (row: ClaimedDelivery): Promise<AttemptOutcome> => {
    const raw = JSON.stringify(row.body);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': `task-engine/${ctx.version}`,
      [TIMESTAMP_HEADER]: String(Math.floor(ctx.clock.now().getTime() / 1000)),
      [DELIVERY_HEADER]: String(row.id),
      [ATTEMPT_HEADER]: String(row.attempts),
    };
    if (row.signing_secret) headers[SIGNATURE_HEADER] = signCallbackBody(row.signing_secret, raw);
    const started = Date.now();
    try {
      const res = await fetch(row.target_url, {
        method: 'POST',
        headers,
        body: raw,
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), stopController.signal]),
      });
      // The answer's body is not used; discard it so the connection can be reused or closed.
      await res.body?.cancel().catch(() => undefined);
      return { status: res.status, error: null, durationMs: Date.now() - started };
    } catch (err) {
      return { status: null, error: describeFetchError(err, timeoutMs), durationMs: Date.now() - started };
    }
  };

  const recordOutcome = async (
    tx: Queryable,
    row: ClaimedDelivery,
    outcome: AttemptOutcome,
  ): Promise<void> => {
    const now = ctx.clock.now();
    const ok = outcome.status !== null && outcome.status >= 200 && outcome.status < 300;
    const what = describeCallback(row);
    const result = outcome.status !== null ? `HTTP ${outcome.status}` : (outcome.error ?? 'no answer');
    let updated: number;
    let message: string;
    let severity: number;
    if (ok) {
      updated = (
        await tx.query(
          `UPDATE callback_deliveries
           SET state = 'delivered', delivered_at = $3, last_status = $4, last_error = NULL, locked_until = NULL
           WHERE id = $1 AND state = 'delivering' AND attempts = $2`,
          [row.id, row.attempts, now, outcome.status],
        )
      ).rowCount;
      message = `${what} delivered: ${result} (attempt ${row.attempts}, ${outcome.durationMs} ms)`;
      severity = SEVERITY.INFO;
    } else {
      const { known } = await readSettings(tx);
      const limit = known.callback_retry_limit;
      const lastError = outcome.error ?? (outcome.status !== null ? `HTTP ${outcome.status}` : null);
      if (shouldRetryCallback(row.attempts, limit)) {
        const delayMs = callbackBackoffMs(row.attempts, random);
        updated = (
          await tx.query(
            `UPDATE callback_deliveries
             SET state = 'pending', next_attempt_at = $3, locked_until = NULL, last_status = $4, last_error = $5
             WHERE id = $1 AND state = 'delivering' AND attempts = $2`,
            [row.id, row.attempts, new Date(now.getTime() + delayMs), outcome.status, lastError],
          )
        ).rowCount;
        message =
          `${what} attempt ${row.attempts} of ${limit + 1} failed: ${result}; ` +
          `retrying in ${formatSeconds(delayMs)}`;
        severity = SEVERITY.WARN;
      } else {
        updated = (
          await tx.query(
            `UPDATE callback_deliveries
             SET state = 'failed', locked_until = NULL, last_status = $3, last_error = $4
             WHERE id = $1 AND state = 'delivering' AND attempts = $2`,
            [row.id, row.attempts, outcome.status, lastError],
          )
        ).rowCount;
        message =
          `${what} attempt ${row.attempts} failed: ${result}; giving up after ${row.attempts} ` +
          `attempt${row.attempts === 1 ? '' : 's'} (callback_retry_limit ${limit})`;
        severity = SEVERITY.ERROR;
      }
    }
    if (updated === 0) {
      // The lease ran out and another dispatcher took the delivery over (or the job was deleted):
      // that dispatcher owns the outcome now; this late answer is only noted in the process log.
      log.warn(
        { deliveryId: row.id, jobId: row.job_id, result },
        'callback dispatcher: lease lost; outcome dropped',
      );
      return;
    }
    if (row.attempts === 1) {
      await appendLog(tx, {
        jobId: row.job_id,
        taskId: row.task_id,
        progname: 'callback',
        message:
          row.definition_source === 'client'
            ? `Using client definitions of ${row.client}.`
            : 'No client definitions. Using common definitions.',
      });
    }
    await appendLog(tx, { jobId: row.job_id, taskId: row.task_id, progname: 'callback', severity, message });
    // The next callback of this job for this target is now the head: wake every dispatcher.
    const { rows } = await tx.query<{ more: boolean }>(
      `SELECT EXISTS (
         SELECT 1 FROM callback_deliveries
         WHERE job_id = $1 AND target_url = $2 AND id > $3 AND state = 'pending') AS more`,
      [row.job_id, row.target_url, row.id],
    );
    if (rows[0]?.more) await notify(tx, CHANNELS.callbacks, row.job_id);
  };

  return {
    name: 'callback-dispatcher',
    async start() {
      if (running) return;
      running = true;
      unlisten = await ctx.db.listen(CHANNELS.callbacks, () => wake());
      wake();
    },
    async stop() {
      if (!running || stopping) {
        await pumping;
        return;
      }
      stopping = true;
      if (timer) clearTimeout(timer);
      timer = null;
      stopController.abort(new Error('callback dispatcher stopping'));
      await pumping;
      await Promise.all([...inFlight.values()].map((f) => f.done));
      if (unlisten) await unlisten().catch(() => undefined);
      unlisten = null;
      running = false;
    },
  };
}

/** "callback 'complete' of task 'encode' to https://host/path" — the URL without credentials or query. */
function describeCallback(row: ClaimedDelivery): string {
  const task = typeof row.body.task_name === 'string' ? ` of task '${row.body.task_name}'` : '';
  const kind = row.kind === 'job' ? ' (job end)' : '';
  return `callback '${row.event}'${task}${kind} to ${redactUrl(row.target_url)}`;
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return `no answer within ${formatSeconds(timeoutMs)} (timed out)`;
    if (err.name === 'AbortError') return 'aborted';
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof Error) {
      const code = (cause as { code?: unknown }).code;
      return typeof code === 'string' ? `${code}: ${cause.message}` : cause.message;
    }
    return err.message;
  }
  return String(err);
}

function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}
