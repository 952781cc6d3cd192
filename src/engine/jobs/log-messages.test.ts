import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  definitionsLine,
  formatSeconds,
  jobFailureReason,
  jobFinishedLine,
  taskFailedLine,
  taskSkippedLine,
} from './log-messages.js';

describe('job log messages', () => {
  it('the definitions line: one common wording, and the client wording each writer has always used', () => {
    for (const where of ['submit', 'claim', 'callback'] as const)
      assert.equal(definitionsLine('common', where), 'No client definitions. Using common definitions.');
    assert.equal(definitionsLine('client', 'submit'), 'Using client definitions.');
    assert.equal(definitionsLine('client', 'claim'), 'Client definitions found. Using client definitions.');
    assert.equal(definitionsLine('client', 'callback', 'acme'), 'Using client definitions of acme.');
  });

  it('a final failure says why it was not retried', () => {
    assert.equal(
      taskFailedLine('a', 'failed', 'e', { kind: 'retries-used', attempts: 1 }, false),
      "'a' failed: e",
    );
    assert.equal(
      taskFailedLine('a', 'stalled', 'e', { kind: 'retries-used', attempts: 4 }, true),
      "'a' stalled: e (after 4 attempts); continuing (continue_on_error)",
    );
  });

  it('skips, finishes and seconds', () => {
    assert.equal(
      taskSkippedLine('b', { kind: 'condition-false', condition: '{{ x }}' }),
      'Task \'b\' skipped: condition "{{ x }}" is false',
    );
    assert.equal(jobFinishedLine(null), 'job has completed successfully');
    assert.equal(jobFinishedLine(jobFailureReason('a', null)), "job has failed: task 'a' failed");
    assert.deepEqual([formatSeconds(5), formatSeconds(0.25), formatSeconds(1 / 3)], ['5', '0.25', '0.333']);
  });
});
