import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ReadyTaskWaitingRow } from '../../store/queries/tasks.js';
import { explainReadyTask } from './task-waiting.js';

const NOW = new Date('2030-01-01T00:00:00Z');

function row(extra: Partial<ReadyTaskWaitingRow> = {}): ReadyTaskWaitingRow {
  return {
    id: 1,
    name: 'encode',
    queue: 'work',
    slots: 1,
    run_after: new Date(NOW.getTime() - 1000),
    concurrency_key: null,
    concurrency_limit: null,
    workers: 2,
    capacity: 8,
    largest: 4,
    slots_in_use: 8,
    largest_free: 0,
    ahead_job_id: null,
    ahead_task: null,
    ahead_slots: null,
    holders: 0,
    holder_tasks: null,
    ...extra,
  };
}

describe('explainReadyTask', () => {
  it('says no_worker_for_queue before anything else', () => {
    const w = explainReadyTask(row({ workers: 0, capacity: 0, largest: 0, slots: 9 }), NOW);
    assert.equal(w?.reason, 'no_worker_for_queue');
    assert.match(w.detail, /No live worker takes tasks from queue 'work'/);
  });
  it('says task_too_heavy when the task needs more slots than the largest live worker', () => {
    const w = explainReadyTask(row({ slots: 5 }), NOW);
    assert.equal(w?.reason, 'task_too_heavy');
    assert.match(w.detail, /needs 5 worker slots.*the largest has 4/);
    assert.equal(explainReadyTask(row({ slots: 4 }), NOW)?.reason, 'workers_busy');
  });
  it('says concurrency_key naming the key, its limit and who holds it', () => {
    const w = explainReadyTask(
      row({
        concurrency_key: 'encode:acme',
        concurrency_limit: 1,
        holders: 7,
        holder_tasks: [
          { job_id: 12, task: 'encode' },
          { job_id: 13, task: 'encode' },
        ],
      }),
      NOW,
    );
    assert.equal(w?.reason, 'concurrency_key');
    assert.equal(
      w?.detail,
      "Task 'encode' waits for concurrency key 'encode:acme' (limit 1), held by job 12 (task 'encode'), job 13 (task 'encode') and 5 more.",
    );
    // Below the limit the key is not the reason.
    const free = row({
      concurrency_key: 'k',
      concurrency_limit: 2,
      holders: 1,
      holder_tasks: [{ job_id: 1, task: 'x' }],
    });
    assert.equal(explainReadyTask(free, NOW)?.reason, 'workers_busy');
  });
  it('says workers_busy with the slots in use otherwise, and nothing for a retry delay', () => {
    const w = explainReadyTask(row({ workers: 1, capacity: 4, largest: 4, slots_in_use: 3, slots: 2 }), NOW);
    assert.equal(w?.reason, 'workers_busy');
    assert.equal(
      w?.detail,
      "The live worker of queue 'work' uses 3 of 4 slots; task 'encode' needs 2 and is taken when they are free, in turn.",
    );
    assert.equal(explainReadyTask(row({ run_after: new Date(NOW.getTime() + 5000) }), NOW), null);
  });
  it('says nothing when a worker has room for it, and names a heavier task ahead that a claim stops at', () => {
    // Ready a moment before a worker claims it: the worker has the room, so it waits for nothing.
    const room = row({ workers: 1, capacity: 8, largest: 8, slots_in_use: 0, largest_free: 8 });
    assert.equal(explainReadyTask(room, NOW), null);
    const behind = explainReadyTask(
      row({
        workers: 1,
        capacity: 8,
        largest: 8,
        slots_in_use: 6,
        largest_free: 2,
        ahead_job_id: 7,
        ahead_task: 'render',
        ahead_slots: 4,
      }),
      NOW,
    );
    assert.equal(behind?.reason, 'workers_busy');
    assert.equal(
      behind?.detail,
      "A live worker of queue 'work' has 2 free slots, but task 'render' of job 7, ahead in the queue, needs 4: task 'encode' is taken after it.",
    );
  });
});
