/**
 * Status routes, the API description, authentication (401/403), unknown routes and the 500 reply,
 * through `app.inject()` on both stores.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { buildServer } from '../../src/api/build-server.js';
import { forEachStore } from '../helpers/stores.js';
import { createApiHarness, json, type ApiHarness } from './harness.js';

const ISO_MS_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Every route but `GET /`, with a body where it takes one. */
const PROTECTED: [string, string, unknown?][] = [
  ['GET', '/health'],
  ['GET', '/dashboard'],
  ['POST', '/job', { job: { workflow: 'greet' }, parameters: { content_id: 'x' } }],
  ['GET', '/jobs'],
  ['GET', '/jobs/1'],
  ['PATCH', '/jobs/1', { priority: 2 }],
  ['POST', '/jobs/1/rerun'],
  ['GET', '/logs/1'],
  ['GET', '/schedules'],
  ['PUT', '/scheduler', { schedule: 'push_jobs', active: false }],
  ['POST', '/settings', { name: 'max_jobs', setting: 3 }],
  ['GET', '/settings'],
  ['GET', '/workflows'],
  ['POST', '/workflows/reload'],
  ['POST', '/clients', { name: 'newcomer' }],
  ['GET', '/clients'],
  ['DELETE', '/clients/acme'],
];

const ADMIN_ONLY: [string, string, unknown?][] = [
  ['POST', '/settings', { name: 'max_jobs', setting: 3 }],
  ['PUT', '/scheduler', { schedule: 'push_jobs', active: false }],
  ['POST', '/clients', { name: 'newcomer' }],
  ['GET', '/clients'],
  ['DELETE', '/clients/other'],
  ['POST', '/workflows/reload'],
];

