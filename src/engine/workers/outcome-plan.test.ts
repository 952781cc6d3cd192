import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CHANNELS } from '../signals.js';
import type { AdvanceTaskRow } from '../controller/advance.js';
import type { RuntimeJob } from '../controller/job-scope.js';
import { planOutcomes, SUPERSEDED_RESULT, type AttemptOutcome, type OutcomeBatch } from './outcome-plan.js';

const NOW = new Date('2026-03-04T05:06:07.089Z');

function job(queueState = 'started'): RuntimeJob {
  return {
    id: 1,
    client: 'acme',
    workflow: 'wf',
    priority: 5,
    queue_state: queueState,
    content_id: null,
    resolved_parameters: { rest_endpoints: ['http://a.example/h'] },
    definition: {
      name: 'wf',
      parameters: {},
      tasks: [
        { name: 'a', run: 'fail', needs: [], queue: 'work', retry_limit: 1 },
        { name: 'b', run: 'sleep', needs: [], queue: 'work' },
        { name: 'c', run: 'sleep', needs: ['a', 'b'], queue: 'work' },
      ],
    },
    definition_source: 'common',
  };
}

function rows(states: [string, string, string]): AdvanceTaskRow[] {
  return (['a', 'b', 'c'] as const).map((name, i) => ({
    id: 10 + i,
    name,
    queue: 'work',
    state: states[i]!,
    needs: name === 'c' ? ['a', 'b'] : [],
    output: null,
    error: null,
  }));
}

const ref = (taskId: number, attemptId = taskId * 10) => ({ attemptId, taskId, jobId: 1 });

function batch(
  items: [AttemptOutcome, { attemptNumber: number; earlierFailures: number } | null][],
  states: [string, string, string],
  queueState = 'started',
): OutcomeBatch {
  return {
    items: items.map(([outcome, live]) => ({ outcome, live })),
    jobs: new Map([[1, job(queueState)]]),
    tasks: new Map([[1, rows(states)]]),
    settings: { retry_limit: 5, retry_delay: 2 },
    now: NOW,
    storageRoot: '/data',
  };
}

const live1 = { attemptNumber: 1, earlierFailures: 0 };

