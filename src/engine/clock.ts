/**
 * The engine's one source of time. Every statement takes `now` from `ctx.clock.now()` as a
 * parameter instead of SQL `now()`, and every wait inside a service goes through
 * `ctx.clock.setTimeout`, so tests can drive schedules, retries, stalls and timeouts with a
 * {@link ManualClock} instead of sleeping.
 */

/** A cancellable timer returned by {@link Clock.setTimeout}. */
export interface ClockTimer {
  /** Cancels the timer; a no-op once it has fired or been cancelled. */
  cancel(): void;
}

/** A source of time and of timers on that time. */
export interface Clock {
  /** Current time. */
  now(): Date;
  /**
   * Calls `fn` once `ms` milliseconds of this clock's time have passed. A timer of the system
   * clock does not keep the process alive (it is `unref`'d): services stop through `stop()`.
   * @param ms - delay in milliseconds; negative or NaN counts as 0.
   */
  setTimeout(fn: () => void, ms: number): ClockTimer;
}

/** The wall clock, with Node's timers. */
export const systemClock: Clock = {
  now: () => new Date(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, Number.isFinite(ms) && ms > 0 ? Math.min(ms, 2_147_483_647) : 0);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/**
 * Resolves after `ms` of `clock`'s time, or at once (resolving) when `signal` aborts.
 * @param ms - milliseconds.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      timer.cancel();
      resolve();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A clock that moves only when told to, for tests. Its timers fire, in due order, during
 * {@link ManualClock.advance} / {@link ManualClock.set}; each fired callback is followed by a turn
 * of the event loop so promise chains it starts can run before the next one fires.
 */
export class ManualClock implements Clock {
  private current: number;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  /** @param start - the starting time (default 2030-01-01T00:00:00Z). */
  constructor(start: Date | number = Date.UTC(2030, 0, 1)) {
    this.current = typeof start === 'number' ? start : start.getTime();
  }

  now(): Date {
    return new Date(this.current);
  }

  setTimeout(fn: () => void, ms: number): ClockTimer {
    const id = ++this.seq;
    this.timers.set(id, { at: this.current + (Number.isFinite(ms) && ms > 0 ? ms : 0), fn });
    return { cancel: () => void this.timers.delete(id) };
  }

  /** How many timers are waiting. */
  get pendingTimers(): number {
    return this.timers.size;
  }

  /** The time the next timer is due (ms since the epoch), or null when none waits. */
  nextTimerAt(): number | null {
    let next: number | null = null;
    for (const t of this.timers.values()) if (next === null || t.at < next) next = t.at;
    return next;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way (timers set by
   * fired callbacks included), each at its own due time.
   */
  async advance(ms: number): Promise<void> {
    await this.set(this.current + ms);
  }

  /** Moves time to `to` (never backwards), firing due timers as {@link advance} does. */
  async set(to: Date | number): Promise<void> {
    const target = typeof to === 'number' ? to : to.getTime();
    for (;;) {
      let dueId: number | null = null;
      let due: { at: number; fn: () => void } | null = null;
      for (const [id, t] of this.timers) {
        if (t.at <= target && (due === null || t.at < due.at)) {
          dueId = id;
          due = t;
        }
      }
      if (due === null || dueId === null) break;
      this.timers.delete(dueId);
      if (due.at > this.current) this.current = due.at;
      due.fn();
      await new Promise<void>((r) => setImmediate(r));
    }
    if (target > this.current) this.current = target;
  }
}
