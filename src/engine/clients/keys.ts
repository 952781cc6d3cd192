/**
 * API keys and signing secrets: random, shown once, stored as SHA-256 hashes (keys) and compared
 * in constant time (SPEC section 4).
 */
import * as nodeCrypto from 'node:crypto';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Bytes of randomness in a generated API key or signing secret. */
export const SECRET_BYTES = 32;

/** A new random secret: 32 random bytes as base64url (43 characters). */
export function generateSecret(): string {
  return randomBytes(SECRET_BYTES).toString('base64url');
}

/**
 * The stored form of an API key: lowercase hex SHA-256 of its UTF-8 bytes (64 characters).
 * The key itself is never stored.
 */
export function hashApiKey(apiKey: string): string {
  return sha256Hex(apiKey);
}

/**
 * Node's one-shot `crypto.hash` (Node 20.12 and later): no `Hash` object per call, about a third
 * of the time of `createHash` for a key (it runs on every API request, see
 * `authenticateClientCached`). Absent on older Node 20 releases, which `createHash` serves.
 */
const oneShotHash = typeof nodeCrypto.hash === 'function' ? nodeCrypto.hash : undefined;

/** Lowercase hex SHA-256 of the UTF-8 bytes of `text`. */
export function sha256Hex(text: string): string {
  return oneShotHash
    ? oneShotHash('sha256', text, 'hex')
    : createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * Whether `apiKey` hashes to `storedHash`, compared in constant time (the comparison takes the
 * same time wherever the first differing byte is).
 */
export function apiKeyMatches(apiKey: string, storedHash: string): boolean {
  const given = Buffer.from(hashApiKey(apiKey), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  if (stored.length !== given.length) return false;
  return timingSafeEqual(given, stored);
}

/** The last 4 characters of a key, kept so that a person can tell keys apart. */
export function keyLast4(apiKey: string): string {
  return apiKey.slice(-4);
}