describe('planOutcomes', () => {
  it('records a success: the task edge, its line, its complete callback, and the advance', () => {
    const { effects, results } = planOutcomes(
      batch(
        [[{ kind: 'success', ref: ref(11), outputJson: '{"x":1}' }, live1]],
        ['succeeded', 'running', 'waiting'],
      ),
    );
    assert.deepEqual(results, ['recorded']);
    assert.deepEqual(effects.attempts, [
      { attemptId: 110, state: 'succeeded', error: null, keepError: true },
    ]);
    assert.deepEqual(
      effects.outcomes.map((o) => [o.taskId, o.edge.from, o.edge.to, o.output, o.error, o.finished]),
      [[11, ['running'], 'succeeded', '{"x":1}', null, true]],
    );
    assert.deepEqual(effects.ready, [12]);
    assert.deepEqual(
      effects.logs.map((l) => l.message),
      ["'b' completed successfully"],
    );
    assert.deepEqual(JSON.parse(effects.taskCallbacks[0]!.body), {
      job_id: 1,
      task_id: 11,
      task_name: 'b',
      workflow: 'wf',
      event: 'complete',
      content_id: null,
      message: "'b' completed successfully",
      time: '2026-03-04T05:06:07.089Z',
      client: 'acme',
      attempt: 1,
    });
  });

  it('retries a failure with retries left: back to ready after the delay, its queue woken', () => {
    const { effects, results } = planOutcomes(
      batch(
        [[{ kind: 'failure', ref: ref(10), failure: { error: 'exit 1' } }, live1]],
        ['running', 'running', 'waiting'],
      ),
    );
    assert.deepEqual(results, ['retry']);
    assert.deepEqual(
      effects.outcomes.map((o) => [o.edge.to, o.edge.cause, o.delaySeconds, o.error]),
      [['ready', 'retry', 2, 'exit 1']],
    );
    assert.deepEqual(effects.notices, [{ channel: CHANNELS.tasks, payload: 'work retry' }]);
    assert.deepEqual(effects.taskCallbacks, []);
    assert.deepEqual(effects.skip, []);
  });

  it('a final failure logs, enqueues its fail callback, and skips the rest of the job', () => {
    const { effects, results } = planOutcomes(
      batch(
        [
          [
            { kind: 'failure', ref: ref(10), failure: { error: 'exit 1' } },
            { attemptNumber: 2, earlierFailures: 1 },
          ],
        ],
        ['running', 'running', 'waiting'],
      ),
    );
    assert.deepEqual(results, ['failed']);
    assert.deepEqual(effects.attempts, [
      { attemptId: 100, state: 'failed', error: 'exit 1', keepError: false },
    ]);
    assert.deepEqual(
      effects.taskCallbacks.map((c) => {
        const body = JSON.parse(c.body) as { message: string; attempt: number };
        return [c.event, body.message, body.attempt];
      }),
      [['fail', "'a' failed: exit 1 (after 2 attempts)", 2]],
    );
    assert.deepEqual(effects.skip, [12]);
    assert.deepEqual(effects.finishes, [], 'b still runs');
  });

  it('applies successes before the other outcomes, as one advance each', () => {
    const { effects, results } = planOutcomes(
      batch(
        [
          [{ kind: 'failure', ref: ref(10), failure: { error: 'bad', permanent: true } }, live1],
          [{ kind: 'success', ref: ref(11), outputJson: 'null' }, live1],
        ],
        ['running', 'running', 'waiting'],
      ),
    );
    assert.deepEqual(results, ['failed', 'recorded']);
    assert.deepEqual(
      effects.logs.map((l) => l.message),
      [
        "'b' completed successfully",
        "'a' failed: bad (permanent failure, not retried)",
        "Task 'c' skipped: task 'a' failed",
        "job has failed: task 'a' failed: bad",
      ],
    );
    assert.deepEqual(
      effects.taskCallbacks.map((c) => c.event),
      ['complete', 'fail'],
    );
    assert.deepEqual(effects.finishes[0]?.failed, true);
    assert.equal(effects.jobCallbacks.length, 1);
  });

  it('a failure is not retried once a sibling failed the job earlier in the batch', () => {
    const { results, effects } = planOutcomes(
      batch(
        [
          [{ kind: 'failure', ref: ref(10), failure: { error: 'bad', permanent: true } }, live1],
          [{ kind: 'failure', ref: ref(11), failure: { error: 'exit 3' } }, live1],
        ],
        ['running', 'running', 'waiting'],
      ),
    );
    assert.deepEqual(results, ['failed', 'failed']);
    assert.match(effects.logs[2]!.message, /not retried: task 'a' has already failed the job/);
  });

  it('a stale outcome only closes its attempt, keeping an error already set', () => {
    const { effects, results } = planOutcomes(
      batch(
        [
          [{ kind: 'success', ref: ref(11), outputJson: '1' }, null],
          [{ kind: 'failure', ref: ref(10), failure: { error: 'late', attemptState: 'stalled' } }, null],
          [{ kind: 'hand_back', ref: ref(12), reason: 'worker shutdown' }, null],
        ],
        ['running', 'running', 'waiting'],
      ),
    );
    assert.deepEqual(results, ['stale', 'stale', 'stale']);
    assert.deepEqual(effects.attempts, [
      { attemptId: 110, state: 'cancelled', error: SUPERSEDED_RESULT, keepError: true },
      { attemptId: 100, state: 'stalled', error: 'late', keepError: true },
      { attemptId: 120, state: 'cancelled', error: 'worker shutdown', keepError: true },
    ]);
    assert.deepEqual(effects.outcomes, []);
    assert.deepEqual(effects.logs, []);
  });

  it('a hand-back puts the task back at once without advancing; a paused job wakes admission', () => {
    const { effects, results } = planOutcomes(
      batch(
        [[{ kind: 'hand_back', ref: ref(11), reason: 'worker shutdown' }, live1]],
        ['running', 'running', 'waiting'],
        'paused',
      ),
    );
    assert.deepEqual(results, ['handed-back']);
    assert.deepEqual(
      effects.outcomes.map((o) => [o.edge.cause, o.delaySeconds, o.error]),
      [['hand_back', 0, undefined]],
    );
    assert.deepEqual(
      effects.logs[0]!.message,
      "Task 'b' handed back (worker shutdown); it will run again without using a retry",
    );
    assert.deepEqual(effects.notices, [
      { channel: CHANNELS.tasks, payload: 'work' },
      { channel: CHANNELS.admission, payload: 'paused job task handed back' },
    ]);
    assert.equal(effects.wakeAdmission, false);
  });
});
