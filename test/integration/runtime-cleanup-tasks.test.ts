/**
 * Cleanup tasks (`when: failed` / `when: always`) as the runtime sees them, on both stores: they
 * run after the job's other tasks ended (after a success, a failure, a break), see the outcome as
 * `job.outcome`, leave the job's outcome alone, and the job-end callback waits for them.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { retryJob } from '../../src/engine/jobs/retry.js';
import { patchJob } from '../../src/engine/jobs/service.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { startTestEngine, TEST_CLIENT, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const admin = { client: TEST_CLIENT, admin: true };
const TARGET = 'http://127.0.0.1:9/job-end';

forEachStore('runtime: cleanup tasks', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  const echoOutcome = { command: 'sh', args: ['-c', 'printf %s "$1"', 'sh', '{{ job.outcome }}'] };
  const catalog = createFixtureCatalog({
    clean: {
      parameters: {
        type: 'object',
        properties: {
          code: { type: 'integer', default: 0 },
          seconds: { type: 'number', default: 0 },
          rest_endpoints: { type: 'array' },
        },
      },
      tasks: [
        {
          name: 'work',
          retry_limit: 0,
          run: 'exec',
          with: {
            command: 'sh',
            args: ['-c', 'sleep "$2"; exit "$1"', 'sh', '{{ parameters.code }}', '{{ parameters.seconds }}'],
          },
        },
        { name: 'after_work', needs: ['work'], run: 'sleep', with: { seconds: 0 } },
        { name: 'on_failure', when: 'failed', needs: ['work'], run: 'exec', with: echoOutcome },
        { name: 'always', when: 'always', run: 'exec', with: echoOutcome },
      ],
    },
  });

  before(async () => {
    store = await createTestStore(kind);
    te = await startTestEngine(store, { catalog });
  });
  after(async () => {
    await te?.stop();
    await store?.dispose();
  });

  async function jobEnds(id: number): Promise<string[]> {
    const { rows } = await te.db.query<{ event: string }>(
      `SELECT event FROM callback_deliveries WHERE job_id = $1 AND kind = 'job' ORDER BY id`,
      [id],
    );
    return rows.map((r) => r.event);
  }
  const summary = async (id: number) =>
    (await te.tasks(id)).map((t) => [t.name, t.state, t.output?.stdout ?? null] as const);

  it('after a success: when: always runs and sees "succeeded", when: failed is skipped', async () => {
    const id = await te.submit('clean', { rest_endpoints: [TARGET] });
    const job = await te.waitForState(id, 'completed');
    assert.equal(job.failed, false);
    assert.deepEqual(await summary(id), [
      ['work', 'succeeded', ''],
      ['after_work', 'succeeded', null],
      ['on_failure', 'skipped', null],
      ['always', 'succeeded', 'succeeded'],
    ]);
    assert.deepEqual(await jobEnds(id), ['completed']);
  });

  it('after a failure: both run and see "failed"; the job still fails, with one job-end', async () => {
    const id = await te.submit('clean', { code: 3, rest_endpoints: [TARGET] });
    const job = await te.waitForState(id, 'completed');
    assert.equal(job.failed, true);
    assert.deepEqual(await summary(id), [
      ['work', 'failed', null],
      ['after_work', 'skipped', null],
      ['on_failure', 'succeeded', 'failed'],
      ['always', 'succeeded', 'failed'],
    ]);
    assert.deepEqual(await jobEnds(id), ['failed']);
    const logs = (await te.logs(id)).map((l) => l.message);
    const cleanupEnd = logs.findIndex((m) => /'always' completed/.test(m));
    const finished = logs.findIndex((m) => /job has failed/i.test(m));
    assert.ok(cleanupEnd >= 0 && finished > cleanupEnd, logs.join('\n'));
  });

  it('a retry runs the cleanup tasks again for the new run, with its outcome', async () => {
    const id = await te.submit('clean', { code: 3, rest_endpoints: [TARGET] });
    assert.equal((await te.waitForState(id, 'completed')).failed, true);
    await retryJob(te.engine.ctx, admin, String(id), { parameters: { code: 0 } });
    await waitFor(async () => ((await jobEnds(id)).length === 2 ? true : null), {
      what: 'the second job end',
    });
    assert.equal((await te.job(id)).failed, false);
    assert.deepEqual(await summary(id), [
      ['work', 'succeeded', ''],
      ['after_work', 'succeeded', null],
      ['on_failure', 'skipped', null],
      ['always', 'succeeded', 'succeeded'],
    ]);
    assert.deepEqual(await jobEnds(id), ['failed', 'completed']);
    assert.ok((await te.logs(id)).some((l) => l.message.startsWith('Job retried from task work ')));
  });

  it('after a break: the job stays broken, both run and see "broken", then one job-end', async () => {
    const id = await te.submit('clean', { seconds: 60, rest_endpoints: [TARGET] });
    await waitFor(async () => (await te.tasks(id))[0]!.state === 'running', { what: 'work running' });
    await patchJob(te.engine.ctx, admin, String(id), { queue_state: 'broken' });
    await waitFor(async () => ((await te.tasks(id)).every((t) => t.finished_at !== null) ? true : null), {
      what: 'every task to end',
    });
    assert.equal((await te.job(id)).queue_state, 'broken');
    assert.deepEqual(await summary(id), [
      ['work', 'failed', null],
      ['after_work', 'failed', null],
      ['on_failure', 'succeeded', 'broken'],
      ['always', 'succeeded', 'broken'],
    ]);
    await waitFor(async () => ((await jobEnds(id)).length > 0 ? true : null), { what: 'the job end' });
    assert.deepEqual(await jobEnds(id), ['failed']);
  });
});
