/**
 * Signing of callback requests (SPEC section 7), after the Standard Webhooks scheme
 * (https://www.standardwebhooks.com), so that a receiver can refuse a replayed or altered request.
 *
 * Each request of a client with a signing secret carries:
 * - `webhook-id`: the delivery's id, the same on every attempt (drop duplicates by it);
 * - `webhook-timestamp`: this attempt's send time in Unix seconds;
 * - `webhook-signature`: `v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<raw body>")>`, one entry
 *   per valid secret separated by spaces: the current secret and, during a rotation, the previous
 *   one. The HMAC key is the UTF-8 text of the secret as shown (a Standard Webhooks library takes
 *   it as `whsec_` + its base64).
 *
 * Deprecated, kept for one release: `X-Task-Engine-Signature: sha256=<hex HMAC-SHA256(current
 * secret, raw body)>`, which covers the body only (a captured request can be replayed), with the
 * unsigned `X-Task-Engine-Timestamp`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Standard Webhooks: the message id (here the delivery id), the same on every attempt. */
export const WEBHOOK_ID_HEADER = 'webhook-id';
/** Standard Webhooks: this attempt's send time, Unix seconds; covered by the signature. */
export const WEBHOOK_TIMESTAMP_HEADER = 'webhook-timestamp';
/** Standard Webhooks: space-separated `v1,<base64>` signatures, one per valid secret. */
export const WEBHOOK_SIGNATURE_HEADER = 'webhook-signature';

/** Deprecated (one release): header carrying the body-only signature. */
export const SIGNATURE_HEADER = 'X-Task-Engine-Signature';
/** Header carrying the send time (Unix seconds; not covered by the deprecated signature). */
export const TIMESTAMP_HEADER = 'X-Task-Engine-Timestamp';
/** Header carrying the delivery id (the same on every attempt of one delivery). */
export const DELIVERY_HEADER = 'X-Task-Engine-Delivery';
/** Header carrying the 1-based attempt number of the delivery. */
export const ATTEMPT_HEADER = 'X-Task-Engine-Attempt';

/**
 * The Standard Webhooks signature of one request with one secret.
 * @param secret - the client's signing secret (its UTF-8 text is the HMAC key).
 * @param id - the `webhook-id` value.
 * @param timestampSeconds - the `webhook-timestamp` value, Unix seconds.
 * @param rawBody - the exact bytes (or UTF-8 text) that are sent.
 * @returns `v1,<base64>`.
 */
export function signWebhook(
  secret: string,
  id: string,
  timestampSeconds: number,
  rawBody: string | Buffer,
): string {
  const mac = createHmac('sha256', secret).update(`${id}.${timestampSeconds}.`).update(rawBody);
  return `v1,${mac.digest('base64')}`;
}

/**
 * The signing headers of one attempt: the Standard Webhooks three, signed with every secret given
 * (current first), and the deprecated body-only signature with the current secret.
 * @param secrets - the valid secrets, current first; empty for a client without a secret (then
 *   only `webhook-id` and `webhook-timestamp` are set).
 */
export function signingHeaders(
  secrets: readonly string[],
  id: string,
  timestampSeconds: number,
  rawBody: string,
): Record<string, string> {
  const headers: Record<string, string> = {
    [WEBHOOK_ID_HEADER]: id,
    [WEBHOOK_TIMESTAMP_HEADER]: String(timestampSeconds),
  };
  const [current] = secrets;
  if (current === undefined) return headers;
  headers[WEBHOOK_SIGNATURE_HEADER] = secrets
    .map((s) => signWebhook(s, id, timestampSeconds, rawBody))
    .join(' ');
  headers[SIGNATURE_HEADER] = signCallbackBody(current, rawBody);
  return headers;
}

/**
 * Deprecated (one release): signs the raw body alone.
 * @param secret - the client's `signing_secret`.
 * @param rawBody - the exact bytes (or UTF-8 text) that are sent.
 * @returns the header value, `sha256=<hex>`.
 */
export function signCallbackBody(secret: string, rawBody: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`;
}

/**
 * Deprecated (one release): checks a body-only signature header in constant time.
 * @returns true when `header` is `sha256=<hex>` and matches.
 */
export function verifyCallbackSignature(
  secret: string,
  rawBody: string | Buffer,
  header: string | undefined,
): boolean {
  if (typeof header !== 'string') return false;
  const expected = Buffer.from(signCallbackBody(secret, rawBody));
  const given = Buffer.from(header.trim());
  return given.length === expected.length && timingSafeEqual(given, expected);
}
