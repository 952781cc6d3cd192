/**
 * Semaphores (SPEC sections 5.3 and 8): a `pending` job moves to `queued` once its
 * `semaphore_url` answers a GET with 2xx or 3xx within 5 s.
 *
 * Decisions (where the SPEC and the original manual are silent):
 * - Redirects are not followed: a 3xx answer itself means "go", as the SPEC counts 2xx/3xx.
 * - Anything else (4xx, 5xx, a network error, no answer within 5 s) means "not yet"; there is no
 *   give-up: a job waits in `pending` until its semaphore says go, or a person changes it.
 * - Cadence: a job is checked as soon as it becomes pending, then 5 s later, then with a doubling
 *   delay (5, 10, 20, 40 s …) capped at `schedule_interval` seconds (and at 60 s), so a semaphore
 *   that opens is noticed within seconds while a closed one is not hammered.
 *   A job whose row changed since its last check (a PATCH of its semaphore_url, run_at or state
 *   moves `updated_at`) is checked again at once. The backoff follows the row, not notifications:
 *   the notification that announces a new pending job may arrive after a pass already checked it,
 *   and must not cause a second check right after the first.
 */
import type { GuardedFetch } from '../egress/guarded-fetch.js';
import { listPendingJobs, queueJobOnSemaphore, recordSemaphoreAnswer } from '../../store/queries/due-jobs.js';
import type { EngineContext } from '../context.js';
import { appendLog, SEVERITY } from '../jobs/job-log.js';
import { jobEdge } from '../jobs/transitions.js';
import { CHANNELS, notify } from '../signals.js';
import { redactUrl } from '../callbacks/redact-url.js';

/** Timeout of one semaphore request, in milliseconds (SPEC section 8). */
export const SEMAPHORE_TIMEOUT_MS = 5_000;
/** First re-check delay after a "not yet", in milliseconds. */
export const SEMAPHORE_FIRST_RECHECK_MS = 5_000;
/** Longest delay between checks of one job, in milliseconds (lowered to `schedule_interval`). */
export const SEMAPHORE_MAX_RECHECK_MS = 60_000;
/** Semaphore requests in flight at once. */
const SEMAPHORE_CONCURRENCY = 8;
/** Pending jobs looked at per pass (oldest run_at first). */
const SEMAPHORE_BATCH = 1000;

/** The edge {@link queueJobOnSemaphore} takes (checked against its text by the unit test). */
export const SEMAPHORE_EDGE = jobEdge('pending', 'queued', 'semaphore');

/**
 * Delay before the next check of a job whose semaphore said "not yet" for the `failures`-th time
 * in a row: 5 s doubling (5, 10, 20, 40 s …), capped at `maxRecheckMs` (never below 1 s).
 */
export function semaphoreRecheckDelayMs(failures: number, maxRecheckMs: number): number {
  return Math.min(SEMAPHORE_FIRST_RECHECK_MS * 2 ** (failures - 1), Math.max(1_000, maxRecheckMs));
}

/** Cap of the per-job delay for a `schedule_interval` of `scheduleIntervalSeconds`: min(it, 60 s). */
export function semaphoreMaxRecheckMs(scheduleIntervalSeconds: number): number {
  return Math.min(scheduleIntervalSeconds * 1000, SEMAPHORE_MAX_RECHECK_MS);
}

/** What the checker remembers of one job between passes. */
export interface JobCheckState {
  /** "Not yet" answers in a row for this version of the row. */
  failures: number;
  /** `updated_at` (ms) of the job row the last check was made for. */
  version: number;
  /** Clock time (ms) from which the job is due for its next check. */
  nextCheckAt: number;
  /** The last answer, as logged (`HTTP 503`, an error), to log only changes. */
  lastResult: string;
}

/**
 * Whether a pending job is due for a check now: never checked, changed since its last check
 * (`version` is its row's `updated_at` in ms), or its backoff has run out.
 */
export function isDueForCheck(state: JobCheckState | undefined, version: number, nowMs: number): boolean {
  return !state || state.version !== version || state.nextCheckAt <= nowMs;
}

/** The answer of one semaphore check. */
export interface SemaphoreAnswer {
  go: boolean;
  /** HTTP status, or null when no answer came. */
  status: number | null;
  /** Why no answer came (network error, timeout), or null. */
  error: string | null;
}

/**
 * Asks a semaphore: GET `url`, redirects not followed, `timeoutMs` to answer.
 * @returns go = status 200..399.
 */
