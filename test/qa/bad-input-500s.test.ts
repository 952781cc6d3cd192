/**
 * Regression tests for input that once answered 500 (NUL characters, unpaired surrogates, parser
 * errors, prototype keys) or a setting that stopped admission. Each request must be a 4xx, on
 * both stores (a NUL that PostgreSQL refuses must be caught before it reaches either).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createApiHarness, json, type ApiHarness } from '../api/harness.js';
import { forEachStore } from '../helpers/stores.js';
import { validateSetting, SETTING_DEFAULTS, type EngineSettings } from '../../src/engine/settings.js';

forEachStore('QA: bad input must never be a 500', (kind) => {
  let h: ApiHarness;
  before(async () => {
    h = await createApiHarness(kind);
  });
  after(() => h.close());

  for (const url of ['/jobs?search=%00', '/jobs?client=%00', '/dashboard?client=%00']) {
    it(`GET ${url} is a 400, not a 500`, async () => {
      const res = await h.call(h.root, 'GET', url);
      assert.equal(res.statusCode, 400, res.body);
    });
  }

  it('POST /settings with a NUL in the name or the value is a 400', async () => {
    for (const body of [
      { name: 'foo\u0000', setting: '1' },
      { name: 'foo', setting: 'a\u0000' },
    ]) {
      const res = await h.call(h.root, 'POST', '/settings', body);
      assert.equal(res.statusCode, 400, res.body);
    }
  });

  it('PATCH semaphore_url with a NUL is a 400', async () => {
    const sub = await h.call(h.root, 'POST', '/job', {
      job: { workflow: 'greet', run_at: '2035-01-01T00:00:00' },
      parameters: { content_id: 'qa' },
    });
    assert.equal(sub.statusCode, 200, sub.body);
    const id = (JSON.parse(sub.body) as { id: number }).id;
    const res = await h.call(h.root, 'PATCH', `/jobs/${id}`, { semaphore_url: 'http://a/\u0000' });
    assert.equal(res.statusCode, 400, res.body);
  });

  it('a header with a control character gets the JSON error shape', async () => {
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = h.app.server.address() as { port: number };
    const { connect } = await import('node:net');
    const raw = await new Promise<string>((resolve, reject) => {
      const sock = connect(port, '127.0.0.1', () => {
        sock.write('GET /health HTTP/1.1\r\nHost: x\r\nclient: demo\x01client\r\n\r\n');
      });
      let data = '';
      sock.on('data', (d) => (data += d.toString()));
      sock.on('end', () => resolve(data));
      sock.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.1 400/);
    assert.match(raw, /\{"error":"the request is not valid HTTP/);
  });

  it('client names that are folders of the workflows directory are refused', async () => {
    for (const name of ['common', 'handlers']) {
      const res = await h.call(h.root, 'POST', '/clients', { name, admin: false });
      assert.equal(res.statusCode, 400, res.body);
      assert.match(res.body, /reserved/);
    }
  });

  it('a body whose bytes are not UTF-8 is a 400, not stored with replacement characters', async () => {
    const before = await h.store.db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs');
    const payload = Buffer.concat([
      Buffer.from('{"job":{"workflow":"greet"},"parameters":{"content_id":"'),
      Buffer.from([0xff, 0xfe, 0xc3]),
      Buffer.from('"}}'),
    ]);
    const res = await h.call(h.root, 'POST', '/job', undefined, {
      payload,
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.match((JSON.parse(res.body) as { error: string }).error, /UTF-8/);
    const after = await h.store.db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs');
    assert.equal(after.rows[0]!.n, before.rows[0]!.n, 'no job was made');
    // The same request in good UTF-8 is accepted (the check is not refusing everything).
    const good = await h.call(h.root, 'POST', '/job', undefined, {
      payload: Buffer.from('{"job":{"workflow":"greet"},"parameters":{"content_id":"ÿþé"}}'),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(good.statusCode, 200, good.body);
  });

  it('a body with a "__proto__" key is refused with a message naming it', async () => {
    const res = await h.call(
      h.root,
      'POST',
      '/settings',
      JSON.parse('{"name":"x","setting":1,"__proto__":{"a":1}}'),
    );
    assert.equal(res.statusCode, 400, res.body);
    assert.match(json<{ error: string }>(res).error, /holds a "__proto__" or "constructor\.prototype" key/);
    const nested = await h.call(h.root, 'POST', '/job', undefined, {
      payload:
        '{"job":{"workflow":"greet"},"parameters":{"content_id":"x","custom_data":{"constructor":{"prototype":{}}}}}',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(nested.statusCode, 400, nested.body);
    assert.match(
      json<{ error: string }>(nested).error,
      /holds a "__proto__" or "constructor\.prototype" key/,
    );
    // Text that is not JSON at all is still called so.
    const broken = await h.call(h.root, 'POST', '/job', undefined, {
      payload: '{"__proto__": ',
      headers: { 'content-type': 'application/json' },
    });
    assert.match(json<{ error: string }>(broken).error, /not valid JSON/);
  });
});

describe('QA: known settings need an upper bound', () => {
  const current = { ...SETTING_DEFAULTS } as EngineSettings;
  it('max_jobs beyond a safe integer / bigint is refused (it stopped every admission pass)', () => {
    assert.throws(() => validateSetting('max_jobs', '99999999999999999999', current));
    assert.throws(() => validateSetting('max_jobs', 1e21, current));
  });
  it('durations that overflow a Date are refused', () => {
    assert.throws(() => validateSetting('retention_days', 1e15, current));
    assert.throws(() => validateSetting('schedule_interval', 1e20, current));
    assert.throws(() => validateSetting('stall_timeout', 1e20, current));
  });
});
