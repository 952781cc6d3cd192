/**
 * Retry from the failed step (`POST /jobs/<id>/retry`) as the runtime sees it, on both stores:
 * succeeded tasks keep their outputs and attempts, the others run again, changed parameters reach
 * only the re-run tasks, and each run ends with one job-end callback per target.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { isEngineError } from '../../src/errors/catalogue.js';
import { retryJob } from '../../src/engine/jobs/retry.js';
import { getJob, patchJob } from '../../src/engine/jobs/service.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { startTestEngine, TEST_CLIENT, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const admin = { client: TEST_CLIENT, admin: true };
/** A port nothing listens on: job-end deliveries are enqueued, never delivered. */
const TARGET = 'http://127.0.0.1:9/job-end';

forEachStore('runtime: retry a job from the failed step', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  const catalog = createFixtureCatalog({
    steps: {
      parameters: {
        type: 'object',
        properties: {
          mode: { type: 'string', default: 'bad' },
          rest_endpoints: { type: 'array' },
        },
      },
      tasks: [
        {
          name: 'first',
          run: 'exec',
          with: { command: 'sh', args: ['-c', 'echo "first saw $1"', 'sh', '{{ parameters.mode }}'] },
        },
        {
          name: 'second',
          needs: ['first'],
          retry_limit: 1,
          retry_delay: 0,
          run: 'exec',
          with: { command: 'sh', args: ['-c', 'test "$1" = ok', 'sh', '{{ parameters.mode }}'] },
        },
        { name: 'third', needs: ['second'], run: 'sleep', with: { seconds: 0 } },
      ],
    },
    slow: {
      parameters: { type: 'object', properties: { seconds: { type: 'number', default: 30 } } },
      tasks: [{ name: 'nap', run: 'sleep', with: { seconds: '{{ parameters.seconds }}' } }],
    },
  });

  before(async () => {
    store = await createTestStore(kind);
    te = await startTestEngine(store, { catalog, settings: { retry_delay: 0 } });
  });
  after(async () => {
    await te?.stop();
    await store?.dispose();
  });

  async function jobEnds(
    id: number,
  ): Promise<{ run: number; event: string; body: Record<string, unknown> }[]> {
    const { rows } = await te.db.query<{ run: number; event: string; body: Record<string, unknown> }>(
      `SELECT run, event, body FROM callback_deliveries WHERE job_id = $1 AND kind = 'job' ORDER BY id`,
      [id],
    );
    return rows;
  }

  it('keeps the succeeded task, re-runs the failed one with the changed parameters, and completes', async () => {
    const id = await te.submit('steps', { rest_endpoints: [TARGET] });
    const failed = await te.waitForState(id, 'completed');
    assert.equal(failed.failed, true);
    const before = await te.tasks(id);
    assert.deepEqual(
      before.map((t) => [t.name, t.state, t.attempts]),
      [
        ['first', 'succeeded', 1],
        ['second', 'failed', 2],
        ['third', 'skipped', 0],
      ],
    );

    const reply = await retryJob(te.engine.ctx, admin, String(id), { parameters: { mode: 'ok' } });
    assert.deepEqual(reply, { id, result: 'accepted' });
    const done = await te.waitForState(id, 'completed');
    assert.equal(done.failed, false);

    const tasks = await te.tasks(id);
    assert.deepEqual(
      tasks.map((t) => [t.name, t.state, t.attempts]),
      [
        ['first', 'succeeded', 1],
        ['second', 'succeeded', 3],
        ['third', 'succeeded', 1],
      ],
    );
    // The succeeded task did not run again: same output (made with the old parameter), one attempt.
    assert.deepEqual(tasks[0]!.output, before[0]!.output);
    assert.match(JSON.stringify(tasks[0]!.output), /first saw bad/);
    assert.equal((await te.attempts(id, 'first')).length, 1);
    // Attempt numbers of the re-run task go on from the earlier ones.
    assert.deepEqual(
      (await te.attempts(id, 'second')).map((a) => [a.number, a.state]),
      [
        [1, 'failed'],
        [2, 'failed'],
        [3, 'succeeded'],
      ],
    );

    const record = await getJob(te.engine.ctx, admin, String(id));
    assert.equal(record.run, 2);
    assert.ok(record.retried_at);
    assert.deepEqual(record.parameters, { rest_endpoints: [TARGET], mode: 'ok' });
    const logs = (await te.logs(id)).map((l) => l.message);
    assert.ok(
      logs.includes(
        'Job retried from task second (was completed, failed; 2 tasks to run again; parameters changed: mode)',
      ),
      logs.join('\n'),
    );

    // One job-end callback per run and target; the second says where it was retried from.
    await waitFor(async () => ((await jobEnds(id)).length === 2 ? true : null), { what: 'two job ends' });
    const ends = await jobEnds(id);
    assert.deepEqual(
      ends.map((e) => [e.run, e.event]),
      [
        [1, 'failed'],
        [2, 'completed'],
      ],
    );
    assert.equal(ends[0]!.body.retried_from, undefined);
    assert.equal(ends[1]!.body.retried_from, 'retried from task second');
    assert.equal(ends[1]!.body.run, 2);
  });

  it('retries a broken job: the cancelled task runs again with a later attempt number', async () => {
    const id = await te.submit('slow');
    await waitFor(async () => (await te.tasks(id))[0]!.state === 'running', { what: 'nap running' });
    await patchJob(te.engine.ctx, admin, String(id), { queue_state: 'broken' });
    await te.waitForState(id, 'broken');
    await retryJob(te.engine.ctx, admin, String(id), { parameters: { seconds: 0 } });
    const done = await te.waitForState(id, 'completed');
    assert.equal(done.failed, false);
    assert.deepEqual(
      (await te.attempts(id, 'nap')).map((a) => [a.number, a.state]),
      [
        [1, 'cancelled'],
        [2, 'succeeded'],
      ],
    );
  });

  it('answers 409 for a job that did not fail, 400 for unknown fields or bad parameters', async () => {
    const id = await te.submit('steps', { mode: 'ok' });
    await te.waitForState(id, 'completed');
    await assert.rejects(
      retryJob(te.engine.ctx, admin, String(id), undefined),
      (e: unknown) =>
        isEngineError(e, 'STATE_CONFLICT') &&
        e.message ===
          `job ${id} is completed without failure; only failed (completed with failed: true) or broken jobs can be retried`,
    );
    await assert.rejects(retryJob(te.engine.ctx, admin, String(id), { priority: 1 }), (e: unknown) =>
      isEngineError(e, 'VALIDATION_FAILED'),
    );
    const bad = await te.submit('steps');
    await te.waitForState(bad, 'completed');
    await assert.rejects(
      retryJob(te.engine.ctx, admin, String(bad), { parameters: { mode: 5 } }),
      (e: unknown) => isEngineError(e, 'VALIDATION_FAILED') && /mode/.test(e.message),
    );
    assert.equal((await te.job(bad)).queue_state, 'completed');
  });
});
