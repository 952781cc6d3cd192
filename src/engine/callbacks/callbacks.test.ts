import assert from 'node:assert/strict';
import { it } from 'node:test';
import { CALLBACK_BACKOFF_CAP_MS, callbackBackoffMs, shouldRetryCallback } from './backoff.js';
import { signCallbackBody, verifyCallbackSignature } from './signing.js';

void it('backs off 1 s, 2 s, 4 s … capped at 5 minutes, jitter at most 10 %', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((n) => callbackBackoffMs(n, () => 0)),
    [1_000, 2_000, 4_000, 8_000, 16_000],
  );
  assert.equal(
    callbackBackoffMs(30, () => 0),
    CALLBACK_BACKOFF_CAP_MS,
  );
  assert.equal(
    callbackBackoffMs(1000, () => 0),
    CALLBACK_BACKOFF_CAP_MS,
  );
  assert.equal(
    callbackBackoffMs(1, () => 0.999),
    1_100,
  );
});

void it('allows the first attempt plus callback_retry_limit retries', () => {
  assert.equal(shouldRetryCallback(1, 5), true);
  assert.equal(shouldRetryCallback(5, 5), true);
  assert.equal(shouldRetryCallback(6, 5), false);
  assert.equal(shouldRetryCallback(1, 0), false);
});

void it('signs the raw body as sha256=<hex HMAC> and verifies only the exact bytes', () => {
  const raw = '{"job_id":1,"event":"start"}';
  // Reference value: printf '%s' "$raw" | openssl dgst -sha256 -hmac s3cret
  assert.equal(
    signCallbackBody('s3cret', raw),
    'sha256=f13fc7e394609349bd0e1ce76637cbdd70635fc2583bcddc70ef8778d0786205',
  );
  assert.equal(signCallbackBody('s3cret', Buffer.from(raw)), signCallbackBody('s3cret', raw));
  assert.ok(verifyCallbackSignature('s3cret', raw, signCallbackBody('s3cret', raw)));
  assert.ok(!verifyCallbackSignature('s3cret', raw + ' ', signCallbackBody('s3cret', raw)));
  assert.ok(!verifyCallbackSignature('other', raw, signCallbackBody('s3cret', raw)));
  assert.ok(!verifyCallbackSignature('s3cret', raw, undefined));
  assert.ok(!verifyCallbackSignature('s3cret', raw, 'sha256=short'));
});