export async function checkSemaphore(
  url: string,
  fetch: GuardedFetch,
  timeoutMs: number = SEMAPHORE_TIMEOUT_MS,
): Promise<SemaphoreAnswer> {
  try {
    const res = await fetch(url, {
      method: 'GET',
      redirect: 'manual',
      headers: { accept: '*/*', 'user-agent': 'task-engine-semaphore' },
      // A real-time limit on purpose: it bounds a network request, not engine time.
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel().catch(() => undefined);
    return { go: res.status >= 200 && res.status < 400, status: res.status, error: null };
  } catch (err) {
    let error = err instanceof Error ? err.message : String(err);
    if (err instanceof Error && err.name === 'TimeoutError') error = `no answer within ${timeoutMs / 1000} s`;
    else if (err instanceof Error && err.cause instanceof Error) {
      const code = (err.cause as { code?: unknown }).code;
      error = typeof code === 'string' ? `${code}: ${err.cause.message}` : err.cause.message;
    }
    return { go: false, status: null, error };
  }
}

/**
 * Checks the semaphores of pending jobs with per-job backoff. One instance lives in the scheduler
 * leader; its memory (the backoff per job) starts empty on every new leader, which only means one
 * extra early check.
 */
export class SemaphoreChecker {
  private readonly state = new Map<number, JobCheckState>();
  private running: Promise<number> | null = null;

  constructor(
    private readonly ctx: EngineContext,
    private readonly timeoutMs: number = SEMAPHORE_TIMEOUT_MS,
  ) {}

  /**
   * One pass: checks every pending job that is due for a check; queues those whose semaphore says
   * go. Passes never overlap (a call during a pass waits for it).
   * @param maxRecheckMs - cap of the per-job delay (the scheduler passes min(schedule_interval, 60 s)).
   * @returns how many jobs were queued.
   */
  async checkPending(maxRecheckMs: number = SEMAPHORE_MAX_RECHECK_MS): Promise<number> {
    if (this.running) return this.running;
    this.running = this.pass(maxRecheckMs).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async pass(maxRecheckMs: number): Promise<number> {
    const rows = await listPendingJobs.rows(this.ctx.db, { limit: SEMAPHORE_BATCH });
    const seen = new Set(rows.map((r) => r.id));
    for (const id of this.state.keys()) if (!seen.has(id)) this.state.delete(id);
    const now = this.ctx.clock.now().getTime();
    const due = rows.filter((r) => isDueForCheck(this.state.get(r.id), r.updated_at.getTime(), now));
    let queued = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < due.length) {
        const job = due[next++]!;
        if (await this.checkOne(job.id, job.semaphore_url, job.updated_at.getTime(), maxRecheckMs)) queued++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(SEMAPHORE_CONCURRENCY, due.length) }, () => worker()));
    return queued;
  }

  private async checkOne(
    jobId: number,
    url: string | null,
    version: number,
    maxRecheckMs: number,
  ): Promise<boolean> {
    // A pending job whose semaphore was removed (PATCH semaphore_url to empty) may go at once.
    const answer: SemaphoreAnswer = url
      ? await checkSemaphore(url, this.ctx.fetch, this.timeoutMs)
      : { go: true, status: null, error: null };
    const target = url ? redactUrl(url) : '(none)';
    const result = answer.status !== null ? `HTTP ${answer.status}` : (answer.error ?? 'no semaphore');
    if (answer.go) {
      const moved = await this.ctx.db.transaction(async (tx) => {
        const now = this.ctx.clock.now();
        const res = await queueJobOnSemaphore.run(tx, { id: jobId, now, url });
        if (res.rowCount === 0) return false; // paused, broken or re-pointed meanwhile
        await appendLog(tx, {
          now,
          jobId,
          progname: 'scheduler',
          message: url
            ? `semaphore ${target} answered ${result}: job queued`
            : 'no semaphore any more: job queued',
        });
        await notify(tx, CHANNELS.admission, 'semaphore open');
        return true;
      });
      this.state.delete(jobId);
      return moved;
    }
    const known = this.state.get(jobId);
    // A changed row (new semaphore, resumed) starts its backoff afresh.
    const prev = known && known.version === version ? known : undefined;
    const failures = (prev?.failures ?? 0) + 1;
    const delay = semaphoreRecheckDelayMs(failures, maxRecheckMs);
    const checkedAt = this.ctx.clock.now();
    this.state.set(jobId, {
      failures,
      version,
      nextCheckAt: checkedAt.getTime() + delay,
      lastResult: result,
    });
    // What `waiting` shows: the answer and the next check (the backoff itself stays in memory).
    await recordSemaphoreAnswer
      .run(this.ctx.db, {
        id: jobId,
        answer: result,
        now: checkedAt,
        next: new Date(checkedAt.getTime() + delay),
      })
      .catch((err: unknown) => this.ctx.logger.warn({ err, jobId }, 'recording a semaphore answer failed'));
    // Log the first "not yet" and every change of answer, not every check.
    if (!prev || prev.lastResult !== result) {
      await appendLog(this.ctx.db, {
        now: this.ctx.clock.now(),
        jobId,
        progname: 'scheduler',
        severity: SEVERITY.INFO,
        message: `semaphore ${target} answered ${result}: job stays pending; checking again with backoff (next in ${delay / 1000} s)`,
      }).catch(() => undefined); // the job may have been deleted meanwhile
    }
    return false;
  }
}
