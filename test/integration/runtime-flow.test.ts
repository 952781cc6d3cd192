/**
 * The runtime's main path on both stores: submit → admitted → tasks run in dependency order →
 * job completed, with outputs, logs, callbacks, fan-out/fan-in and `if` skipping.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { startCallbackReceiver, type CallbackReceiver } from '../helpers/callback-receiver.js';
import { getJob } from '../../src/engine/jobs/service.js';
import { startTestEngine, TEST_CLIENT, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';

forEachStore('runtime: job flow', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let receiver: CallbackReceiver;

  before(async () => {
    store = await createTestStore(kind);
    receiver = await startCallbackReceiver();
    te = await startTestEngine(store, {
      settings: { max_jobs: 4 },
      workflows: {
        three: {
          parameters: {
            type: 'object',
            properties: { content_id: { type: 'string' }, rest_endpoints: { type: 'array' } },
          },
          tasks: [
            {
              name: 'hello',
              run: 'exec',
              with: { command: 'echo', args: ['hello {{ parameters.content_id }}'] },
            },
            { name: 'pause', run: 'sleep', with: { seconds: 0 } },
            {
              name: 'report',
              run: 'exec',
              with: { command: 'echo', args: ['{{ tasks.hello.output.stdout }}'] },
            },
          ],
          outputs: { message: '{{ tasks.hello.output.stdout }}', job_id: '{{ job.id }}' },
        },
        fan: {
          tasks: [
            { name: 'start', run: 'sleep', with: { seconds: 0 } },
            { name: 'left', needs: ['start'], run: 'sleep', with: { seconds: 0.3 } },
            { name: 'right', needs: ['start'], run: 'sleep', with: { seconds: 0.3 } },
            {
              name: 'skipped',
              needs: ['start'],
              if: '{{ parameters.enabled }}',
              run: 'fail',
              with: { message: 'no' },
            },
            {
              name: 'after_skip',
              needs: ['skipped'],
              if: '{{ parameters.enabled }}',
              run: 'fail',
              with: { message: 'no' },
            },
            { name: 'join', needs: ['left', 'right', 'after_skip'], run: 'sleep', with: { seconds: 0 } },
          ],
        },
        failing: {
          tasks: [
            { name: 'ok', run: 'sleep', with: { seconds: 0 } },
            { name: 'broken', run: 'fail', with: { message: 'boom' }, retry_limit: 0 },
            { name: 'never', run: 'sleep', with: { seconds: 0 } },
          ],
        },
        tolerant: {
          tasks: [
            {
              name: 'broken',
              run: 'fail',
              with: { message: 'boom' },
              retry_limit: 0,
              continue_on_error: true,
            },
            { name: 'after', run: 'sleep', with: { seconds: 0 } },
          ],
        },
      },
    });
  });
  after(async () => {
    await te?.stop();
    await receiver?.close();
    await store?.dispose();
  });

  it('runs a three-task job to completion, in order, with outputs, logs and one job-end callback', async () => {
    const id = await te.submit('three', { content_id: 'abc', rest_endpoints: [receiver.url('/three')] });
    const row = await te.waitForState(id, 'completed');
    assert.equal(row.failed, false);
    assert.deepEqual(row.outputs, { message: 'hello abc\n', job_id: id });
    const tasks = await te.tasks(id);
    assert.deepEqual(
      tasks.map((t) => [t.name, t.state, t.attempts]),
      [
        ['hello', 'succeeded', 1],
        ['pause', 'succeeded', 1],
        ['report', 'succeeded', 1],
      ],
    );
    assert.equal(tasks[2]!.output.stdout, 'hello abc\n\n');
    // Dependency order: each task started after the one above ended.
    assert.ok(tasks[1]!.started_at! >= tasks[0]!.finished_at!);
    assert.ok(tasks[2]!.started_at! >= tasks[1]!.finished_at!);

    const logs = await te.logs(id);
    const messages = logs.filter((l) => l.progname !== 'callback').map((l) => `${l.progname}: ${l.message}`);
    assert.ok(messages.includes('controller: job started'));
    assert.ok(messages.includes("worker: Task 'hello' started"));
    // Which definitions the job runs is written once, at submission, not again for each task.
    assert.equal(
      messages.filter((m) => m.endsWith('No client definitions. Using common definitions.')).length,
      1,
    );
    assert.ok(messages.includes("worker: 'report' completed successfully"));
    assert.equal(messages.at(-1), 'controller: job has completed successfully');

    const ends = await receiver.waitForCount(1, (r) => r.body?.status !== undefined && r.body?.job_id === id);
    assert.equal(ends[0]!.body.status, 'completed');
    assert.equal(ends[0]!.body.message, 'hello abc\n');
    assert.equal(ends[0]!.body.content_id, 'abc');
    // Task events: start + complete for each of the three tasks.
    await receiver.waitForCount(6, (r) => r.body?.task_id !== undefined && r.body?.job_id === id);
    const events = receiver.requests
      .filter((r) => r.body?.job_id === id && r.body?.event)
      .map((r) => `${r.body.task_name}:${r.body.event}`);
    assert.deepEqual(events, [
      'hello:start',
      'hello:complete',
      'pause:start',
      'pause:complete',
      'report:start',
      'report:complete',
    ]);
  });

  it('shows the results on GET /jobs/<id> and records each change as an event row, in order', async () => {
    const id = await te.submit('three', { content_id: 'res' });
    await te.waitForState(id, 'completed');
    const detail = await getJob(te.engine.ctx, { client: TEST_CLIENT, admin: true }, String(id));
    assert.deepEqual(detail.outputs, { message: 'hello res\n', job_id: id });
    assert.equal(detail.error, null);
    assert.deepEqual(
      detail.tasks.map((t) => [t.name, t.needs, t.state]),
      [
        ['hello', [], 'succeeded'],
        ['pause', ['hello'], 'succeeded'],
        ['report', ['pause'], 'succeeded'],
      ],
    );
    const hello = detail.tasks[0]!;
    assert.equal((hello.output as { stdout: string }).stdout, 'hello res\n');
    assert.ok(hello.duration_ms !== null && hello.duration_ms >= 0);
    assert.equal(hello.progress, 1, 'a succeeded task ends at progress 1, reported or not');

    const events = await te.db.query<{
      kind: string;
      data: Record<string, unknown> | null;
      log_id: number | null;
    }>('SELECT kind, data, log_id FROM events WHERE job_id = $1 ORDER BY id', [id]);
    const jobStates = events.rows.filter((e) => e.kind === 'job').map((e) => e.data!.queue_state);
    assert.deepEqual(jobStates, ['queued', 'started', 'completed']);
    const helloStates = events.rows
      .filter((e) => e.kind === 'task' && e.data!.name === 'hello')
      .map((e) => e.data!.state);
    assert.deepEqual(helloStates, ['ready', 'running', 'succeeded']);
    const logCount = (await te.logs(id)).length;
    assert.equal(events.rows.filter((e) => e.kind === 'log' && e.log_id !== null).length, logCount);
  });

  it('fans out and in, and skips a task whose `if` is false together with what only it released', async () => {
    const id = await te.submit('fan', { enabled: false });
    const row = await te.waitForState(id, 'completed');
    assert.equal(row.failed, false);
    const tasks = Object.fromEntries((await te.tasks(id)).map((t) => [t.name, t]));
    assert.equal(tasks.skipped!.state, 'skipped');
    assert.equal(tasks.after_skip!.state, 'skipped');
    assert.equal(tasks.join!.state, 'succeeded');
    // left and right ran side by side: each started before the other ended.
    assert.ok(
      tasks.left!.started_at! < tasks.right!.finished_at! &&
        tasks.right!.started_at! < tasks.left!.finished_at!,
    );
    assert.ok(
      tasks.join!.started_at! >= tasks.left!.finished_at! &&
        tasks.join!.started_at! >= tasks.right!.finished_at!,
    );
  });

  it('fails the job when a task fails for good, skipping the rest', async () => {
    const id = await te.submit('failing');
    const row = await te.waitForState(id, 'completed');
    assert.equal(row.failed, true);
    const tasks = await te.tasks(id);
    assert.deepEqual(
      tasks.map((t) => [t.name, t.state]),
      [
        ['ok', 'succeeded'],
        ['broken', 'failed'],
        ['never', 'skipped'],
      ],
    );
    const logs = await te.logs(id);
    assert.match(logs.at(-1)!.message, /^job has failed: task 'broken' failed: .*boom/);
  });

  it('lets a task with continue_on_error fail without failing the job', async () => {
    const id = await te.submit('tolerant');
    const row = await te.waitForState(id, 'completed');
    assert.equal(row.failed, false);
    const tasks = await te.tasks(id);
    assert.deepEqual(
      tasks.map((t) => [t.name, t.state]),
      [
        ['broken', 'failed'],
        ['after', 'succeeded'],
      ],
    );
  });
});
