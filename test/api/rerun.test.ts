/**
 * `POST /jobs/<id>/rerun` as the seed describes it ("rerun a job with exactly the same parameters
 * … the original job's queue state will be set to broken"), through the API on both stores with a
 * running engine: a body asking for anything but the same run is a 400 naming the field;
 * `rerun_of` and `rerun_by` are fields of the jobs; the superseded original keeps its `failed`
 * flag; and `/health` still counts the superseded failure (`superseded`, `superseded_failed`).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/api/build-server.js';
import { createClient } from '../../src/engine/clients/clients.js';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { forEachStore, createTestStore, type TestStore } from '../helpers/stores.js';

interface JobJson {
  id: number;
  queue_state: string;
  failed: boolean;
  rerun_of: number | null;
  rerun_by: number | null;
  parameters: Record<string, unknown>;
}
interface HealthJobs {
  completed: number;
  failed: number;
  broken: number;
  superseded: number;
  superseded_failed: number;
}

forEachStore('API rerun', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let app: FastifyInstance;
  let acme: Record<string, string>;

  before(async () => {
    store = await createTestStore(kind);
    te = await startTestEngine(store, {
      workflows: {
        // Task 1 succeeds, task 2 fails: the "failed two-task job".
        twostep: {
          parameters: { type: 'object', properties: { content_id: { type: 'string' } } },
          tasks: [
            { name: 'first', run: 'sleep', with: { seconds: 0 } },
            { name: 'second', run: 'fail', with: { message: 'no luck' }, retry_limit: 0 },
          ],
        },
        ok: { tasks: [{ name: 'only', run: 'sleep', with: { seconds: 0 } }] },
        waiting: { tasks: [{ name: 'only', run: 'sleep', with: { seconds: 0 } }] },
      },
      settings: { max_jobs: 4 },
    });
    app = buildServer(te.engine.ctx);
    await app.ready();
    const c = await createClient(store.db, { name: 'acme' });
    acme = { client: 'acme', 'api-key': c.api_key };
  });
  after(async () => {
    await app?.close();
    await te?.stop();
    await store?.dispose();
  });

  const call = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const res = await app.inject({
      method,
      url,
      headers: acme,
      ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
    });
    return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
  };
  const submit = async (workflow: string, parameters: Record<string, unknown> = {}, job = {}) => {
    const r = await call('POST', '/job', { job: { workflow, ...job }, parameters });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.id as number;
  };
  const getJob = async (id: number) => (await call('GET', `/jobs/${id}`)).body as unknown as JobJson;
  const healthJobs = async () => (await call('GET', '/health')).body.jobs as HealthJobs;
  const jobCount = async () =>
    Number((await store.db.query('SELECT count(*)::int AS n FROM jobs')).rows[0]!.n);

  void test('a rerun of a failed job makes a new job with rerun_of, breaks the original with rerun_by, and /health still counts the failure', async () => {
    const original = await submit('twostep', { content_id: 'c1' });
    const done = await te.waitForState(original, 'completed');
    assert.equal(done.failed, true);
    const before = await healthJobs();
    assert.deepEqual(
      {
        failed: before.failed,
        broken: before.broken,
        superseded: before.superseded,
        sf: before.superseded_failed,
      },
      { failed: 1, broken: 0, superseded: 0, sf: 0 },
    );

    const res = await call('POST', `/jobs/${original}/rerun`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.result, 'accepted');
    const rerun = res.body.id as number;
    assert.notEqual(rerun, original);

    const orig = await getJob(original);
    assert.equal(orig.queue_state, 'broken');
    assert.equal(orig.failed, true, 'the superseded original keeps the failed flag of its run');
    assert.equal(orig.rerun_by, rerun);
    assert.equal(orig.rerun_of, null);
    const copy = await getJob(rerun);
    assert.equal(copy.rerun_of, original);
    assert.equal(copy.rerun_by, null);
    assert.deepEqual(copy.parameters, { content_id: 'c1' });

    // The rerun runs the same failing workflow to its end; then: one failed (the rerun), and the
    // original counted as broken, superseded, and a superseded failure.
    await te.waitForState(rerun, 'completed');
    const afterRerun = await healthJobs();
    assert.deepEqual(
      {
        failed: afterRerun.failed,
        broken: afterRerun.broken,
        superseded: afterRerun.superseded,
        sf: afterRerun.superseded_failed,
      },
      { failed: 1, broken: 1, superseded: 1, sf: 1 },
    );
    // `failed=1` still lists the superseded failure beside the new one.
    const failed = (await call('GET', `/jobs?failed=1&job_ids=${original},${rerun}`))
      .body as unknown as JobJson[];
    assert.deepEqual(
      failed.map((j) => j.id).sort((a, b) => a - b),
      [original, rerun],
    );
    const listed = (await call('GET', `/jobs?job_ids=${original},${rerun}`)).body as unknown as JobJson[];
    const byId = new Map(listed.map((j) => [j.id, j]));
    assert.equal(byId.get(original)!.rerun_by, rerun);
    assert.equal(byId.get(rerun)!.rerun_of, original);
  });

  void test('a second rerun of the same original points rerun_by at the newest one', async () => {
    const original = await submit('ok');
    await te.waitForState(original, 'completed');
    const first = (await call('POST', `/jobs/${original}/rerun`)).body.id as number;
    const second = (await call('POST', `/jobs/${original}/rerun`)).body.id as number;
    assert.notEqual(first, second);
    assert.equal((await getJob(original)).rerun_by, second);
    assert.equal((await getJob(original)).failed, false);
    assert.equal((await getJob(first)).rerun_of, original);
    assert.equal((await getJob(second)).rerun_of, original);
    await te.waitForState(first, 'completed');
    await te.waitForState(second, 'completed');
  });

  void test('a rerun of a job that has not run breaks it (not failed) and counts it superseded, not a superseded failure', async () => {
    const before = await healthJobs();
    const original = await submit('waiting', {}, { run_at: '2099-01-01T00:00:00.000Z' });
    const rerun = (await call('POST', `/jobs/${original}/rerun`)).body.id as number;
    const orig = await getJob(original);
    assert.equal(orig.queue_state, 'broken');
    assert.equal(orig.failed, false);
    assert.equal(orig.rerun_by, rerun);
    await te.waitForState(rerun, 'completed');
    const now = await healthJobs();
    assert.equal(now.superseded, before.superseded + 1);
    assert.equal(now.superseded_failed, before.superseded_failed);
    assert.equal(now.broken, before.broken + 1);
  });

  void test('a job broken by PATCH is broken but not superseded', async () => {
    const before = await healthJobs();
    const id = await submit('waiting', {}, { run_at: '2099-01-01T00:00:00.000Z' });
    const r = await app.inject({
      method: 'PATCH',
      url: `/jobs/${id}`,
      headers: acme,
      payload: { queue_state: 'broken' },
    });
    assert.equal(r.statusCode, 200, r.body);
    const now = await healthJobs();
    assert.equal(now.broken, before.broken + 1);
    assert.equal(now.superseded, before.superseded);
    assert.equal((await getJob(id)).rerun_by, null);
  });

  void test('a rerun body with parameters or any field but client is a 400 naming it; nothing is written', async () => {
    const original = await submit('ok');
    await te.waitForState(original, 'completed');
    for (const [payload, field] of [
      [{ parameters: { content_id: 'new' } }, '"parameters"'],
      [{ priority: 1 }, '"priority"'],
      [{ client: 'acme', job: { workflow: 'ok' } }, '"job"'],
    ] as const) {
      const jobs = await jobCount();
      const res = await call('POST', `/jobs/${original}/rerun`, payload);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.match(String(res.body.error), new RegExp(`POST /jobs/<id>/rerun takes no ${field}`));
      assert.match(String(res.body.error), /exactly the same workflow, priority and parameters/);
      assert.equal(res.body.id, original);
      assert.equal(await jobCount(), jobs);
      assert.equal((await getJob(original)).queue_state, 'completed');
    }
    const notObject = await call('POST', `/jobs/${original}/rerun`, [1]);
    assert.equal(notObject.status, 400);
    assert.match(String(notObject.body.error), /must be empty or a JSON object/);
    const wrongClient = await call('POST', `/jobs/${original}/rerun`, { client: 'someone-else' });
    assert.equal(wrongClient.status, 400);
    assert.match(String(wrongClient.body.error), /does not match the client header \("acme"\)/);
    // An empty object or only the matching client is a rerun like no body.
    const ok = await call('POST', `/jobs/${original}/rerun`, { client: 'acme' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const empty = await call('POST', `/jobs/${ok.body.id as number}/rerun`, {});
    assert.equal(empty.status, 200, JSON.stringify(empty.body));
    await te.waitForState(empty.body.id as number, 'completed');
  });
});
