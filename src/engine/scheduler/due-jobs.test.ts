import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { moveDueScheduledJobs } from '../../store/queries/due-jobs.js';
import { jobEdge } from '../jobs/transitions.js';
import { DUE_EDGES, dueLogMessage } from './due-jobs.js';

void describe('due jobs', () => {
  void it('the due statement takes exactly the declared scheduled → queued / pending edges', () => {
    assert.deepEqual(
      DUE_EDGES.map((e) => [e.from, e.to, e.cause]),
      [
        [['scheduled'], 'queued', 'due'],
        [['scheduled'], 'pending', 'due'],
      ],
    );
    const text = moveDueScheduledJobs.text;
    assert.match(text, /WHERE queue_state = 'scheduled' AND run_at <= \$1/);
    assert.match(text, /AND j\.queue_state = 'scheduled'/);
    assert.match(text, /THEN 'queued' ELSE 'pending' END/);
  });

  void it('declaring an edge the job table lacks fails at once', () => {
    assert.throws(
      () => jobEdge('completed', 'queued', 'due'),
      /job transition completed → queued \(due\) is not in the table/,
    );
    assert.throws(() => jobEdge(['scheduled', 'paused'], 'pending', 'due'), /paused → pending/);
  });

  void it('logs the run_at reached and, for a gated job, its semaphore without query tokens', () => {
    const runAt = new Date('2030-01-01T00:00:00.000Z');
    assert.equal(
      dueLogMessage({ queue_state: 'queued', run_at: runAt, semaphore_url: null }),
      'run_at 2030-01-01T00:00:00.000Z reached: job queued',
    );
    const gated = dueLogMessage({
      queue_state: 'pending',
      run_at: runAt,
      semaphore_url: 'http://sem.example/go?token=secret',
    });
    assert.match(
      gated,
      /^run_at 2030-01-01T00:00:00\.000Z reached: job pending until its semaphore http:\/\/sem\.example\/go\?… answers 2xx\/3xx$/,
    );
    assert.doesNotMatch(gated, /secret/);
  });
});
