import assert from 'node:assert/strict';
import { it } from 'node:test';
import { CALLBACK_BACKOFF_CAP_MS, callbackBackoffMs, shouldRetryCallback } from './backoff.js';
import { SEVERITY } from '../jobs/job-log.js';
import { planDeliveryOutcome } from './record-outcome.js';
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

void it('plans an attempt: 2xx delivered, else a retry with backoff while the limit allows, then given up', () => {
  const row = {
    attempts: 1,
    body: { task_name: 'encode' },
    kind: 'task' as const,
    event: 'complete',
    target_url: 'https://user:pw@example.test/hook?token=x',
  };
  assert.deepEqual(
    planDeliveryOutcome(row, { status: 204, error: null, durationMs: 12 }, 5, () => 0),
    {
      kind: 'delivered',
      severity: SEVERITY.INFO,
      message:
        "callback 'complete' of task 'encode' to https://example.test/hook?… delivered: HTTP 204 (attempt 1, 12 ms)",
    },
  );
  assert.deepEqual(
    planDeliveryOutcome(row, { status: 302, error: null, durationMs: 3 }, 5, () => 0),
    {
      kind: 'retry',
      delayMs: 1_000,
      lastError: 'HTTP 302',
      severity: SEVERITY.WARN,
      message:
        "callback 'complete' of task 'encode' to https://example.test/hook?… attempt 1 of 6 failed: HTTP 302; retrying in 1 s",
    },
  );
  assert.deepEqual(
    planDeliveryOutcome(
      { ...row, attempts: 2, kind: 'job', body: {} },
      { status: null, error: 'ECONNREFUSED: refused', durationMs: 1 },
      1,
      () => 0,
    ),
    {
      kind: 'failed',
      lastError: 'ECONNREFUSED: refused',
      severity: SEVERITY.ERROR,
      message:
        "callback 'complete' (job end) to https://example.test/hook?… attempt 2 failed: ECONNREFUSED: refused; " +
        'giving up after 2 attempts (callback_retry_limit 1)',
    },
  );
});
