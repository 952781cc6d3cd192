import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock, sleep } from './clock.js';

describe('ManualClock', () => {
  it('fires timers in due order at their own times as it advances', async () => {
    const clock = new ManualClock(1_000);
    const seen: [string, number][] = [];
    clock.setTimeout(() => seen.push(['b', clock.now().getTime()]), 200);
    clock.setTimeout(() => seen.push(['a', clock.now().getTime()]), 100);
    const c = clock.setTimeout(() => seen.push(['c', 0]), 150);
    c.cancel();
    await clock.advance(150);
    assert.deepEqual(seen, [['a', 1_100]]);
    await clock.advance(100);
    assert.deepEqual(seen, [
      ['a', 1_100],
      ['b', 1_200],
    ]);
    assert.equal(clock.now().getTime(), 1_250);
    assert.equal(clock.pendingTimers, 0);
  });

  it('runs a timer set by a fired callback when it falls inside the same advance', async () => {
    const clock = new ManualClock(0);
    let woke = 0;
    const loop = async (): Promise<void> => {
      for (let i = 0; i < 3; i++) {
        await sleep(clock, 1_000);
        woke = clock.now().getTime();
      }
    };
    const done = loop();
    await clock.advance(3_000);
    await done;
    assert.equal(woke, 3_000);
  });

  it('sleep resolves at once when its signal aborts', async () => {
    const clock = new ManualClock(0);
    const ac = new AbortController();
    const p = sleep(clock, 60_000, ac.signal);
    ac.abort();
    await p;
    assert.equal(clock.pendingTimers, 0);
  });
});
