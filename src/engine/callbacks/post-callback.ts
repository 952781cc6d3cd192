/**
 * One HTTP attempt of a callback delivery (SPEC section 7): the signed POST, bounded by a timeout,
 * redirects not followed. It never throws: every way the attempt can end is an {@link AttemptOutcome}.
 */
import type { ClaimedDeliveryRow } from '../../store/queries/callbacks.js';
import type { Clock } from '../clock.js';
import { formatSeconds } from './describe.js';
import {
  ATTEMPT_HEADER,
  DELIVERY_HEADER,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  signCallbackBody,
} from './signing.js';

/** How one HTTP attempt ended. */
export interface AttemptOutcome {
  /** The answer's status, or null when there was none (network error, timeout, abort). */
  status: number | null;
  /** Why there was no answer, or null when there was one. */
  error: string | null;
  /** Wall time the request took, in milliseconds. */
  durationMs: number;
}

/** What {@link postCallback} needs besides the delivery. */
export interface PostCallbackOptions {
  /** The engine's version, for `User-Agent`. */
  version: string;
  /** Source of the `X-Task-Engine-Timestamp` send time. */
  clock: Clock;
  /** Timeout of the request, in milliseconds of real time. */
  timeoutMs: number;
  /** Aborts the request (the dispatcher stopping). */
  signal: AbortSignal;
}

/**
 * POSTs the delivery's body as JSON to its target, signed with the client's secret when it has
 * one (`X-Task-Engine-Signature`), with the delivery id and attempt number in headers. A redirect
 * is not followed: its 3xx status is the outcome (and counts as a failure).
 * @returns the outcome; never throws.
 */
export async function postCallback(
  row: ClaimedDeliveryRow,
  options: PostCallbackOptions,
): Promise<AttemptOutcome> {
  const raw = JSON.stringify(row.body);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': `task-engine/${options.version}`,
    [TIMESTAMP_HEADER]: String(Math.floor(options.clock.now().getTime() / 1000)),
    [DELIVERY_HEADER]: String(row.id),
    [ATTEMPT_HEADER]: String(row.attempts),
  };
  if (row.signing_secret) headers[SIGNATURE_HEADER] = signCallbackBody(row.signing_secret, raw);
  // The timeout and the duration are about I/O with the receiver, so they stay on real time
  // (performance.now and AbortSignal.timeout), not on the engine's clock: a test's fake clock must
  // not cut a request that is still on the wire, and the duration logged is what the receiver took.
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  try {
    const res = await fetch(row.target_url, {
      method: 'POST',
      headers,
      body: raw,
      redirect: 'manual',
      signal: AbortSignal.any([AbortSignal.timeout(options.timeoutMs), options.signal]),
    });
    // The answer's body is not used; discard it so the connection can be reused or closed.
    await res.body?.cancel().catch(() => undefined);
    return { status: res.status, error: null, durationMs: elapsed() };
  } catch (err) {
    return { status: null, error: describeFetchError(err, options.timeoutMs), durationMs: elapsed() };
  }
}

/** A fetch failure in a log's words: `no answer within 10 s (timed out)`, `ECONNREFUSED: …`. */
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
