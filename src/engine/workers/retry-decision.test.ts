import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SEVERITY } from '../jobs/job-log.js';
import { decideFailure, MAX_DELAY_SECONDS, type FailureFacts } from './retry-decision.js';

const facts = (over: Partial<FailureFacts> = {}): FailureFacts => ({
  task: 'encode',
  failure: { error: 'exit 1' },
  failedAttempts: 1,
  retryLimit: 2,
  retryDelay: 5,
  continues: false,
  failedBy: undefined,
  ...over,
});

describe('decideFailure', () => {
  it('retries while failed attempts are within retry_limit + 1, after retry_delay', () => {
    assert.deepEqual(decideFailure(facts()), {
      retry: true,
      delaySeconds: 5,
      message: "Task 'encode' failed: exit 1; retrying in 5s (attempt 2 of 3)",
      severity: SEVERITY.WARN,
    });
    assert.equal(decideFailure(facts({ failedAttempts: 2 })).retry, true);
    assert.equal(decideFailure(facts({ failedAttempts: 3 })).retry, false);
  });

  it('fails for good once retries are used up, saying after how many attempts', () => {
    assert.deepEqual(decideFailure(facts({ failedAttempts: 3 })), {
      retry: false,
      message: "'encode' failed: exit 1 (after 3 attempts)",
      severity: SEVERITY.ERROR,
    });
    assert.equal(decideFailure(facts({ retryLimit: 0 })).message, "'encode' failed: exit 1");
  });

  it('never retries a permanent failure', () => {
    const d = decideFailure(facts({ failure: { error: 'bad input', permanent: true } }));
    assert.equal(d.retry, false);
    assert.equal(d.message, "'encode' failed: bad input (permanent failure, not retried)");
  });

  it('does not retry once a sibling has failed the job, naming it', () => {
    const d = decideFailure(facts({ failedBy: 'probe' }));
    assert.equal(d.retry, false);
    assert.equal(d.message, "'encode' failed: exit 1 (not retried: task 'probe' has already failed the job)");
  });

  it('a RetryAfterError delay wins; the applied delay is clamped, the logged one is as asked', () => {
    const after = decideFailure(facts({ failure: { error: 'busy', retryAfterSeconds: 0.25 } }));
    assert.equal(after.retry && after.delaySeconds, 0.25);
    assert.match(after.message, /retrying in 0\.25s/);
    const huge = decideFailure(facts({ retryDelay: 10 * MAX_DELAY_SECONDS }));
    assert.equal(huge.retry && huge.delaySeconds, MAX_DELAY_SECONDS);
    const negative = decideFailure(facts({ retryDelay: -3 }));
    assert.equal(negative.retry && negative.delaySeconds, 0);
  });

  it('says stalled for a stalled attempt, and warns only when the job continues', () => {
    const stalled = decideFailure(facts({ failure: { error: 'no heartbeat', attemptState: 'stalled' } }));
    assert.match(stalled.message, /^Task 'encode' stalled: no heartbeat; retrying/);
    const goesOn = decideFailure(facts({ retryLimit: 0, continues: true }));
    assert.equal(goesOn.severity, SEVERITY.WARN);
    assert.equal(goesOn.message, "'encode' failed: exit 1; continuing (continue_on_error)");
  });
});
