/**
 * Per-client settings through HTTP on both stores: POST /settings with "client" (admin; the one
 * route where the body's client names another client), GET /settings?client= with value and
 * source, DELETE /settings/<name>?client=, and the "created" reply for a new unknown name.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { forEachStore } from '../helpers/stores.js';
import { createApiHarness, json, type ApiHarness } from './harness.js';

forEachStore('API per-client settings', (kind) => {
  let h: ApiHarness;
  before(async () => {
    h = await createApiHarness(kind);
  });
  after(() => h.close());

  type Effective = Record<string, { value: number; source: string }>;
  const clientSettings = async (client: string): Promise<Effective> => {
    const res = await h.call(h.root, 'GET', `/settings?client=${client}`);
    assert.equal(res.statusCode, 200, res.body);
    const body = json<{ result: string; client: string; settings: Effective }>(res);
    assert.equal(body.client, client);
    return body.settings;
  };

  void test('POST /settings {"client"} sets a value for that client only; GET ?client= shows value and source', async () => {
    const res = await h.call(h.root, 'POST', '/settings', { name: 'max_jobs', setting: '3', client: 'acme' });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(json(res), { result: 'ok', message: 'max_jobs setting updated', client: 'acme' });
    const weight = await h.call(h.root, 'POST', '/settings', { name: 'weight', setting: 3, client: 'acme' });
    assert.equal(weight.statusCode, 200, weight.body);

    const acme = await clientSettings('acme');
    assert.deepEqual(acme.max_jobs, { value: 3, source: 'client' });
    assert.deepEqual(acme.weight, { value: 3, source: 'client' });
    assert.deepEqual(acme.priority_threshold, { value: 5, source: 'global' });
    assert.deepEqual(Object.keys(acme).sort(), [
      'max_jobs',
      'priority_slots',
      'priority_threshold',
      'retry_delay',
      'retry_limit',
      'weight',
    ]);
    // Another client, and the global settings, are untouched.
    assert.deepEqual((await clientSettings('other')).max_jobs, { value: 2, source: 'global' });
    const global = json<{ settings: Record<string, unknown> }>(await h.call(h.acme, 'GET', '/settings'));
    assert.equal(global.settings.max_jobs, 2);
    assert.equal(global.settings.weight, 1);
    // A client may read its own per-client settings, not another's.
    const own = await h.call(h.acme, 'GET', '/settings?client=acme');
    assert.equal(own.statusCode, 200, own.body);
    const foreign = await h.call(h.acme, 'GET', '/settings?client=other');
    assert.equal(foreign.statusCode, 403);
    assert.match(json<{ error: string }>(foreign).error, /only its own/);
  });

  void test('a global change shows through for clients without their own value', async () => {
    const res = await h.call(h.root, 'POST', '/settings', { name: 'retry_limit', setting: 7 });
    assert.equal(res.statusCode, 200);
    assert.deepEqual((await clientSettings('other')).retry_limit, { value: 7, source: 'global' });
    await h.call(h.root, 'POST', '/settings', { name: 'retry_limit', setting: 1, client: 'other' });
    assert.deepEqual((await clientSettings('other')).retry_limit, { value: 1, source: 'client' });
  });

  void test('DELETE /settings/<name>?client= falls back to the global value; a second delete is a 404', async () => {
    await h.call(h.root, 'POST', '/settings', { name: 'priority_threshold', setting: 8, client: 'other' });
    assert.deepEqual((await clientSettings('other')).priority_threshold, { value: 8, source: 'client' });
    const res = await h.call(h.root, 'DELETE', '/settings/priority_threshold?client=other');
    assert.equal(res.statusCode, 200, res.body);
    assert.match(json<{ message: string }>(res).message, /removed for client other/);
    assert.deepEqual((await clientSettings('other')).priority_threshold, { value: 5, source: 'global' });
    const again = await h.call(h.root, 'DELETE', '/settings/priority_threshold?client=other');
    assert.equal(again.statusCode, 404);
    assert.equal((await h.call(h.root, 'DELETE', '/settings/priority_threshold')).statusCode, 400);
    assert.equal(
      (await h.call(h.acme, 'DELETE', '/settings/priority_threshold?client=acme')).statusCode,
      403,
    );
  });

  for (const [label, body, status, message] of [
    ['an unknown client', { name: 'max_jobs', setting: 2, client: 'nobody' }, 404, /no client "nobody"/],
    [
      'a setting that is not per client',
      { name: 'stall_timeout', setting: 9, client: 'acme' },
      400,
      /cannot be set for one client; per-client settings: max_jobs, weight/,
    ],
    ['a weight of 0', { name: 'weight', setting: 0, client: 'acme' }, 400, /weight.*at least 1/],
    ['a negative weight', { name: 'weight', setting: -2, client: 'acme' }, 400, /weight.*at least 1/],
    [
      'a weight that is a word',
      { name: 'weight', setting: 'heavy', client: 'acme' },
      400,
      /weight.*whole number/,
    ],
    ['a fractional weight', { name: 'weight', setting: 1.5, client: 'acme' }, 400, /weight.*whole number/],
    ['a quota of 0', { name: 'max_jobs', setting: 0, client: 'acme' }, 400, /max_jobs.*at least 1/],
    [
      'priority_slots above the client max_jobs',
      { name: 'priority_slots', setting: 4, client: 'acme' },
      400,
      /priority_slots must not exceed max_jobs \(3\)/,
    ],
    [
      'a client that is not a name',
      { name: 'max_jobs', setting: 2, client: 7 },
      400,
      /client must be the name of a client/,
    ],
  ] as const)
    void test(`POST /settings for ${label} is a ${status} and changes nothing`, async () => {
      const before = JSON.stringify(
        (await h.store.db.query('SELECT * FROM client_settings ORDER BY 1, 2')).rows,
      );
      const res = await h.call(h.root, 'POST', '/settings', body);
      assert.equal(res.statusCode, status, res.body);
      assert.match(json<{ error: string }>(res).error, message);
      assert.equal(
        JSON.stringify((await h.store.db.query('SELECT * FROM client_settings ORDER BY 1, 2')).rows),
        before,
      );
    });

  void test('GET /settings?client= for an unknown client is a 404', async () => {
    const res = await h.call(h.root, 'GET', '/settings?client=nobody');
    assert.equal(res.statusCode, 404);
    assert.match(json<{ error: string }>(res).error, /no client "nobody"/);
  });

  void test('the body client may differ from the caller on POST /settings only; elsewhere it is still a 400', async () => {
    // Admin only: a non-admin cannot set anything, for itself or another.
    const own = await h.call(h.acme, 'POST', '/settings', { name: 'max_jobs', setting: 9, client: 'acme' });
    assert.equal(own.statusCode, 403);
    const job = await h.call(h.root, 'POST', '/job', { client: 'acme', job: { workflow: 'greet' } });
    assert.equal(job.statusCode, 400);
    assert.match(json<{ error: string }>(job).error, /does not match the client header/);
  });

  void test('"created" only for a name that is neither known nor stored yet', async () => {
    const typo = await h.call(h.root, 'POST', '/settings', { name: 'max_job', setting: 4 });
    assert.deepEqual(json(typo), { result: 'ok', message: 'max_job setting created' });
    const again = await h.call(h.root, 'POST', '/settings', { name: 'max_job', setting: 5 });
    assert.deepEqual(json(again), { result: 'ok', message: 'max_job setting updated' });
    const known = await h.call(h.root, 'POST', '/settings', { name: 'schedule_interval', setting: 30 });
    assert.deepEqual(json(known), { result: 'ok', message: 'schedule_interval setting updated' });
  });
});
