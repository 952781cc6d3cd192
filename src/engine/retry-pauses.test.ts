import assert from 'node:assert/strict';
import { it } from 'node:test';
import { backoffAfterFailuresMs, writeRetryPauseMs } from './retry-pauses.js';

it('backoffAfterFailuresMs doubles from 200 ms up to 5 s', () => {
  assert.deepEqual([1, 2, 3, 5, 6, 20].map(backoffAfterFailuresMs), [200, 400, 800, 3_200, 5_000, 5_000]);
});

it('writeRetryPauseMs grows by 200 ms a try up to 2 s', () => {
  assert.deepEqual([1, 2, 5, 10, 11, 100].map(writeRetryPauseMs), [200, 400, 1_000, 2_000, 2_000, 2_000]);
});
