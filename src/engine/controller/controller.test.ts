import assert from 'node:assert/strict';
import { it } from 'node:test';
import { pino } from 'pino';
import { ManualClock } from '../clock.js';
import type { EngineContext } from '../context.js';
import { admissionBackoffMs, createController } from './controller.js';

/**
 * A context whose store answers every admission pass with `outcome()` (a count of jobs started,
 * or a thrown error) without touching a database, and records the admission listener.
 */
function fakeContext(clock: ManualClock, outcome: () => number) {
  const calls = { passes: 0, listener: null as (() => void) | null };
  const db = {
    // eslint-disable-next-line @typescript-eslint/require-await -- async like a real transaction: a throw of outcome() rejects
    transaction: async () => {
      calls.passes++;
      return outcome();
    },
    listen: (_channel: string, fn: () => void) => {
      calls.listener = fn;
      return Promise.resolve(() => {
        calls.listener = null;
        return Promise.resolve();
      });
    },
  };
  const ctx = { db, clock, logger: pino({ level: 'silent' }) } as unknown as EngineContext;
  return { ctx, calls };
}

it('admissionBackoffMs doubles from 200 ms up to 5 s', () => {
  assert.deepEqual([1, 2, 3, 5, 6, 20].map(admissionBackoffMs), [200, 400, 800, 3_200, 5_000, 5_000]);
});

it('runs a pass at start, on a wake-up (coalesced) and on the safety timer, on the engine clock', async () => {
  const clock = new ManualClock(0);
  const { ctx, calls } = fakeContext(clock, () => 0);
  const c = createController(ctx, { debounceMs: 2, safetyIntervalMs: 1_000 });
  await c.start();
  await clock.advance(0);
  assert.equal(calls.passes, 1);
  calls.listener!();
  calls.listener!();
  c.wake();
  await clock.advance(2);
  assert.equal(calls.passes, 2, 'three wake-ups within the window are one pass');
  await clock.advance(998);
  assert.equal(calls.passes, 3, 'the safety timer');
  await clock.advance(1_000);
  assert.equal(calls.passes, 4);
  await c.stop();
  assert.equal(calls.listener, null);
  await clock.advance(10_000);
  assert.equal(calls.passes, 4, 'nothing runs once stopped');
  assert.equal(clock.pendingTimers, 0);
});

it('retries a failed pass after the back-off, and runs again at once after a full pass', async () => {
  const clock = new ManualClock(0);
  const outcomes: (() => number)[] = [
    () => {
      throw new Error('database away');
    },
    () => 1_000,
    () => 0,
  ];
  const { ctx, calls } = fakeContext(clock, () => (outcomes.shift() ?? (() => 0))());
  const c = createController(ctx, { debounceMs: 2, safetyIntervalMs: 60_000 });
  await c.start();
  await clock.advance(0);
  assert.equal(calls.passes, 1);
  await clock.advance(199);
  assert.equal(calls.passes, 1, 'not before the back-off');
  await clock.advance(1);
  assert.equal(calls.passes, 2, 'retried after 200 ms');
  await clock.advance(2);
  assert.equal(calls.passes, 3, 'a full pass is followed by another');
  await clock.advance(1_000);
  assert.equal(calls.passes, 3);
  await c.stop();
});
