import { it } from 'node:test';
import assert from 'node:assert/strict';
import { assertTransition, canTransition, JOB_STATES, jobEdge, statesAllowing } from './transitions.js';
import { isEngineError } from '../../errors/catalogue.js';

it('lets a rerun mark only a completed job broken; a break needs a live job', () => {
  assert.equal(canTransition('completed', 'broken', 'rerun'), true);
  assert.equal(canTransition('completed', 'broken', 'break'), false);
  assert.equal(canTransition('broken', 'broken', 'rerun'), false);
  assert.deepEqual(statesAllowing('broken', 'rerun'), ['completed']);
  assert.deepEqual(statesAllowing('broken', 'break').sort(), [
    'paused',
    'pending',
    'queued',
    'scheduled',
    'started',
  ]);
});

it('never moves a job out of completed or broken other than by a rerun or a retry', () => {
  for (const to of JOB_STATES)
    for (const cause of [
      'submit',
      'due',
      'semaphore',
      'admit',
      'finish',
      'pause',
      'break',
      'resume',
      'reschedule',
    ] as const) {
      assert.equal(canTransition('completed', to, cause), false, `completed → ${to} by ${cause}`);
      assert.equal(canTransition('broken', to, cause), false, `broken → ${to} by ${cause}`);
    }
  assert.deepEqual(statesAllowing('queued', 'retry'), ['completed', 'broken']);
});

it('explains a refused transition with the states that allow it', () => {
  assert.throws(
    () => assertTransition(42, 'completed', 'paused', 'pause'),
    (e: unknown) =>
      isEngineError(e, 'STATE_CONFLICT') &&
      e.message === 'job 42 is completed; only queued, started, pending or scheduled jobs can be paused' &&
      e.jobId === 42,
  );
});

it('jobEdge accepts table edges and throws for one outside it', () => {
  assert.deepEqual(jobEdge('queued', 'started', 'admit'), {
    from: ['queued'],
    to: 'started',
    cause: 'admit',
  });
  assert.deepEqual(jobEdge(['scheduled', 'pending'], 'queued', 'resume').from, ['scheduled', 'pending']);
  assert.throws(
    () => jobEdge('paused', 'started', 'admit'),
    /paused → started \(admit\) is not in the table/,
  );
});
