/**
 * `GET /metrics` around a real run of jobs on both stores: a success with callbacks to a local
 * receiver, a failure that is retried, a job that fails; the counters and histogram counts move by
 * exactly what happened. Then who may scrape (admin, token, non-admin, none, metrics off).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/api/build-server.js';
import { createClient } from '../../src/engine/clients/clients.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { startTestEngine, testConfig, TEST_CLIENT, type TestEngine } from '../helpers/engine.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { startReceiver, type Receiver } from '../helpers/http-receiver.js';
import { parseScrape, type Scrape } from '../helpers/prometheus.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const TOKEN = 'metrics-token-0123456789';

forEachStore('GET /metrics', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let app: FastifyInstance;
  let rx: Receiver;
  let admin: Record<string, string>;
  let plain: Record<string, string>;

  before(async () => {
    store = await createTestStore(kind);
    rx = await startReceiver(() => ({ status: 200 }));
    te = await startTestEngine(store, {
      settings: { max_jobs: 10, retry_delay: 0 },
      workflows: {
        ok: {
          parameters: { type: 'object', properties: { rest_endpoints: { type: 'array' } } },
          tasks: [{ name: 'step', run: 'sleep', with: { seconds: 0 } }],
        },
        flaky: {
          tasks: [
            {
              name: 'flaky',
              run: 'exec',
              with: { command: 'sh', args: ['-c', 'test "$TASK_ENGINE_ATTEMPT" -ge 2'] },
              retry_limit: 2,
              retry_delay: 0,
            },
          ],
        },
        doomed: {
          tasks: [{ name: 'doomed', run: 'fail', with: { message: 'no', permanent: true }, retry_limit: 0 }],
        },
      },
    });
    te.engine.ctx.config.metricsToken = TOKEN;
    app = buildServer(te.engine.ctx);
    await app.ready();
    const a = await createClient(store.db, { name: 'metrics-admin', admin: true });
    const p = await createClient(store.db, { name: 'metrics-plain', admin: false });
    admin = { client: 'metrics-admin', 'api-key': a.api_key };
    plain = { client: 'metrics-plain', 'api-key': p.api_key };
  });
  after(async () => {
    await app?.close();
    await te?.stop();
    await rx?.close();
    await store?.dispose();
  });

  const scrape = async (): Promise<Scrape> => {
    const res = await app.inject({ method: 'GET', url: '/metrics', headers: admin });
    assert.equal(res.statusCode, 200, res.body);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    return parseScrape(res.body);
  };

  void it('counts jobs, tasks, attempt failures, retries, admissions and callbacks exactly', async () => {
    const before = await scrape();
    const okId = await te.submit('ok', { rest_endpoints: [`${rx.url}/cb`] });
    const flakyId = await te.submit('flaky');
    const doomedId = await te.submit('doomed');
    await te.waitForState(okId, 'completed', 10_000);
    await te.waitForState(flakyId, 'completed', 10_000);
    await te.waitForState(doomedId, 'completed', 10_000);
    // Every delivery of the ok job sent (task start, task complete, job end).
    await waitFor(
      async () => {
        const { rows } = await store.db.query<{ open: number }>(
          `SELECT count(*) FILTER (WHERE state <> 'delivered')::int AS open FROM callback_deliveries WHERE job_id = $1`,
          [okId],
        );
        return rows[0]!.open === 0 && rx.requests.length > 0;
      },
      { timeoutMs: 10_000, what: 'callbacks delivered' },
    );
    const { rows: delivered } = await store.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM callback_deliveries WHERE job_id = $1 AND state = 'delivered'`,
      [okId],
    );
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}, field?: 'count' | 'sum') =>
      after.value(name, labels, field) - before.value(name, labels, field);
    const c = { client: TEST_CLIENT };
    assert.equal(delta('task_engine_jobs_finished_total', { ...c, workflow: 'ok', outcome: 'completed' }), 1);
    assert.equal(
      delta('task_engine_jobs_finished_total', { ...c, workflow: 'flaky', outcome: 'completed' }),
      1,
    );
    assert.equal(
      delta('task_engine_jobs_finished_total', { ...c, workflow: 'doomed', outcome: 'failed' }),
      1,
    );
    assert.equal(delta('task_engine_jobs_finished_total'), 3);
    assert.equal(delta('task_engine_admissions_total', c), 3);
    assert.equal(delta('task_engine_queued_to_started_seconds', c), 3);
    assert.equal(
      delta('task_engine_tasks_finished_total', { workflow: 'ok', task: 'step', outcome: 'succeeded' }),
      1,
    );
    assert.equal(delta('task_engine_tasks_finished_total', { workflow: 'flaky', outcome: 'succeeded' }), 1);
    assert.equal(delta('task_engine_tasks_finished_total', { workflow: 'flaky', outcome: 'failed' }), 0);
    assert.equal(delta('task_engine_tasks_finished_total', { workflow: 'doomed', outcome: 'failed' }), 1);
    assert.equal(delta('task_engine_attempt_failures_total', { workflow: 'flaky', task: 'flaky' }), 1);
    assert.equal(delta('task_engine_attempt_failures_total', { workflow: 'doomed' }), 1);
    assert.equal(delta('task_engine_attempt_failures_total'), 2);
    assert.equal(delta('task_engine_task_retries_total', { workflow: 'flaky', task: 'flaky' }), 1);
    assert.equal(delta('task_engine_task_retries_total'), 1);
    assert.equal(delta('task_engine_task_duration_seconds', { workflow: 'flaky', outcome: 'retry' }), 1);
    assert.equal(delta('task_engine_task_duration_seconds', { workflow: 'flaky', outcome: 'succeeded' }), 1);
    assert.equal(delta('task_engine_task_duration_seconds'), 4);
    const host = new URL(rx.url).host;
    assert.ok(delivered[0]!.n >= 3, `deliveries of the ok job: ${delivered[0]!.n}`);
    assert.equal(delta('task_engine_callback_deliveries_total', { outcome: 'delivered' }), delivered[0]!.n);
    assert.equal(delta('task_engine_callback_deliveries_total', { outcome: 'failed' }), 0);
    assert.equal(delta('task_engine_callback_duration_seconds', { host }), delivered[0]!.n);
    assert.equal(rx.requests.length, delivered[0]!.n);
    // Statements are timed under their query names.
    assert.ok(delta('task_engine_db_query_duration_seconds', { query: 'read-admission-state' }) >= 1);
    assert.ok(after.value('task_engine_db_query_duration_seconds', { query: 'other' }) >= 0);
    // Gauges from the database and the process metrics are there.
    for (const name of [
      'task_engine_jobs',
      'task_engine_slots_used',
      'task_engine_max_jobs',
      'task_engine_workers',
      'task_engine_queue_depth',
      'task_engine_callback_backlog',
      'task_engine_nodejs_eventloop_lag_seconds',
      'task_engine_process_cpu_user_seconds_total',
      'task_engine_stalls_recovered_total',
      'task_engine_progress_writes_total',
    ])
      assert.ok(after.has(name), `${name} is exported`);
    assert.equal(after.value('task_engine_max_jobs'), 10);
    assert.ok(after.value('task_engine_workers', { queue: 'work' }) >= 1);
    assert.ok(after.value('task_engine_workers', { queue: 'callback' }) >= 1);
    assert.equal(after.value('task_engine_db_snapshot_up'), 1);
    if (kind === 'postgres') assert.ok(after.has('task_engine_db_pool_connections'));
  });

  void it('admits an admin client, the token and Bearer client:key; 403 for a non-admin; 401 without', async () => {
    const get = (headers: Record<string, string>) => app.inject({ method: 'GET', url: '/metrics', headers });
    assert.equal((await get(admin)).statusCode, 200);
    assert.equal((await get({ authorization: `Bearer ${TOKEN}` })).statusCode, 200);
    assert.equal(
      (await get({ authorization: `Bearer ${admin.client}:${admin['api-key']}` })).statusCode,
      200,
    );
    const forbidden = await get(plain);
    assert.equal(forbidden.statusCode, 403);
    assert.match((JSON.parse(forbidden.body) as { error: string }).error, /not an admin/);
    const cases: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong-token-0123456789' },
      { ...admin, 'api-key': 'nope' },
    ];
    for (const headers of cases) {
      const res = await get(headers);
      assert.equal(res.statusCode, 401, JSON.stringify(headers));
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.ok((JSON.parse(res.body) as { error: string }).error.length > 0);
    }
  });
});

describe('GET /metrics with TASK_ENGINE_METRICS=off', () => {
  let store: TestStore;
  let engine: Engine;
  let app: FastifyInstance;
  before(async () => {
    store = await createTestStore('pglite');
    const catalog = createFixtureCatalog({});
    engine = await createEngine(
      testConfig({ workflowsDir: catalog.dir, metrics: false, metricsToken: TOKEN }),
      {
        db: store.db,
        catalog,
        logger: pino({ level: 'silent' }),
      },
    );
    app = buildServer(engine.ctx);
    await app.ready();
  });
  after(async () => {
    await app?.close();
    await engine?.stop();
    await store?.dispose();
  });

  void it('answers 404 JSON and leaves the store unwrapped', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(res.statusCode, 404);
    assert.match((JSON.parse(res.body) as { error: string }).error, /TASK_ENGINE_METRICS=off/);
    assert.equal(engine.ctx.metrics, undefined);
    assert.equal(engine.ctx.db, store.db);
  });
});
