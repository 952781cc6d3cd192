/**
 * The promises a scheduler service has started and not yet seen settle, so that `stop()` can
 * wait for in-flight work. A failure is logged, never thrown out of the loop.
 */
import type { Logger } from 'pino';

/** Work a service started in the background. */
export class BackgroundWork {
  private readonly inFlight = new Set<Promise<unknown>>();

  /** @param log - where a failed step is logged; `what` names the service in the message. */
  constructor(
    private readonly log: Logger,
    private readonly what: string,
  ) {}

  /** Starts tracking `p`; its rejection is logged and swallowed. */
  track(p: Promise<unknown>): void {
    const q = p.catch((err: unknown) => this.log.error({ err }, `scheduler: ${this.what} step failed`));
    this.inFlight.add(q);
    void q.finally(() => this.inFlight.delete(q));
  }

  /** Whether any tracked work is still running. */
  get busy(): boolean {
    return this.inFlight.size > 0;
  }

  /** Waits until nothing tracked runs (work started meanwhile included). */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }
}
