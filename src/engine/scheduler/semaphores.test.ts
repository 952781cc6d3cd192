import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { listPendingJobs, queueJobOnSemaphore } from '../../store/queries/due-jobs.js';
import {
  SEMAPHORE_EDGE,
  SEMAPHORE_MAX_RECHECK_MS,
  isDueForCheck,
  semaphoreMaxRecheckMs,
  semaphoreRecheckDelayMs,
} from './semaphores.js';

void describe('semaphore decisions', () => {
  void it('backs off 5, 10, 20, 40 s … capped at the maximum, never below 1 s', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((f) => semaphoreRecheckDelayMs(f, SEMAPHORE_MAX_RECHECK_MS)),
      [5_000, 10_000, 20_000, 40_000, 60_000, 60_000],
    );
    assert.equal(semaphoreRecheckDelayMs(3, 15_000), 15_000);
    assert.equal(semaphoreRecheckDelayMs(1, 200), 1_000);
  });

  void it('caps the backoff at schedule_interval seconds and at 60 s', () => {
    assert.equal(semaphoreMaxRecheckMs(10), 10_000);
    assert.equal(semaphoreMaxRecheckMs(600), SEMAPHORE_MAX_RECHECK_MS);
  });

  void it('checks a job never checked, changed since its check, or whose backoff ran out', () => {
    const st = { failures: 1, version: 100, nextCheckAt: 5_000, lastResult: 'HTTP 503' };
    assert.equal(isDueForCheck(undefined, 100, 0), true);
    assert.equal(isDueForCheck(st, 101, 0), true, 'row changed');
    assert.equal(isDueForCheck(st, 100, 4_999), false, 'backing off');
    assert.equal(isDueForCheck(st, 100, 5_000), true, 'backoff over');
  });

  void it('the semaphore statements take the declared pending → queued edge', () => {
    assert.deepEqual(SEMAPHORE_EDGE.from, ['pending']);
    assert.equal(SEMAPHORE_EDGE.to, 'queued');
    assert.match(queueJobOnSemaphore.text, /SET queue_state = 'queued'/);
    assert.match(queueJobOnSemaphore.text, /AND queue_state = 'pending'/);
    assert.match(listPendingJobs.text, /WHERE queue_state = 'pending'/);
  });
});
