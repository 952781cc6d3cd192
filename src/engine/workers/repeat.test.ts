import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../clock.js';
import { repeatEvery } from './repeat.js';

describe('repeatEvery', () => {
  it('calls back once per period of the clock until cancelled', async () => {
    const clock = new ManualClock(0);
    const at: number[] = [];
    const timer = repeatEvery(clock, 100, () => at.push(clock.now().getTime()));
    await clock.advance(350);
    assert.deepEqual(at, [100, 200, 300]);
    timer.cancel();
    await clock.advance(1_000);
    assert.deepEqual(at, [100, 200, 300]);
    assert.equal(clock.pendingTimers, 0);
  });
});
