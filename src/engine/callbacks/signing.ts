/**
 * Signing of callback requests (SPEC section 7).
 *
 * What is signed: exactly the raw request body bytes (the UTF-8 JSON text sent), nothing else.
 * `X-Task-Engine-Signature: sha256=<lower-case hex HMAC-SHA256(secret, raw body)>`.
 * `X-Task-Engine-Timestamp` carries the send time in Unix seconds; it is NOT covered by the
 * signature (the SPEC signs the body only). Receivers that want replay protection should use the
 * signed `time` field inside the body, and the `X-Task-Engine-Delivery` id to drop duplicates.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Header carrying the body signature. */
export const SIGNATURE_HEADER = 'X-Task-Engine-Signature';
/** Header carrying the send time (Unix seconds, not signed). */
export const TIMESTAMP_HEADER = 'X-Task-Engine-Timestamp';
/** Header carrying the delivery id (the same on every attempt of one delivery). */
export const DELIVERY_HEADER = 'X-Task-Engine-Delivery';
/** Header carrying the 1-based attempt number of the delivery. */
export const ATTEMPT_HEADER = 'X-Task-Engine-Attempt';

/**
 * Signs a raw body.
 * @param secret - the client's `signing_secret`.
 * @param rawBody - the exact bytes (or UTF-8 text) that are sent.
 * @returns the header value, `sha256=<hex>`.
 */
export function signCallbackBody(secret: string, rawBody: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`;
}

/**
 * Checks a signature header against a raw body in constant time (what a receiver does).
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
