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
 *   the response. While the database cannot be reached, that UPDATE is tried again until the
 *   lease ends, so an outage (the process alive, knowing the answer) does not send it twice.
 * - **Isolation.** At most {@link CallbackDispatcherOptions.concurrency} requests are in flight per
 *   process and at most {@link CallbackDispatcherOptions.perTargetConcurrency} per target URL, each
 *   bounded by a 10 s timeout, so a slow or dead endpoint holds only its own share and never a
 *   task worker; a failing callback never fails a job.
 * - **Retries.** A non-2xx answer (redirects are not followed and count as failures), a network
 *   error or a timeout is retried after 1 s, 2 s, 4 s … (capped at 5 min, 10 % jitter) until
 *   `callback_retry_limit` retries are used; then the delivery is `failed` (given up).
 * - **Wake-ups.** LISTEN on `CHANNELS.callbacks` plus one timer (on `ctx.clock`) for the next due
 *   retry or lease expiry; no fixed polling while work is ready. A 30 s safety timer covers lost
 *   notifications.
 *
 * The parts: the statements are in `src/store/queries/callbacks.ts`, one HTTP attempt is
 * `post-callback.ts`, writing its outcome is `record-outcome.ts`; this file is the loop that
 * claims what is due, starts the requests and sets the next wake-up.
 */
import type { Logger } from 'pino';
import { isStoreConnectionError } from '../../store/connection-errors.js';
import { sleep, type ClockTimer } from '../clock.js';
import type { EngineContext, Service } from '../context.js';
import { writeRetryPauseMs } from '../retry-pauses.js';
import {
  claimDueDeliveries,
  findNextDeliveryDue,
  type ClaimedDeliveryRow,
} from '../../store/queries/callbacks.js';
import { CHANNELS } from '../signals.js';
import { formatTraceparent } from '../tracing/tracing.js';
import { postCallback, type AttemptOutcome } from './post-callback.js';
import { handBack, isDelivered, recordDeliveryOutcome } from './record-outcome.js';
import { hostLabel } from '../metrics/metrics.js';

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
  return new CallbackDispatcher(ctx, options);
}

/** Lifecycle of a dispatcher: `stopped` is final. */
type DispatcherState = 'idle' | 'running' | 'stopping' | 'stopped';

/** A request in flight: its target (for the per-target cap) and its end. */
interface InFlight {
  target: string;
  done: Promise<void>;
}

/** How long to wait before claiming again after a failed claim, in milliseconds. */
const CLAIM_ERROR_RETRY_MS = 2_000;
/** How long to wait when something is due but could not be claimed (held elsewhere), in milliseconds. */
const HELD_ELSEWHERE_RETRY_MS = 1_000;
/** Shortest timer, in milliseconds, so a due time in the past never makes a spin. */
const MIN_TIMER_MS = 5;

/** The dispatcher loop; see the file's summary. */
class CallbackDispatcher implements Service {
  readonly name = 'callback-dispatcher';
  private readonly concurrency: number;
  private readonly perTarget: number;
  private readonly timeoutMs: number;
  private readonly leaseMs: number;
  private readonly safetyMs: number;
  private readonly random: () => number;
  private readonly log: Logger;

  private state: DispatcherState = 'idle';
  /** Requests in flight, by delivery id. */
  private readonly inFlight = new Map<number, InFlight>();
  /** Aborts the requests in flight when the dispatcher stops. */
  private readonly stopController = new AbortController();
  private unlisten: (() => Promise<void>) | null = null;
  /** The one wake-up timer (next due time, or the safety net). */
  private timer: ClockTimer | null = null;
  /** The pump running now, if any. */
  private pumping: Promise<void> | null = null;
  /** A wake-up arrived while a pump ran: pump once more when it ends. */
  private pumpAgain = false;
  /** The first stop(), which later calls wait for too. */
  private stopped: Promise<void> | null = null;

  constructor(
    private readonly ctx: EngineContext,
    options: CallbackDispatcherOptions,
  ) {
    this.concurrency = options.concurrency ?? 8;
    this.perTarget = options.perTargetConcurrency ?? 2;
    this.timeoutMs = options.requestTimeoutMs ?? 10_000;
    this.leaseMs = Math.max(options.leaseMs ?? 30_000, this.timeoutMs + 5_000);
    this.safetyMs = options.safetyIntervalMs ?? 30_000;
    this.random = options.random ?? Math.random;
    this.log = ctx.logger.child({ service: 'callback-dispatcher' });
  }

  async start(): Promise<void> {
    if (this.state !== 'idle') return;
    this.state = 'running';
    this.unlisten = await this.ctx.db.listen(CHANNELS.callbacks, () => this.wake());
    this.wake();
  }

  stop(): Promise<void> {
    // Never started: nothing to stop (and it may still be started).
    if (this.state === 'idle') return Promise.resolve();
    this.stopped ??= this.shutDown();
    return this.stopped;
  }

  private async shutDown(): Promise<void> {
    this.state = 'stopping';
    this.clearTimer();
    this.stopController.abort(new Error('callback dispatcher stopping'));
    await this.pumping;
    await Promise.all([...this.inFlight.values()].map((f) => f.done));
    if (this.unlisten) await this.unlisten().catch(() => undefined);
    this.unlisten = null;
    this.state = 'stopped';
  }

  /** Requests a pump; coalesces requests that arrive while one runs. */
  private wake(): void {
    if (this.state !== 'running') return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = this.pump().finally(() => {
      this.pumping = null;
      if (this.pumpAgain && this.state === 'running') {
        this.pumpAgain = false;
        this.wake();
      }
    });
  }

