import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TaskDefinition } from '../../workflows/types.js';
import { addAdvance, emptyEffects, planAdvance, type AdvanceTaskRow } from './advance.js';
import type { RuntimeJob } from './job-scope.js';

type Def = Partial<TaskDefinition> & { name: string };

function job(defs: Def[], over: Partial<RuntimeJob> = {}): RuntimeJob {
  return {
    id: 7,
    client: 'acme',
    workflow: 'wf',
    priority: 5,
    queue_state: 'started',
    content_id: 'c-1',
    resolved_parameters: { rest_endpoints: ['http://a.example/hook'], custom_data: { k: 1 } },
    definition: {
      name: 'wf',
      parameters: {},
      tasks: defs.map((d) => ({ run: 'sleep', needs: [], queue: 'work', ...d })),
    },
    definition_source: 'common',
    ...over,
  };
}

function tasks(spec: [name: string, state: string, needs?: string[]][]): AdvanceTaskRow[] {
  return spec.map(([name, state, needs = []], i) => ({
    id: i + 1,
    name,
    queue: 'work',
    state,
    needs,
    output: state === 'succeeded' ? { n: i } : null,
    error: state === 'failed' ? 'boom' : null,
  }));
}

describe('planAdvance', () => {
  it('releases a waiting task once every task it needs ended well', () => {
    const ts = tasks([
      ['a', 'succeeded'],
      ['b', 'waiting', ['a']],
      ['c', 'waiting', ['a', 'b']],
    ]);
    const plan = planAdvance(job([{ name: 'a' }, { name: 'b' }, { name: 'c' }]), ts, '/data');
    assert.deepEqual(
      plan.toReady.map((t) => t.name),
      ['b'],
    );
    assert.deepEqual(
      ts.map((t) => t.state),
      ['succeeded', 'ready', 'waiting'],
    );
    assert.equal(plan.failedTask, undefined);
  });

  it('skips a task whose if is false, which releases the tasks that need it', () => {
    const ts = tasks([
      ['a', 'succeeded'],
      ['b', 'waiting', ['a']],
      ['c', 'waiting', ['b']],
    ]);
    const plan = planAdvance(
      job([{ name: 'a' }, { name: 'b', if: '{{ tasks.a.output.n > 5 }}' }, { name: 'c' }]),
      ts,
      '/data',
    );
    assert.deepEqual(
      plan.toSkip.map((s) => [s.task.name, s.reason]),
      [['b', { kind: 'condition-false', condition: '{{ tasks.a.output.n > 5 }}' }]],
    );
    assert.deepEqual(
      plan.toReady.map((t) => t.name),
      ['c'],
    );
  });

  it('a failure without continue_on_error skips every waiting and ready task, leaving running ones', () => {
    const ts = tasks([
      ['a', 'failed'],
      ['b', 'ready'],
      ['c', 'running'],
      ['d', 'waiting', ['b']],
    ]);
    const plan = planAdvance(job([{ name: 'a' }, { name: 'b' }, { name: 'c' }, { name: 'd' }]), ts, '/data');
    assert.equal(plan.failedTask?.name, 'a');
    assert.deepEqual(
      plan.toSkip.map((s) => s.task.name),
      ['b', 'd'],
    );
    assert.deepEqual(
      ts.map((t) => t.state),
      ['failed', 'skipped', 'running', 'skipped'],
    );
  });

  it('a failure with continue_on_error counts as ended well', () => {
    const ts = tasks([
      ['a', 'failed'],
      ['b', 'waiting', ['a']],
    ]);
    const plan = planAdvance(job([{ name: 'a', continue_on_error: true }, { name: 'b' }]), ts, '/data');
    assert.equal(plan.failedTask, undefined);
    assert.deepEqual(
      plan.toReady.map((t) => t.name),
      ['b'],
    );
  });

  it('a condition that cannot be rendered skips the task with a warning', () => {
    const ts = tasks([
      ['a', 'succeeded'],
      ['b', 'waiting', ['a']],
    ]);
    const plan = planAdvance(job([{ name: 'a' }, { name: 'b', if: '{{ nope( }}' }]), ts, '/data');
    assert.equal(plan.toSkip[0]?.task.name, 'b');
    assert.match(plan.warnings[0]!.message, /^Task 'b': condition "\{\{ nope\( \}\}" could not be evaluated/);
  });
});

describe('addAdvance', () => {
  it('finishes a started job whose tasks all ended, with its log line and job-end callback', () => {
    const e = emptyEffects();
    const now = new Date('2026-01-02T03:04:05.678Z');
    const { finishing } = addAdvance(e, job([{ name: 'a' }]), tasks([['a', 'succeeded']]), 1, '/data', now);
    assert.equal(finishing, true);
    assert.deepEqual(e.finishes, [{ jobId: 7, failed: false, outputs: '{}', error: null }]);
    assert.deepEqual(
      e.logs.map((l) => [l.taskId, l.message, l.ifFinished]),
      [[1, 'job has completed successfully', 7]],
    );
    assert.equal(e.jobCallbacks.length, 1);
    assert.deepEqual(JSON.parse(e.jobCallbacks[0]!.body), {
      job_id: 7,
      status: 'completed',
      workflow: 'wf',
      content_id: 'c-1',
      custom_data: { k: 1 },
      time: '2026-01-02T03:04:05.678Z',
      client: 'acme',
    });
  });

  it('names the failing task in a failed finish', () => {
    const e = emptyEffects();
    addAdvance(e, job([{ name: 'a' }]), tasks([['a', 'failed']]), 1, '/data', new Date());
    assert.deepEqual(e.finishes[0], {
      jobId: 7,
      failed: true,
      outputs: '{}',
      error: "task 'a' failed: boom",
    });
    assert.equal(e.logs.at(-1)!.message, "job has failed: task 'a' failed: boom");
    assert.equal(e.jobCallbacks[0]!.status, 'failed');
  });

  it('does not finish while a task runs; a paused job wakes admission once nothing runs', () => {
    const running = emptyEffects();
    assert.equal(
      addAdvance(running, job([{ name: 'a' }]), tasks([['a', 'running']]), 0, '/data', new Date()).finishing,
      false,
    );
    assert.equal(running.wakeAdmission, false);
    const paused = emptyEffects();
    const j = job([{ name: 'a' }], { queue_state: 'paused' });
    assert.equal(addAdvance(paused, j, tasks([['a', 'succeeded']]), 0, '/data', new Date()).finishing, false);
    assert.equal(paused.wakeAdmission, true);
    assert.deepEqual(paused.finishes, []);
  });

  it('a task released by an earlier advance and skipped by a later one is only skipped', () => {
    const e = emptyEffects();
    const j = job([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    const ts = tasks([
      ['a', 'succeeded'],
      ['b', 'running'],
      ['c', 'waiting', ['a']],
    ]);
    addAdvance(e, j, ts, 1, '/data', new Date());
    assert.deepEqual(e.ready, [3]);
    ts[1]!.state = 'failed';
    addAdvance(e, j, ts, 2, '/data', new Date());
    assert.deepEqual(e.ready, []);
    assert.deepEqual(e.skip, [3]);
    assert.deepEqual(
      e.logs.map((l) => l.message),
      ["Task 'c' skipped: task 'b' failed", "job has failed: task 'b' failed"],
    );
    assert.equal(e.logs[0]!.ifSkipped, 3);
  });
});
