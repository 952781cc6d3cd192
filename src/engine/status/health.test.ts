import assert from 'node:assert/strict';
import { it } from 'node:test';
import { jobsByState } from './health.js';

it('counts a superseded failure in broken, superseded and superseded_failed, not in failed', () => {
  const jobs = jobsByState([
    { queue_state: 'completed', failed: false, superseded: false, n: 5 },
    { queue_state: 'completed', failed: true, superseded: false, n: 2 },
    { queue_state: 'broken', failed: true, superseded: true, n: 3 },
    { queue_state: 'broken', failed: false, superseded: true, n: 4 },
    { queue_state: 'broken', failed: false, superseded: false, n: 1 },
    { queue_state: 'queued', failed: false, superseded: false, n: 6 },
  ]);
  assert.deepEqual(jobs, {
    completed: 5,
    failed: 2,
    pending: 0,
    broken: 8,
    queued: 6,
    started: 0,
    scheduled: 0,
    paused: 0,
    superseded: 7,
    superseded_failed: 3,
  });
});
