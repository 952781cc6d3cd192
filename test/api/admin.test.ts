/**
 * Settings, schedules, workflows and client management through HTTP on both stores.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CLIENTS_CHANNEL, VERIFIED_KEY_TTL_MS } from '../../src/engine/clients/clients.js';
import { forEachStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';
import { createApiHarness, json, type ApiHarness } from './harness.js';

forEachStore('API settings, schedules, workflows and clients', (kind) => {
  let h: ApiHarness;
  before(async () => {
    h = await createApiHarness(kind);
  });
  after(() => h.close());

  const settingsRows = async (): Promise<string> =>
    JSON.stringify((await h.store.db.query('SELECT name, value FROM settings ORDER BY name')).rows);

  void test('POST /settings answers {"result":"ok","message":"<name> setting created/updated"} and GET /settings shows it', async () => {
    const res = await h.call(h.root, 'POST', '/settings', { name: 'max_jobs', setting: '4' });
    assert.equal(res.statusCode, 200);
    const body = json(res);
    assert.equal(body.result, 'ok');
    assert.match(String(body.message), /^max_jobs setting (created|updated)$/);
    const list = json<{ result: string; settings: Record<string, unknown> }>(
      await h.call(h.acme, 'GET', '/settings'),
    );
    assert.equal(list.result, 'ok');
    assert.equal(list.settings.max_jobs, 4);
    assert.equal(list.settings.priority_slots, 0);
    const health = json<{ jobs: { max_jobs: number } }>(await h.call(h.acme, 'GET', '/health'));
    assert.equal(health.jobs.max_jobs, 4, 'the change takes effect at once');
  });

  for (const [label, body, message] of [
    ['max_jobs "abc"', { name: 'max_jobs', setting: 'abc' }, /max_jobs.*whole number/],
    ['max_jobs 0', { name: 'max_jobs', setting: 0 }, /max_jobs.*at least 1/],
    ['priority_slots above max_jobs', { name: 'priority_slots', setting: 99 }, /priority_slots.*max_jobs/],
  ] as const)
    void test(`POST /settings ${label} is a 400 and changes nothing`, async () => {
      const before = await settingsRows();
      const res = await h.call(h.root, 'POST', '/settings', body);
      assert.equal(res.statusCode, 400);
      assert.match(json<{ error: string }>(res).error, message);
      assert.equal(await settingsRows(), before);
    });

  void test('GET /schedules lists every schedule in the seed shape plus active and run times', async () => {
    const res = await h.call(h.acme, 'GET', '/schedules');
    assert.equal(res.statusCode, 200);
    const body = json<{ result: string; schedules: Record<string, Record<string, unknown>> }>(res);
    assert.equal(body.result, 'ok');
    assert.deepEqual(Object.keys(body.schedules).sort(), [
      'cleanup_jobs',
      'push_jobs',
      'queue_scheduled_jobs',
      'recover_stalled_tasks',
    ]);
    const q = body.schedules.queue_scheduled_jobs!;
    assert.equal(q.class, 'QueueJobs');
    assert.deepEqual(q.every, [60, { first_in: 5 }]);
    assert.equal(q.queue, 'scheduler');
    assert.equal(typeof q.description, 'string');
    assert.equal(q.active, true);
    assert.ok('last_run_at' in q && 'next_run_at' in q);
  });

  void test('PUT /scheduler switches a schedule and answers the active names; an unknown one is a 400', async () => {
    const res = await h.call(h.root, 'PUT', '/scheduler', { schedule: 'push_jobs', active: false });
    assert.equal(res.statusCode, 200);
    const body = json<{ result: string; schedules: string[] }>(res);
    assert.equal(body.result, 'ok');
    assert.equal(body.schedules.includes('push_jobs'), false);
    assert.ok(body.schedules.includes('queue_scheduled_jobs'));
    const before = JSON.stringify(
      (await h.store.db.query('SELECT name, active FROM schedules ORDER BY name')).rows,
    );
    const bad = await h.call(h.root, 'PUT', '/scheduler', { schedule: 'no_such_schedule', active: true });
    assert.equal(bad.statusCode, 400);
    assert.match(json<{ error: string }>(bad).error, /no_such_schedule.*queue_scheduled_jobs/);
    assert.equal(
      JSON.stringify((await h.store.db.query('SELECT name, active FROM schedules ORDER BY name')).rows),
      before,
    );
    assert.equal(
      (await h.call(h.root, 'PUT', '/scheduler', { schedule: 'push_jobs', active: true })).statusCode,
      200,
    );
  });

  void test("GET /workflows lists the client's workflows with schemas and tasks", async () => {
    const acme = json<Record<string, unknown>[]>(await h.call(h.acme, 'GET', '/workflows'));
    assert.deepEqual(
      acme.map((w) => w.name),
      ['greet', 'private'],
    );
    const greet = acme[0]!;
    assert.equal(greet.description, 'Prints a greeting (API test fixture).');
    assert.equal(greet.source, 'common');
    assert.deepEqual((greet.parameters as { required: string[] }).required, ['content_id']);
    assert.deepEqual(
      (greet.tasks as { name: string; queue: string }[]).map((t) => [t.name, t.queue]),
      [
        ['hello', 'work'],
        ['wait', 'slow'],
      ],
    );
    assert.equal(acme[1]!.source, 'client');
    const other = json<{ name: string }[]>(await h.call(h.other, 'GET', '/workflows'));
    assert.deepEqual(
      other.map((w) => w.name),
      ['greet'],
    );
  });

  void test('POST /workflows/reload (admin) re-reads the definitions', async () => {
    const res = await h.call(h.root, 'POST', '/workflows/reload');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(json(res), { result: 'ok', workflows: ['greet'] });
  });

  void test('POST /clients creates a client whose key works once shown; GET /clients shows no secrets', async () => {
    const res = await h.call(h.root, 'POST', '/clients', { name: 'newco', admin: false });
    assert.equal(res.statusCode, 201);
    const created = json<{ name: string; admin: boolean; api_key: string; signing_secret: string }>(res);
    assert.equal(created.name, 'newco');
    assert.equal(created.admin, false);
    assert.match(created.api_key, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
    assert.match(created.signing_secret, /^[A-Za-z0-9_-]{43}$/);
    const stored = await h.store.db.query<{ key_hash: string }>(
      'SELECT key_hash FROM clients WHERE name = $1',
      ['newco'],
    );
    assert.match(stored.rows[0]!.key_hash, /^[0-9a-f]{64}$/, 'only the SHA-256 hash is stored');
    assert.notEqual(stored.rows[0]!.key_hash, created.api_key);
    const asNew = await h.call(null, 'GET', '/jobs', undefined, {
      headers: { client: 'newco', 'api-key': created.api_key },
    });
    assert.equal(asNew.statusCode, 200);
    const list = await h.call(h.root, 'GET', '/clients');
    assert.equal(list.statusCode, 200);
    const rows = json<Record<string, unknown>[]>(list);
    const row = rows.find((r) => r.name === 'newco')!;
    assert.deepEqual(Object.keys(row).sort(), [
      'admin',
      'api_key_last4',
      'created_at',
      'name',
      'revoked_at',
      'updated_at',
    ]);
    assert.equal(row.api_key_last4, created.api_key.slice(-4));
    assert.equal(row.revoked_at, null);
    assert.equal(list.body.includes(created.api_key), false);
    assert.equal(list.body.includes(created.signing_secret), false);
  });

  void test('POST /clients refuses a bad name (400) and an existing one (409)', async () => {
    const bad = await h.call(h.root, 'POST', '/clients', { name: 'Bad Name!' });
    assert.equal(bad.statusCode, 400);
    assert.match(json<{ error: string }>(bad).error, /lowercase letters, digits/);
    const missing = await h.call(h.root, 'POST', '/clients', { admin: true });
    assert.equal(missing.statusCode, 400);
    assert.match(json<{ error: string }>(missing).error, /"name"/);
    const dup = await h.call(h.root, 'POST', '/clients', { name: 'acme' });
    assert.equal(dup.statusCode, 409);
    assert.match(json<{ error: string }>(dup).error, /already exists/);
  });

  void test('DELETE /clients/<name> revokes: the key stops working at once', async () => {
    const created = json<{ api_key: string }>(
      await h.call(h.root, 'POST', '/clients', { name: 'shortlived' }),
    );
    const headers = { client: 'shortlived', 'api-key': created.api_key };
    assert.equal((await h.call(null, 'GET', '/jobs', undefined, { headers })).statusCode, 200);
    const res = await h.call(h.root, 'DELETE', '/clients/shortlived');
    assert.equal(res.statusCode, 200);
    const body = json<{ result: string; client: { name: string; revoked_at: string } }>(res);
    assert.equal(body.result, 'ok');
    assert.equal(body.client.name, 'shortlived');
    assert.match(body.client.revoked_at, /Z$/);
    assert.equal((await h.call(null, 'GET', '/jobs', undefined, { headers })).statusCode, 401);
    assert.equal((await h.call(h.root, 'DELETE', '/clients/nobody')).statusCode, 404);
    const last = await h.call(h.root, 'DELETE', '/clients/root');
    assert.equal(last.statusCode, 409, 'the last admin client cannot be revoked');
    assert.match(json<{ error: string }>(last).error, /last active admin/);
  });

  void test('a key revoked by another process stops working when its notification arrives, well before the key would be asked again', async () => {
    const created = json<{ api_key: string }>(
      await h.call(h.root, 'POST', '/clients', { name: 'elsewhere' }),
    );
    const headers = { client: 'elsewhere', 'api-key': created.api_key };
    const status = async () => (await h.call(null, 'GET', '/jobs', undefined, { headers })).statusCode;
    // Verified keys are remembered once the process listens for client changes.
    for (let i = 0; i < 10; i++) {
      assert.equal(await status(), 200);
      await new Promise((r) => setTimeout(r, 20));
    }
    // Another process revokes: first the row alone (this process still trusts the key it verified) ...
    await h.store.db.query(`UPDATE clients SET revoked_at = now() WHERE name = 'elsewhere'`);
    assert.equal(await status(), 200, 'a verified key is remembered');
    // ... then its notification, as revokeClient sends it.
    const t0 = Date.now();
    await h.store.db.query('SELECT pg_notify($1, $2)', [CLIENTS_CHANNEL, 'elsewhere']);
    await waitFor(async () => (await status()) === 401, { timeoutMs: 2000, what: 'the revoked key to fail' });
    assert.ok(Date.now() - t0 < VERIFIED_KEY_TTL_MS);
  });
});
