/**
 * One HTTP attempt of a callback delivery (SPEC section 7): the signed POST, bounded by a timeout,
 * redirects not followed. It never throws: every way the attempt can end is an {@link AttemptOutcome}.
 */
import { EgressRefusedError, type GuardedFetch } from '../egress/guarded-fetch.js';
import type { ClaimedDeliveryRow } from '../../store/queries/callbacks.js';
import type { Clock } from '../clock.js';
import { formatSeconds } from './describe.js';
import { ATTEMPT_HEADER, DELIVERY_HEADER, TIMESTAMP_HEADER, signingHeaders } from './signing.js';

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
  /** Source of the send time (`webhook-timestamp`, `X-Task-Engine-Timestamp`). */
  clock: Clock;
  /** Timeout of the request, in milliseconds of real time. */
  timeoutMs: number;
  /** Aborts the request (the dispatcher stopping). */
  signal: AbortSignal;
  /** The engine's egress-checked fetch (`ctx.fetch`). */
  fetch: GuardedFetch;
  /** The job's W3C `traceparent` (parent: the job span), sent as `traceparent`; tracing on only. */
  traceparent?: string | null;
}

/**
 * POSTs the delivery's body as JSON to its target, with the Standard Webhooks headers
 * (`webhook-id` = the delivery id, `webhook-timestamp` = now, and `webhook-signature` signed with
 * the client's current and, during a rotation, previous secret; see `signing.ts`), the deprecated
 * `X-Task-Engine-Signature`, and the delivery id and attempt number. A redirect
 * is not followed: its 3xx status is the outcome (and counts as a failure).
 * @returns the outcome; never throws.
 */
export async function postCallback(
  row: ClaimedDeliveryRow,
  options: PostCallbackOptions,
): Promise<AttemptOutcome> {
  const raw = JSON.stringify(row.body);
  const timestamp = Math.floor(options.clock.now().getTime() / 1000);
  // Current secret first, then the previous one while a rotation overlaps.
  const secrets = [row.signing_secret, row.previous_signing_secret].filter((s): s is string => !!s);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': `task-engine/${options.version}`,
    ...signingHeaders(secrets, String(row.id), timestamp, raw),
    [TIMESTAMP_HEADER]: String(timestamp),
    [DELIVERY_HEADER]: String(row.id),
    [ATTEMPT_HEADER]: String(row.attempts),
  };
  if (options.traceparent) headers.traceparent = options.traceparent;
  // The timeout and the duration are about I/O with the receiver, so they stay on real time
  // (performance.now and AbortSignal.timeout), not on the engine's clock: a test's fake clock must
  // not cut a request that is still on the wire, and the duration logged is what the receiver took.
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  try {
    const res = await options.fetch(row.target_url, {
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
    if (err instanceof EgressRefusedError) return err.message;
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof Error) {
      const code = (cause as { code?: unknown }).code;
      return typeof code === 'string' ? `${code}: ${cause.message}` : cause.message;
    }
    return err.message;
  }
  return String(err);
}
