import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { scheduleTiming } from './schedule-runner.js';

void describe('schedule timing', () => {
  void it('takes every and first_in from the definitions, queue_scheduled_jobs following schedule_interval', () => {
    const { everyMs, firstInMs } = scheduleTiming();
    assert.equal(everyMs('queue_scheduled_jobs', 60), 60_000);
    assert.equal(everyMs('queue_scheduled_jobs', 1), 1_000);
    assert.equal(everyMs('push_jobs', 60), 30_000);
    assert.equal(everyMs('recover_stalled_tasks', 60), 15_000);
    assert.equal(everyMs('cleanup_jobs', 60), 3_600_000);
    assert.deepEqual(
      (['queue_scheduled_jobs', 'push_jobs', 'recover_stalled_tasks', 'cleanup_jobs'] as const).map(
        firstInMs,
      ),
      [5_000, 10_000, 15_000, 60_000],
    );
  });

  void it('an override replaces only the values it names', () => {
    const { everyMs, firstInMs } = scheduleTiming({ push_jobs: { everySeconds: 0.2 } });
    assert.equal(everyMs('push_jobs', 60), 200);
    assert.equal(firstInMs('push_jobs'), 10_000);
    assert.equal(everyMs('queue_scheduled_jobs', 60), 60_000);
  });
});
