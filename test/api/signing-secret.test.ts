/**
 * Rotation of a client's callback signing secret over the API (admin only), on both stores:
 * the new secret is shown once, the previous stays valid until the overlap is ended.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { forEachStore } from '../helpers/stores.js';
import { createApiHarness, json, type ApiHarness } from './harness.js';

forEachStore('API signing-secret rotation', (kind) => {
  let h: ApiHarness;
  before(async () => {
    h = await createApiHarness(kind);
  });
  after(() => h.close());

  const secrets = async (name: string) =>
    (
      await h.store.db.query<{ signing_secret: string; previous_signing_secret: string | null }>(
        'SELECT signing_secret, previous_signing_secret FROM clients WHERE name = $1',
        [name],
      )
    ).rows[0]!;

  void test('POST /clients/<name>/signing-secret rotates and keeps the previous secret valid', async () => {
    const before = await secrets('acme');
    const res = await h.call(h.root, 'POST', '/clients/acme/signing-secret');
    assert.equal(res.statusCode, 200, res.body);
    const body = json<{ name: string; signing_secret: string; previous_valid: boolean }>(res);
    assert.deepEqual(Object.keys(body).sort(), ['name', 'previous_valid', 'signing_secret']);
    assert.equal(body.name, 'acme');
    assert.equal(body.previous_valid, true);
    assert.notEqual(body.signing_secret, before.signing_secret);
    assert.deepEqual(await secrets('acme'), {
      signing_secret: body.signing_secret,
      previous_signing_secret: before.signing_secret,
    });
    assert.ok(!JSON.stringify(json(await h.call(h.root, 'GET', '/clients'))).includes(body.signing_secret));
  });

  void test('DELETE /clients/<name>/signing-secret/previous ends the overlap', async () => {
    const res = await h.call(h.root, 'DELETE', '/clients/acme/signing-secret/previous');
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(json(res), { result: 'ok', dropped: true });
    assert.equal((await secrets('acme')).previous_signing_secret, null);
    const again = await h.call(h.root, 'DELETE', '/clients/acme/signing-secret/previous');
    assert.deepEqual(json(again), { result: 'ok', dropped: false });
  });

  void test('keep_previous false replaces the secret without an overlap', async () => {
    const res = await h.call(h.root, 'POST', '/clients/acme/signing-secret', { keep_previous: false });
    assert.equal(res.statusCode, 200, res.body);
    const body = json<{ signing_secret: string; previous_valid: boolean }>(res);
    assert.equal(body.previous_valid, false);
    assert.deepEqual(await secrets('acme'), {
      signing_secret: body.signing_secret,
      previous_signing_secret: null,
    });
  });

  void test('only admins rotate; an unknown client is a 404; a bad body is a 400', async () => {
    const before = await secrets('other');
    assert.equal((await h.call(h.acme, 'POST', '/clients/other/signing-secret')).statusCode, 403);
    assert.equal((await h.call(h.acme, 'DELETE', '/clients/other/signing-secret/previous')).statusCode, 403);
    assert.equal((await h.call(null, 'POST', '/clients/other/signing-secret')).statusCode, 401);
    assert.deepEqual(await secrets('other'), before, 'nothing changed');
    const unknown = await h.call(h.root, 'POST', '/clients/nobody/signing-secret');
    assert.equal(unknown.statusCode, 404, unknown.body);
    assert.match(json<{ error: string }>(unknown).error, /no active client named "nobody"/);
    assert.equal((await h.call(h.root, 'DELETE', '/clients/nobody/signing-secret/previous')).statusCode, 404);
    const bad = await h.call(h.root, 'POST', '/clients/other/signing-secret', { keep_previous: 'maybe' });
    assert.equal(bad.statusCode, 400, bad.body);
    assert.deepEqual(await secrets('other'), before, 'nothing changed');
  });

  void test('a body with an unknown field or that is not an object is a 400 and rotates nothing', async () => {
    const before = await secrets('other');
    for (const body of [
      { keep_previou: false },
      { keep_previous: null },
      { keep_previous: 'false' },
      { keep_previous: false, extra: 1 },
      [],
      [{ keep_previous: false }],
    ]) {
      const res = await h.call(h.root, 'POST', '/clients/other/signing-secret', body);
      assert.equal(res.statusCode, 400, `${JSON.stringify(body)}: ${res.body}`);
      assert.ok(typeof json<{ error: string }>(res).error === 'string');
    }
    assert.deepEqual(await secrets('other'), before, 'nothing changed');
  });
});
