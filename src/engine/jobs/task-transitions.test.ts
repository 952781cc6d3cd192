import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canTaskTransition, ENDED_TASK_STATES, TASK_TRANSITIONS, taskEdge } from './task-transitions.js';

describe('task transitions', () => {
  it('ended states have no way out but a retry of the job', () => {
    for (const s of ENDED_TASK_STATES) {
      const causes = Object.values(TASK_TRANSITIONS[s]).flat();
      assert.ok(
        causes.every((c) => c === 'retry_job'),
        `${s}: ${causes.join(', ')}`,
      );
    }
    for (const s of ['succeeded', 'failed', 'skipped', 'cancelled'] as const)
      assert.equal(canTaskTransition(s, 'waiting', 'retry_job'), true);
  });
  it('a claim moves ready to running, and only ready', () => {
    assert.equal(canTaskTransition('ready', 'running', 'claim'), true);
    assert.equal(canTaskTransition('waiting', 'running', 'claim'), false);
  });
  it('taskEdge accepts a table edge and throws for one outside it', () => {
    assert.deepEqual(taskEdge(['waiting', 'ready'], 'skipped', 'skip').from, ['waiting', 'ready']);
    assert.throws(
      () => taskEdge('succeeded', 'ready', 'retry'),
      /succeeded → ready \(retry\) is not in the table/,
    );
  });
});
