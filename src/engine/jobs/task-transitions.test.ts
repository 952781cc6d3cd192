import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canTaskTransition, ENDED_TASK_STATES, TASK_TRANSITIONS, taskEdge } from './task-transitions.js';

describe('task transitions', () => {
  it('ended states have no way out', () => {
    for (const s of ENDED_TASK_STATES) assert.deepEqual(TASK_TRANSITIONS[s], {});
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