  /** Claims and starts what is due while there is room, then sets the timer for the next due time. */
  private async pump(): Promise<void> {
    let claimedAll = true;
    try {
      while (this.state === 'running') {
        const free = this.concurrency - this.inFlight.size;
        if (free <= 0) break;
        const busy = this.busyTargets();
        const rows = await claimDueDeliveries.rows(this.ctx.db, {
          now: this.ctx.clock.now(),
          limit: free,
          leaseSeconds: this.leaseMs / 1000,
          busyUrls: busy.urls,
          busyCounts: busy.counts,
          perTarget: this.perTarget,
          fullTargets: busy.full,
        });
        for (const row of rows) this.startDelivery(row);
        if (rows.length < free) {
          claimedAll = false;
          break;
        }
      }
      if (this.state !== 'running') return;
      if (this.inFlight.size >= this.concurrency && claimedAll) {
        // Full: a finishing delivery wakes the pump; keep only the safety net.
        this.setTimer(this.safetyMs);
        return;
      }
      const next = (await findNextDeliveryDue.first(this.ctx.db, { fullTargets: this.busyTargets().full }))
        ?.next;
      if (next == null) this.setTimer(this.safetyMs);
      else {
        const wait = next.getTime() - this.ctx.clock.now().getTime();
        // Something due that could not be claimed is held by a request in flight (its end wakes
        // the pump) or by another process's claim: look again in a second, not in a spin.
        this.setTimer(wait <= 0 ? HELD_ELSEWHERE_RETRY_MS : wait);
      }
    } catch (err) {
      if (this.state !== 'running') return;
      this.log.error({ err }, 'callback dispatcher: claim failed; retrying in 2 s');
      this.setTimer(CLAIM_ERROR_RETRY_MS);
    }
  }

  /** The targets this process has requests in flight to, their counts, and those at the cap. */
  private busyTargets(): { urls: string[]; counts: number[]; full: string[] } {
    const counts = new Map<string, number>();
    for (const f of this.inFlight.values()) counts.set(f.target, (counts.get(f.target) ?? 0) + 1);
    const full = [...counts].filter(([, n]) => n >= this.perTarget).map(([url]) => url);
    return { urls: [...counts.keys()], counts: [...counts.values()], full };
  }

  private startDelivery(row: ClaimedDeliveryRow): void {
    const done = this.deliver(row)
      .catch((err: unknown) => {
        this.log.error(
          { err, deliveryId: row.id, jobId: row.job_id },
          'callback dispatcher: recording a delivery failed',
        );
      })
      .finally(() => {
        this.inFlight.delete(row.id);
        this.wake();
      });
    this.inFlight.set(row.id, { target: row.target_url, done });
  }

  /** One attempt: the request, then its outcome (or the hand-back when shutdown cut it). */
  private async deliver(row: ClaimedDeliveryRow): Promise<void> {
    const signal = this.stopController.signal;
    // The claim that handed `row` over has just set its lease.
    const leaseEnds = this.ctx.clock.now().getTime() + this.leaseMs;
    // Tracing on: the job span's context, read with the claim (none when the job has no trace).
    const traceparent =
      this.ctx.tracing && row.trace_id && row.span_id
        ? formatTraceparent(row.trace_id, row.span_id, row.trace_flags ?? 0)
        : null;
    const outcome = await postCallback(row, {
      version: this.ctx.version,
      clock: this.ctx.clock,
      timeoutMs: this.timeoutMs,
      signal,
      fetch: this.ctx.fetch,
      traceparent,
    });
    if (this.state !== 'running' && signal.aborted && outcome.status === null) {
      // Shut down mid-request: hand the delivery back untouched so the next dispatcher sends it.
      await handBack(this.ctx.db, row, this.ctx.clock.now());
      return;
    }
    await this.recordOutcome(row, outcome, leaseEnds);
    const m = this.ctx.metrics;
    if (m) {
      const host = hostLabel(row.target_url);
      const delivered = isDelivered(outcome);
      m.callbackDeliveries.labels(delivered ? 'delivered' : 'failed').inc();
      if (!delivered) m.callbackFailures.labels(host).inc();
      m.callbackDuration.labels(host).observe(outcome.durationMs / 1000);
    }
  }

  /**
   * Writes the outcome of `row`'s attempt; while the database cannot be reached, tries again until
   * `leaseEnds` (ms of the clock), after which another dispatcher may send the delivery again and
   * the write is moot (it is guarded by the attempt count, so a late one is dropped), or until the
   * dispatcher stops.
   * @throws the last error, when the write was given up.
   */
  private async recordOutcome(
    row: ClaimedDeliveryRow,
    outcome: AttemptOutcome,
    leaseEnds: number,
  ): Promise<void> {
    for (let n = 1; ; n++) {
      try {
        await this.ctx.db.transaction((tx) =>
          recordDeliveryOutcome(tx, row, outcome, {
            now: this.ctx.clock.now(),
            random: this.random,
            log: this.log,
          }),
        );
        return;
      } catch (err) {
        const pause = writeRetryPauseMs(n);
        if (
          !isStoreConnectionError(err) ||
          this.state !== 'running' ||
          this.ctx.clock.now().getTime() + pause >= leaseEnds
        )
          throw err;
        this.log.warn({ err, deliveryId: row.id }, 'recording a callback outcome failed; retrying');
        await sleep(this.ctx.clock, pause, this.stopController.signal);
      }
    }
  }

  private setTimer(ms: number): void {
    this.clearTimer();
    if (this.state !== 'running') return;
    this.timer = this.ctx.clock.setTimeout(
      () => {
        this.timer = null;
        this.wake();
      },
      Math.max(MIN_TIMER_MS, Math.min(ms, this.safetyMs)),
    );
  }

  private clearTimer(): void {
    this.timer?.cancel();
    this.timer = null;
  }
}
