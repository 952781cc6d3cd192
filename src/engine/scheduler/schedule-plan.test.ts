import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAX_DUE_TIMER_MS,
  MAX_TIMER_MS,
  dueTimerStep,
  firedEarly,
  nextRunAt,
  scheduleWaitMs,
} from './schedule-plan.js';

const t = (ms: number): Date => new Date(Date.UTC(2030, 0, 1) + ms);

void describe('schedule plan', () => {
  void it('plans the next run one interval after the run started, never in the past', () => {
    assert.deepEqual(nextRunAt(t(0), 60_000, t(2_000)), t(60_000));
    // A run that took longer than its interval is followed at once.
    assert.deepEqual(nextRunAt(t(0), 1_000, t(5_000)), t(5_000));
  });

  void it('waits until the plan, 0 when due, and cuts long waits into pieces of at most an hour', () => {
    assert.equal(scheduleWaitMs(t(1_500), t(0)), 1_500);
    assert.equal(scheduleWaitMs(t(0), t(10)), 0);
    assert.equal(scheduleWaitMs(t(10 * MAX_TIMER_MS), t(0)), MAX_TIMER_MS);
  });

  void it('a timer firing more than 20 ms before its plan is early; at or after it, or unplanned, it is not', () => {
    assert.equal(firedEarly(t(100), t(0)), true);
    assert.equal(firedEarly(t(20), t(0)), false);
    assert.equal(firedEarly(t(0), t(50)), false);
    assert.equal(firedEarly(null, t(0)), false);
  });

  void it('the run_at timer moves due jobs now, waits for the next run_at, and looks again at least once a minute', () => {
    assert.deepEqual(dueTimerStep(t(0), t(0)), { moveNow: true });
    assert.deepEqual(dueTimerStep(t(-5), t(0)), { moveNow: true });
    assert.deepEqual(dueTimerStep(t(3_000), t(0)), { moveNow: false, waitMs: 3_000 });
    assert.deepEqual(dueTimerStep(t(3_600_000), t(0)), { moveNow: false, waitMs: MAX_DUE_TIMER_MS });
    assert.deepEqual(dueTimerStep(null, t(0)), { moveNow: false, waitMs: MAX_DUE_TIMER_MS });
  });
});
