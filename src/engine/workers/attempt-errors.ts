/**
 * The errors of an attempt's life in the worker pool: why it was aborted (the reason its
 * handler's signal carries), and a failure before its handler ran.
 */

/** Why an attempt was aborted. */
export type AbortReason = 'timeout' | 'cancel' | 'shutdown' | 'lost';

/** The abort reason given to a handler's signal. */
export class AttemptAbortedError extends Error {
  constructor(readonly reason: AbortReason) {
    super(
      reason === 'timeout'
        ? 'the attempt timed out'
        : reason === 'cancel'
          ? 'the job was broken'
          : reason === 'shutdown'
            ? 'the worker is shutting down'
            : 'the attempt was superseded',
    );
    this.name = 'AbortError';
  }
}

/**
 * A failure before the handler ran (task not in the definition, handler not loadable, inputs
 * not renderable): no retry can help, so it is recorded as permanent, like a handler's
 * `PermanentTaskError`.
 */
export class PermanentSetupError extends Error {
  override name = 'PermanentSetupError';
}
