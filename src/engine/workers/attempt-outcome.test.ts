import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PermanentTaskError, RetryAfterError } from '../../errors/task-errors.js';
import { PermanentSetupError } from './attempt-errors.js';
import { describeFailure } from './attempt-outcome.js';

describe('describeFailure', () => {
  it('makes a setup failure and a PermanentTaskError permanent, by class or by name', () => {
    assert.deepEqual(describeFailure(new PermanentSetupError('inputs cannot be rendered')), {
      error: 'inputs cannot be rendered',
      permanent: true,
    });
    assert.deepEqual(describeFailure(new PermanentTaskError('bad input')), {
      error: 'bad input',
      permanent: true,
    });
    // A module handler's own copy of the class counts by its name.
    const copy = Object.assign(new Error('copied'), { name: 'PermanentTaskError' });
    assert.deepEqual(describeFailure(copy), { error: 'copied', permanent: true });
  });

  it('takes the delay of a RetryAfterError and leaves any other error an ordinary failure', () => {
    assert.deepEqual(describeFailure(new RetryAfterError('busy', 7)), {
      error: 'busy',
      retryAfterSeconds: 7,
    });
    assert.deepEqual(
      describeFailure(Object.assign(new Error('x'), { name: 'RetryAfterError', retryAfterSeconds: -1 })),
      {
        error: 'x',
      },
    );
    assert.deepEqual(describeFailure(new Error('boom')), { error: 'boom' });
    assert.deepEqual(describeFailure('plain'), { error: 'plain' });
  });
});