forEachStore('API status and authentication', (kind) => {
  let h: ApiHarness;
  before(async () => {
    h = await createApiHarness(kind);
  });
  after(() => h.close());

  void test('GET / answers {"result":"alive"} without credentials', async () => {
    const res = await h.call(null, 'GET', '/');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(json(res), { result: 'alive' });
  });

  void test('GET /health has the seed shape with numbers in every counter', async () => {
    const res = await h.call(h.acme, 'GET', '/health');
    assert.equal(res.statusCode, 200);
    const body = json<Record<string, Record<string, unknown>>>(res);
    // The seed's keys, plus status, reasons and checks.
    assert.deepEqual(Object.keys(body).sort(), [
      'checks',
      'databases',
      'jobs',
      'queues',
      'reasons',
      'status',
      'tasks',
      'version',
    ]);
    assert.equal(typeof body.version, 'string');
    assert.equal(body.databases!.postgres, 'OK');
    for (const q of ['controller', 'scheduler', 'callback', 'work', 'slow']) {
      const counter = body.queues![q] as Record<string, unknown>;
      assert.ok(counter, `queue ${q} is listed`);
      assert.deepEqual(Object.keys(counter).sort(), ['pending', 'workers', 'working']);
      for (const v of Object.values(counter)) assert.equal(typeof v, 'number');
    }
    assert.deepEqual(Object.keys(body.tasks!).sort(), ['failed', 'pending', 'processed']);
    for (const v of Object.values(body.tasks!)) assert.equal(typeof v, 'number');
    for (const k of ['completed', 'failed', 'pending', 'broken', 'queued', 'started', 'scheduled', 'paused'])
      assert.equal(typeof body.jobs![k], 'number', `jobs.${k}`);
    assert.equal(body.jobs!.max_jobs, 2);
    assert.equal(body.jobs!.priority_slots, 0);
  });

  void test('GET /dashboard lists a queued job with the seed fields and no parameters', async () => {
    const submitted = json<{ id: number }>(
      await h.call(h.acme, 'POST', '/job', {
        job: { workflow: 'greet', priority: 4 },
        parameters: { content_id: 'dash' },
      }),
    );
    const res = await h.call(h.acme, 'GET', '/dashboard');
    assert.equal(res.statusCode, 200);
    const body = json<{
      max_jobs: number;
      priority_slots: number;
      started: unknown[];
      queued: Record<string, unknown>[];
      scheduled: unknown[];
      version: string;
    }>(res);
    assert.equal(body.max_jobs, 2);
    assert.equal(body.priority_slots, 0);
    assert.ok(Array.isArray(body.started) && Array.isArray(body.scheduled));
    assert.equal(typeof body.version, 'string');
    const row = body.queued.find((j) => j.id === submitted.id);
    assert.ok(row, 'the queued job is listed');
    assert.equal(row.client, 'acme');
    assert.equal(row.workflow, 'greet');
    assert.equal(row.priority, 4);
    assert.equal(row.position, 1);
    assert.equal(row.queue_state, 'queued');
    assert.equal(row.failed, false);
    assert.match(String(row.created_at), ISO_MS_Z);
    assert.match(String(row.updated_at), ISO_MS_Z);
    assert.match(String(row.run_at), ISO_MS_Z);
    assert.equal('parameters' in row, false);
  });

  void test('every route but GET / answers 401 JSON without credentials, naming the headers', async () => {
    for (const [method, url, body] of PROTECTED) {
      const res = await h.call(null, method, url, body);
      assert.equal(res.statusCode, 401, `${method} ${url}`);
      assert.match(json<{ error: string }>(res).error, /"client".*"api-key"/, `${method} ${url}`);
    }
  });

  void test('a wrong key, an unknown client, a half-sent pair and a revoked client all answer 401', async () => {
    const jobsBefore = await h.store.db.query('SELECT count(*)::int AS n FROM jobs');
    for (const [method, url, body] of PROTECTED) {
      for (const headers of [
        { client: 'acme', 'api-key': `${h.acme.apiKey}x` },
        { client: 'nobody', 'api-key': h.acme.apiKey },
        { client: 'acme' },
        { 'api-key': h.acme.apiKey },
      ]) {
        const res = await h.call(null, method, url, body, { headers });
        assert.equal(res.statusCode, 401, `${method} ${url} ${JSON.stringify(Object.keys(headers))}`);
        assert.equal(typeof json<{ error: string }>(res).error, 'string');
      }
    }
    const jobsAfter = await h.store.db.query('SELECT count(*)::int AS n FROM jobs');
    assert.deepEqual(jobsAfter.rows, jobsBefore.rows, 'no job was written by a refused request');
  });

  void test('x-api-key is accepted in place of api-key', async () => {
    const res = await h.call(null, 'GET', '/jobs', undefined, {
      headers: { client: 'acme', 'x-api-key': h.acme.apiKey },
    });
    assert.equal(res.statusCode, 200);
  });

  void test('Authorization: Bearer <client>:<api-key> authenticates like the two headers', async () => {
    const bearer = (value: string) =>
      h.call(null, 'GET', '/jobs', undefined, { headers: { authorization: value } });
    assert.equal((await bearer(`Bearer acme:${h.acme.apiKey}`)).statusCode, 200);
    assert.equal(
      (await bearer(`bearer acme:${h.acme.apiKey}`)).statusCode,
      200,
      'the scheme is case-insensitive',
    );
    const wrong = await bearer(`Bearer acme:${h.acme.apiKey}x`);
    assert.equal(wrong.statusCode, 401);
    assert.match(json<{ error: string }>(wrong).error, /wrong credentials/);
    for (const malformed of ['Bearer acme', `Basic acme:${h.acme.apiKey}`, 'Bearer :key', 'Bearer']) {
      const res = await bearer(malformed);
      assert.equal(res.statusCode, 401, malformed);
      assert.match(json<{ error: string }>(res).error, /Bearer <client name>:<api-key>/, malformed);
    }
    // A non-admin's bearer credentials are still refused on admin routes.
    const admin = await h.call(null, 'GET', '/clients', undefined, {
      headers: { authorization: `Bearer acme:${h.acme.apiKey}` },
    });
    assert.equal(admin.statusCode, 403);
  });

  void test('admin-only routes answer 403 to a non-admin client and change nothing', async () => {
    for (const [method, url, body] of ADMIN_ONLY) {
      const res = await h.call(h.acme, method, url, body);
      assert.equal(res.statusCode, 403, `${method} ${url}`);
      assert.match(json<{ error: string }>(res).error, /not an admin client/);
    }
    const settings = json<{ settings: Record<string, unknown> }>(await h.call(h.acme, 'GET', '/settings'));
    assert.equal(settings.settings.max_jobs, 2);
    const clients = await h.store.db.query<{ name: string }>(
      'SELECT name FROM clients WHERE revoked_at IS NULL ORDER BY name',
    );
    assert.deepEqual(
      clients.rows.map((r) => r.name),
      ['acme', 'other', 'root'],
    );
  });

  void test('an unknown route answers 404 JSON', async () => {
    const res = await h.call(h.acme, 'GET', '/no/such/route');
    assert.equal(res.statusCode, 404);
    assert.match(json<{ error: string }>(res).error, /no route GET \/no\/such\/route/);
  });

  void test('a path that is not valid percent-encoding, or has an over-long segment, answers a JSON error in the usual shape', async () => {
    for (const [method, url, status, pattern] of [
      ['GET', '/jobs/%ZZ', 400, /not valid percent-encoding/],
      ['DELETE', '/schedules/%ff', 400, /not valid percent-encoding/],
      ['GET', `/jobs/${'1'.repeat(300)}`, 414, /longer than 100 characters/],
      ['DELETE', `/schedules/${'a'.repeat(300)}`, 414, /longer than 100 characters/],
    ] as const) {
      const res = await h.call(h.acme, method, url);
      assert.equal(res.statusCode, status, `${method} ${url}: ${res.body}`);
      const body = json<Record<string, unknown>>(res);
      assert.deepEqual(Object.keys(body), ['error'], res.body);
      assert.match(String(body.error), pattern);
    }
  });

  void test('the OpenAPI document is public and describes every route with a summary', async () => {
    const res = await h.call(null, 'GET', '/openapi.json');
    assert.equal(res.statusCode, 200);
    const doc = json<{ paths: Record<string, Record<string, { summary?: string }>> }>(res);
    const expected: [string, string][] = [
      ['/', 'get'],
      ['/health', 'get'],
      ['/dashboard', 'get'],
      ['/job', 'post'],
      ['/jobs', 'get'],
      ['/jobs/{id}', 'get'],
      ['/jobs/{id}', 'patch'],
      ['/jobs/{id}/rerun', 'post'],
      ['/logs/{id}', 'get'],
      ['/schedules', 'get'],
      ['/scheduler', 'put'],
      ['/settings', 'post'],
      ['/settings', 'get'],
      ['/workflows', 'get'],
      ['/workflows/reload', 'post'],
      ['/clients', 'post'],
      ['/clients', 'get'],
      ['/clients/{name}', 'delete'],
    ];
    for (const [path, method] of expected) {
      const op = doc.paths[path]?.[method];
      assert.ok(op, `${method.toUpperCase()} ${path} is described`);
      assert.ok(op.summary && op.summary.length > 5, `${method.toUpperCase()} ${path} has a summary`);
    }
    const docs = await h.call(null, 'GET', '/docs/');
    assert.equal(docs.statusCode, 200);
    assert.match(String(docs.headers['content-type']), /text\/html/);
  });

  void test('an unexpected fault answers 500 {"error":"internal error","request_id"} with no internals', async () => {
    const app = buildServer(h.engine.ctx);
    app.get('/boom', async () => {
      throw new Error('secret internal detail at /srv/db');
    });
    app.get('/db-down', async () => {
      throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' });
    });
    try {
      const res = await app.inject({ method: 'GET', url: '/boom', headers: h.acme.headers });
      assert.equal(res.statusCode, 500);
      const body = json<{ error: string; request_id: string }>(res);
      assert.deepEqual(Object.keys(body).sort(), ['error', 'request_id']);
      assert.equal(body.error, 'internal error');
      assert.ok(body.request_id.length > 8);
      assert.equal(res.body.includes('secret'), false);
      const down = await app.inject({ method: 'GET', url: '/db-down', headers: h.acme.headers });
      assert.equal(down.statusCode, 503);
      assert.match(json<{ error: string }>(down).error, /database cannot be reached/);
      assert.equal(down.body.includes('10.0.0.5'), false);
    } finally {
      await app.close();
    }
  });
});
