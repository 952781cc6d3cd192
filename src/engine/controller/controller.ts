/**
 * The controller service: runs admission whenever it may start something (SPEC 5.4).
 */
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

/**
 * Creates the controller: admission on every `CHANNELS.admission` notification (a job was
 * queued, left `started`, or a setting changed), coalesced over a few ms; once at start; and on a
 * safety-net timer. Passes never overlap inside one process (a wake-up during a pass runs one
 * more pass after it); across processes the advisory lock in {@link admitJobs} serialises them.
 * Errors are logged and retried with a short back-off; the loop never dies.
 */
export function createController(
  ctx: EngineContext,
  options: ControllerOptions = {},
): Service & {
  /** Asks for an admission pass soon (coalesced). */
  wake(): void;
} {
  const debounceMs = options.debounceMs ?? 2;
  const safetyMs = options.safetyIntervalMs ?? 10_000;
  let running = false;
  let stopped = true;
  let again = false;
  let timer: NodeJS.Timeout | null = null;
  let safety: NodeJS.Timeout | null = null;
  let unlisten: (() => Promise<void>) | null = null;
  let current: Promise<void> = Promise.resolve();
  let failures = 0;

  const schedule = (delay: number): void => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      current = pass();
    }, delay);
  };

  const pass = async (): Promise<void> => {
    if (stopped) return;
    running = true;
    again = false;
    let delay = debounceMs;
    try {
      const n = await admitJobs(ctx);
      failures = 0;
      if (n >= MAX_JOBS_PER_PASS) again = true;
      if (n > 0) ctx.logger.debug({ started: n }, 'admission started jobs');
    } catch (err) {
      failures++;
      delay = Math.min(5_000, 100 * 2 ** Math.min(failures, 6));
      again = true;
      ctx.logger.error({ err }, 'admission pass failed; retrying');
    } finally {
      running = false;
    }
    if (again) schedule(delay);
  };

  return {
    name: 'controller',
    wake: () => schedule(debounceMs),
    async start() {
      if (!stopped) return;
      stopped = false;
      unlisten = await ctx.db.listen(CHANNELS.admission, () => schedule(debounceMs));
      safety = setInterval(() => schedule(0), safetyMs);
      safety.unref();
      schedule(0);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      if (safety) clearInterval(safety);
      safety = null;
      await unlisten?.().catch(() => undefined);
      unlisten = null;
      await current;
    },
  };
}
