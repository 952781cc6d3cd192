/**
 * The embedding API through the package's public entry only (src/index.ts), on both stores:
 * `createEngine`, `engine.jobs(...)` submit / submitBatch / get / list, a job run to its end by the
 * engine's own controller and workers, errors as `EngineError`s with the API's codes, client
 * scoping, and no HTTP server anywhere.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { createEngine, EngineError, loadConfig, type Engine, type JobSubmission } from '../../src/index.js';
import { forEachStore, createTestStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';
import { FIXTURE_WORKFLOWS } from './harness.js';

const greet = (content_id: string, job: Partial<JobSubmission['job']> = {}): JobSubmission => ({
  job: { workflow: 'greet', ...job },
  parameters: { content_id, seconds: 0 },
});

forEachStore('embedding API (src/index.ts)', (kind) => {
  let store: TestStore;
  let engine: Engine;
  before(async () => {
    store = await createTestStore(kind);
    const config = loadConfig({
      TASK_ENGINE_ROLES: 'controller,worker',
      TASK_ENGINE_WORKFLOWS_DIR: FIXTURE_WORKFLOWS,
      TASK_ENGINE_LOG_LEVEL: 'silent',
    });
    engine = await createEngine(config, { db: store.db, logger: pino({ level: 'silent' }) });
    await engine.start();
  });
  after(async () => {
    await engine?.stop();
    await store?.dispose();
  });

  void test('submit, get and list; the engine runs the job to its end', async () => {
    const acme = engine.jobs({ client: 'acme' });
    const { id } = await acme.submit(greet('embedded-1', { priority: '3' }));
    assert.ok(Number.isInteger(id) && id > 0);
    const job = await acme.get(id);
    assert.deepEqual([job.id, job.client, job.workflow, job.priority], [id, 'acme', 'greet', 3]);
    assert.deepEqual(
      job.tasks.map((t) => t.name),
      ['hello', 'wait'],
    );
    await waitFor(async () => (await acme.get(id)).queue_state === 'completed', {
      what: 'the embedded job completes',
      timeoutMs: 20_000,
    });
    const done = await acme.get(id);
    assert.equal(done.failed, false);
    assert.ok(
      done.tasks.every((t) => t.state === 'succeeded'),
      JSON.stringify(done.tasks),
    );
    const listed = await acme.list({ job_ids: [id], limit: 5 });
    assert.deepEqual(
      listed.map((j) => j.id),
      [id],
    );
    assert.equal(
      (await acme.list({ state: 2, from: new Date(0) })).some((j) => j.id === id),
      true,
    );
  });

  void test('submitBatch answers per item; errors are EngineErrors with the API codes; clients are scoped', async () => {
    const acme = engine.jobs({ client: 'acme' });
    const results = await acme.submitBatch([
      greet('batch-0', { run_at: '2099-01-01T00:00:00Z' }),
      { job: { workflow: 'nope' } },
      greet('batch-2', { run_at: '2099-01-01T00:00:00Z', idempotency_key: 'k1' }),
      greet('batch-2', { run_at: '2099-01-01T00:00:00Z', idempotency_key: 'k1' }),
    ]);
    assert.equal(results.length, 4);
    assert.equal('result' in results[0]! && results[0].result, 'accepted');
    assert.equal('status' in results[1]! && results[1].status, 400);
    const [r2, r3] = [results[2]!, results[3]!];
    assert.ok('id' in r2 && 'id' in r3 && r2.id === r3.id, 'one key, one job');

    await assert.rejects(
      () => acme.submit({ job: { workflow: 'greet' }, parameters: {} }),
      (err: unknown) => err instanceof EngineError && err.code === 'VALIDATION_FAILED' && err.status === 400,
    );
    await assert.rejects(
      () => acme.submit(greet('x', { idempotency_key: 'k1' })),
      (err: unknown) => err instanceof EngineError && err.code === 'CONFLICT',
    );
    await assert.rejects(
      () => acme.submitBatch([]),
      (err: unknown) => err instanceof EngineError && /1 to 1000/.test(err.message),
    );
    const other = engine.jobs({ client: 'other' });
    const mine = (results[0] as { id: number }).id;
    await assert.rejects(
      () => other.get(mine),
      (err: unknown) => err instanceof EngineError && err.code === 'JOB_NOT_FOUND',
    );
    assert.equal(
      (await other.list({ limit: 1000 })).some((j) => j.client !== 'other'),
      false,
    );
    await assert.rejects(
      () => other.list({ client: 'acme' }),
      (err: unknown) => err instanceof EngineError && err.code === 'FORBIDDEN',
    );
    const admin = engine.jobs({ client: 'root', admin: true });
    assert.equal((await admin.get(mine)).client, 'acme');
    assert.ok((await admin.list({ client: 'acme', limit: 1000 })).some((j) => j.id === mine));
    // The private workflow exists for acme only.
    assert.ok((await acme.submit({ job: { workflow: 'private' } })).id > 0);
    await assert.rejects(
      () => other.submit({ job: { workflow: 'private' } }),
      (err: unknown) => err instanceof EngineError && err.code === 'UNKNOWN_WORKFLOW',
    );
  });
});
