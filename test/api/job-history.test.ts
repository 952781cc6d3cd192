/**
 * `GET /jobs/<id>/attempts` and `GET /jobs/<id>/callbacks` through the API on both stores with a
 * running engine: every attempt of a job's tasks in start order (a retried task shows both of its
 * attempts), the job's callback deliveries in the order enqueued with their targets redacted, an
 * empty list for a job that has not started, and the visibility rule of `GET /jobs/<id>` (404 for
 * another client's job, 400 for a bad id, admins see every job).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/api/build-server.js';
import { createClient } from '../../src/engine/clients/clients.js';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { startReceiver, type Receiver } from '../helpers/http-receiver.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

interface Attempt {
  id: number;
  task_id: number;
  task: string;
  number: number;
  run: number;
  worker_id: string | null;
  state: string;
  started_at: string;
  finished_at: string | null;
  heartbeat_at: string;
  error: string | null;
}
interface Delivery {
  id: number;
  task_id: number;
  kind: string;
  event: string;
  target: string;
  state: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
  next_attempt_at: string;
  run: number;
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

forEachStore('API job attempts and callbacks', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let app: FastifyInstance;
  let rx: Receiver;
  const headers: Record<string, Record<string, string>> = {};

  before(async () => {
    store = await createTestStore(kind);
    rx = await startReceiver();
    te = await startTestEngine(store, {
      workflows: {
        flaky: {
          tasks: [
            { name: 'first', run: 'sleep', with: { seconds: 0 } },
            {
              name: 'second',
              run: 'fail',
              with: { message: 'no luck' },
              needs: ['first'],
              retry_limit: 1,
              retry_delay: 0,
            },
          ],
        },
      },
    });
    app = buildServer(te.engine.ctx);
    await app.ready();
    for (const [name, admin] of [
      ['acme', false],
      ['other', false],
      ['root', true],
    ] as const) {
      const c = await createClient(store.db, { name, admin });
      headers[name] = { client: name, 'api-key': c.api_key };
    }
  });
  after(async () => {
    await app?.close();
    await te?.stop();
    await rx?.close();
    await store?.dispose();
  });

  const get = async <T>(as: string | null, url: string) => {
    const res = await app.inject({ method: 'GET', url, headers: as ? headers[as] : {} });
    return { status: res.statusCode, body: JSON.parse(res.body) as T };
  };
  const submit = async (parameters: Record<string, unknown>, job: Record<string, unknown> = {}) => {
    const res = await app.inject({
      method: 'POST',
      url: '/job',
      headers: headers.acme,
      payload: { job: { workflow: 'flaky', ...job }, parameters },
    });
    assert.equal(res.statusCode, 200, res.body);
    return (JSON.parse(res.body) as { id: number }).id;
  };

  let jobId = 0;
  const credsUrl = () => rx.url.replace('http://', 'http://user:s3cret@') + '/creds';

  test('every attempt of the job, in start order, a retried task with both of its attempts', async () => {
    jobId = await submit({ rest_endpoints: [`${rx.url}/hook?token=abc123`, credsUrl()] });
    await te.waitForState(jobId, 'completed', 30_000);
    const { status, body } = await get<Attempt[]>('acme', `/jobs/${jobId}/attempts`);
    assert.equal(status, 200);
    assert.deepEqual(
      body.map((a) => [a.task, a.number, a.run, a.state]),
      [
        ['first', 1, 1, 'succeeded'],
        ['second', 1, 1, 'failed'],
        ['second', 2, 1, 'failed'],
      ],
    );
    const tasks = (await get<{ tasks: { id: number; name: string }[] }>('acme', `/jobs/${jobId}`)).body.tasks;
    for (const a of body) {
      assert.equal(a.task_id, tasks.find((t) => t.name === a.task)!.id);
      assert.match(a.started_at, ISO);
      assert.match(a.finished_at!, ISO);
      assert.match(a.heartbeat_at, ISO);
      assert.equal(a.worker_id, te.engine.workerId);
    }
    assert.equal(body[0]!.error, null);
    assert.match(body[1]!.error!, /no luck/);
    assert.ok(body[0]!.id < body[1]!.id && body[1]!.id < body[2]!.id);
    assert.ok(body[1]!.started_at >= body[0]!.finished_at!, 'second starts after first ends');
  });

  test("the job's callback deliveries in the order enqueued, targets without credentials or query", async () => {
    await waitFor(
      async () => {
        const { body } = await get<Delivery[]>('acme', `/jobs/${jobId}/callbacks`);
        return body.some((d) => d.kind === 'job' && d.target.endsWith('/hook?…') && d.state === 'delivered');
      },
      { timeoutMs: 20_000, what: 'the job-end callback to be delivered' },
    );
    const { status, body } = await get<Delivery[]>('acme', `/jobs/${jobId}/callbacks`);
    assert.equal(status, 200);
    const hook = body.filter((d) => d.target === `${rx.url}/hook?…`);
    const creds = body.filter((d) => d.target === `${rx.url}/creds`);
    assert.equal(hook.length + creds.length, body.length, JSON.stringify(body.map((d) => d.target)));
    assert.ok(
      !JSON.stringify(body).includes('s3cret') && !JSON.stringify(body).includes('abc123'),
      JSON.stringify(body, null, 1),
    );
    assert.deepEqual(
      body.map((d) => d.id),
      [...body.map((d) => d.id)].sort((a, b) => a - b),
    );
    const firstId = body.find((d) => d.kind === 'task')!.task_id;
    assert.deepEqual(hook.map((d) => `${d.kind}:${d.event}`).slice(0, 2), ['task:start', 'task:complete']);
    assert.equal(hook[0]!.task_id, firstId);
    const end = hook.at(-1)!;
    assert.deepEqual([end.kind, end.event, end.task_id, end.run], ['job', 'failed', 0, 1]);
    const delivered = hook.filter((d) => d.state === 'delivered');
    assert.ok(delivered.length >= 2);
    for (const d of delivered) {
      assert.equal(d.last_status, 200);
      assert.equal(d.last_error, null);
      assert.ok(d.attempts >= 1);
      assert.match(d.delivered_at!, ISO);
      assert.match(d.created_at, ISO);
      assert.match(d.next_attempt_at, ISO);
    }
    assert.equal(rx.on('/hook').length >= delivered.length, true);
    // The credentials URL cannot be fetched; the client's message quotes the URL, redacted here.
    await waitFor(
      async () =>
        (await get<Delivery[]>('acme', `/jobs/${jobId}/callbacks`)).body.find(
          (d) => d.target.endsWith('/creds') && d.last_error !== null,
        ),
      { timeoutMs: 20_000, what: 'a failed attempt at the credentials URL' },
    );
    const failing = (await get<Delivery[]>('acme', `/jobs/${jobId}/callbacks`)).body.filter((d) =>
      d.target.endsWith('/creds'),
    );
    assert.ok(!JSON.stringify(failing).includes('s3cret'), JSON.stringify(failing));
  });

  test('a job that has not started has no attempts and no deliveries', async () => {
    const id = await submit({}, { run_at: '2999-01-01T00:00:00.000' });
    assert.deepEqual((await get('acme', `/jobs/${id}/attempts`)).body, []);
    assert.deepEqual((await get('acme', `/jobs/${id}/callbacks`)).body, []);
  });

  test("another client's job is a 404, a bad id a 400, no credentials a 401; admins see every job", async () => {
    for (const path of ['attempts', 'callbacks']) {
      const theirs = await get<{ error: string; id: number }>('other', `/jobs/${jobId}/${path}`);
      assert.equal(theirs.status, 404);
      assert.equal(theirs.body.error, `job ${jobId} not found`);
      const missing = await get<{ error: string }>('acme', `/jobs/99999999/${path}`);
      assert.equal(missing.status, 404);
      const bad = await get<{ error: string }>('acme', `/jobs/abc/${path}`);
      assert.equal(bad.status, 400);
      assert.match(bad.body.error, /positive whole number/);
      assert.equal((await get('acme', `/jobs/0/${path}`)).status, 400);
      assert.equal((await get(null, `/jobs/${jobId}/${path}`)).status, 401);
      const admin = await get<unknown[]>('root', `/jobs/${jobId}/${path}`);
      assert.equal(admin.status, 200);
      assert.ok(admin.body.length > 0);
    }
  });
});
