/**
 * The controller service: runs admission whenever it may start something (SPEC 5.4).
 */
import { backoffAfterFailuresMs } from '../retry-pauses.js';
import type { ClockTimer } from '../clock.js';
import type { EngineContext, Service } from '../context.js';
import { CHANNELS } from '../signals.js';
import { admitJobs, MAX_JOBS_PER_PASS } from './admission.js';

/** Options of {@link createController}. */
export interface ControllerOptions {
  /** Coalescing window for bursts of admission wake-ups, in ms; default 2. */
  debounceMs?: number;
  /** Safety-net period, in ms, for wake-ups that never came (a setting changed by hand in SQL); default 10 000. */
  safetyIntervalMs?: number;
}

/** The controller: a {@link Service} that can also be woken directly. */
export interface Controller extends Service {
  /** Asks for an admission pass soon (coalesced). */
  wake(): void;
}

/** Back-off after `failures` admission passes failed in a row, in ms ({@link backoffAfterFailuresMs}). */
export const admissionBackoffMs = backoffAfterFailuresMs;

/**
 * Creates the controller: admission on every `CHANNELS.admission` notification (a job was
 * queued, left `started`, or a setting changed), coalesced over a few ms; once at start; and on a
 * safety-net timer. Passes never overlap inside one process (a wake-up during a pass runs one
 * more pass after it); across processes the advisory lock in {@link admitJobs} serialises them.
 * Errors are logged and retried with a back-off ({@link admissionBackoffMs}); the loop never
 * dies. Every timer is `ctx.clock`'s.
 */
export function createController(ctx: EngineContext, options: ControllerOptions = {}): Controller {
  return new AdmissionLoop(ctx, options.debounceMs ?? 2, options.safetyIntervalMs ?? 10_000);
}

/** The state of the controller, one field per concern. */
class AdmissionLoop implements Controller {
  readonly name = 'controller';
  /** Not started, or stopped: nothing is scheduled. */
  private stopped = true;
  /** A pass is running. */
  private running = false;
  /** A wake-up came during the pass (or the pass was full, or failed): run another after it. */
  private again = false;
  /** The timer of the next pass, when one is scheduled. */
  private next: ClockTimer | null = null;
  /** The safety-net timer. */
  private safety: ClockTimer | null = null;
  private unlisten: (() => Promise<void>) | null = null;
  /** The pass in flight (or the last one), awaited by `stop()`. */
  private current: Promise<void> = Promise.resolve();
  /** Passes failed in a row. */
  private failures = 0;

  constructor(
    private readonly ctx: EngineContext,
    private readonly debounceMs: number,
    private readonly safetyMs: number,
  ) {}

  wake(): void {
    this.schedule(this.debounceMs);
  }

  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.unlisten = await this.ctx.db.listen(CHANNELS.admission, () => this.schedule(this.debounceMs));
    this.armSafety();
    this.schedule(0);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.next?.cancel();
    this.next = null;
    this.safety?.cancel();
    this.safety = null;
    await this.unlisten?.().catch(() => undefined);
    this.unlisten = null;
    await this.current;
  }

  /** Schedules a pass in `delay` ms, unless one is scheduled already or running (then it runs again after). */
  private schedule(delay: number): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.next) return;
    this.next = this.ctx.clock.setTimeout(() => {
      this.next = null;
      this.current = this.pass();
    }, delay);
  }

  /** The safety net: a pass every `safetyMs`, re-armed each time it fires. */
  private armSafety(): void {
    this.safety = this.ctx.clock.setTimeout(() => {
      if (this.stopped) return;
      this.schedule(0);
      this.armSafety();
    }, this.safetyMs);
  }

  private async pass(): Promise<void> {
    if (this.stopped) return;
    this.running = true;
    this.again = false;
    let delay = this.debounceMs;
    try {
      const n = await admitJobs(this.ctx);
      this.failures = 0;
      if (n >= MAX_JOBS_PER_PASS) this.again = true;
      if (n > 0) this.ctx.logger.debug({ started: n }, 'admission started jobs');
    } catch (err) {
      this.failures++;
      delay = admissionBackoffMs(this.failures);
      this.again = true;
      this.ctx.logger.error({ err }, 'admission pass failed; retrying');
    } finally {
      this.running = false;
    }
    if (this.again) this.schedule(delay);
  }
}
