/**
 * The API side of the operator console, through `app.inject()` on both stores: the console's
 * files at `/ui` (redirect, pages falling back to index.html, a missing file, a missing bundle),
 * `GET /stats`, `GET /stats/job-count` and the paged `GET /logs/<id>?offset=&limit=&severity=`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import { registerConsoleRoutes } from '../../src/api/routes/console.js';
import { insertJob } from '../helpers/factories.js';
import { forEachStore } from '../helpers/stores.js';
import { createApiHarness, json, type ApiHarness } from '../api/harness.js';

/** A stand-in bundle: index.html and one hashed asset (with a precompressed copy). */
function fakeBundle(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'te-console-'));
  mkdirSync(path.join(dir, 'assets'));
  writeFileSync(
    path.join(dir, 'index.html'),
    '<!doctype html><title>Task Engine</title><div id="app"></div>',
  );
  writeFileSync(path.join(dir, 'assets', 'index-abc123.js'), 'console.log("console");');
  return dir;
}

void describe('console files at /ui', () => {
  const app = Fastify();
  before(async () => {
    registerConsoleRoutes(app, fakeBundle());
    await app.ready();
  });
  after(() => app.close());

  void test('/ui redirects to /ui/, which is index.html, never cached', async () => {
    const res = await app.inject({ method: 'GET', url: '/ui' });
    assert.equal(res.statusCode, 302);
    assert.equal(res.headers.location, '/ui/');
    const page = await app.inject({ method: 'GET', url: '/ui/' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.match(page.body, /<div id="app">/);
    assert.equal(page.headers['cache-control'], 'no-cache');
  });

  void test('a console page path (no extension) gets index.html; a missing file is a JSON 404', async () => {
    for (const url of ['/ui/jobs/42', '/ui/workflows/demo?x=1', '/ui/settings']) {
      const res = await app.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 200, url);
      assert.match(res.body, /<div id="app">/, url);
    }
    const missing = await app.inject({ method: 'GET', url: '/ui/assets/index-gone.js' });
    assert.equal(missing.statusCode, 404);
    assert.match(String(missing.headers['content-type']), /^application\/json/);
    assert.match(json(missing).error as string, /no console file \/ui\/assets\/index-gone\.js/);
  });

  void test('hashed assets are served as JavaScript and cached for good', async () => {
    const res = await app.inject({ method: 'GET', url: '/ui/assets/index-abc123.js' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /javascript/);
    assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(res.body, 'console.log("console");');
  });

  void test('without a built bundle every /ui path answers 503 naming npm run build:ui', async () => {
    const bare = Fastify();
    registerConsoleRoutes(bare, path.join(tmpdir(), 'te-no-such-console'));
    await bare.ready();
    try {
      for (const url of ['/ui', '/ui/', '/ui/jobs/1']) {
        const res = await bare.inject({ method: 'GET', url });
        assert.equal(res.statusCode, 503, url);
        assert.match(json(res).error as string, /npm run build:ui/, url);
      }
    } finally {
      await bare.close();
    }
  });
});

forEachStore('console API: /stats, /stats/job-count, /logs pages', (kind) => {
  let h: ApiHarness;
  let acmeJob: number;
  before(async () => {
    h = await createApiHarness(kind);
    const now = Date.now();
    const ago = (min: number): Date => new Date(now - min * 60_000 - 5_000);
    // acme: 2 completed just now, 1 failed 3 minutes ago, 1 broken 10 minutes ago (kept), 1 outside the hour.
    await insertJob(h.store.db, { client: 'acme', queue_state: 'completed', finished_at: ago(0) });
    await insertJob(h.store.db, { client: 'acme', queue_state: 'completed', finished_at: ago(0) });
    await insertJob(h.store.db, {
      client: 'acme',
      queue_state: 'completed',
      failed: true,
      finished_at: ago(3),
    });
    await insertJob(h.store.db, {
      client: 'acme',
      queue_state: 'broken',
      persist: true,
      finished_at: ago(10),
    });
    await insertJob(h.store.db, { client: 'acme', queue_state: 'completed', finished_at: ago(90) });
    // other: 1 completed now, 3 queued.
    await insertJob(h.store.db, { client: 'other', queue_state: 'completed', finished_at: ago(0) });
    for (let i = 0; i < 3; i++) await insertJob(h.store.db, { client: 'other', queue_state: 'queued' });
    acmeJob = await insertJob(h.store.db, {
      client: 'acme',
      queue_state: 'started',
      parameters: { content_id: 'logs' },
    });
    // 1 200 log entries: every 10th is DEBUG (hidden), every 100th an ERROR.
    await h.store.db.query(
      `INSERT INTO logs (job_id, severity, progname, message, task_id, visible)
       SELECT $1, CASE WHEN i % 100 = 0 THEN 3 WHEN i % 10 = 0 THEN 0 ELSE 1 END, 'worker', 'line ' || i, 0,
              i % 10 <> 0 OR i % 100 = 0
         FROM generate_series(1, 1200) AS i`,
      [acmeJob],
    );
  });
  after(() => h.close());

  void test('GET /stats counts the jobs that ended per minute over the last hour, for the caller only', async () => {
    const res = await h.call(h.acme, 'GET', '/stats');
    assert.equal(res.statusCode, 200);
    const body = json<{
      minutes: number;
      bucket_seconds: number;
      client: string | null;
      buckets: { at: string; completed: number; failed: number; broken: number }[];
      totals: { completed: number; failed: number; broken: number };
    }>(res);
    assert.equal(body.minutes, 60);
    assert.equal(body.bucket_seconds, 60);
    assert.equal(body.client, 'acme');
    assert.equal(body.buckets.length, 60);
    assert.deepEqual(body.totals, { completed: 2, failed: 1, broken: 1 });
    const last = body.buckets[59]!;
    assert.equal(last.completed, 2);
    assert.equal(
      body.buckets[56]!.failed,
      1,
      'the failure 3 minutes ago is in the fourth bucket from the end',
    );
    assert.equal(body.buckets[49]!.broken, 1, 'a persisted job counts too');
    assert.ok(new Date(body.buckets[0]!.at) < new Date(last.at));
  });

  void test('GET /stats: admins see every client or one; others may not ask for another client', async () => {
    const all = json<{ totals: { completed: number } }>(await h.call(h.root, 'GET', '/stats'));
    assert.equal(all.totals.completed, 3);
    const other = json<{ totals: { completed: number } }>(await h.call(h.root, 'GET', '/stats?client=other'));
    assert.equal(other.totals.completed, 1);
    const day = json<{ buckets: unknown[]; totals: { completed: number } }>(
      await h.call(h.acme, 'GET', '/stats?minutes=120'),
    );
    assert.equal(day.buckets.length, 120);
    assert.equal(day.totals.completed, 3, 'the job 90 minutes ago is inside two hours');
    assert.equal((await h.call(h.acme, 'GET', '/stats?client=other')).statusCode, 403);
    for (const q of ['minutes=0', 'minutes=1441', 'minutes=x', 'bogus=1']) {
      const res = await h.call(h.acme, 'GET', `/stats?${q}`);
      assert.equal(res.statusCode, 400, q);
      assert.ok(json(res).error, q);
    }
    assert.equal((await h.call(null, 'GET', '/stats')).statusCode, 401);
  });

  void test('GET /stats/job-count counts what GET /jobs lists, scoped and validated the same way', async () => {
    const count = async (as: ApiHarness['acme'], q: string) =>
      json<{ count: number; capped: boolean }>(await h.call(as, 'GET', `/stats/job-count${q}`));
    assert.deepEqual(await count(h.acme, ''), { count: 6, capped: false });
    assert.deepEqual(await count(h.root, ''), { count: 10, capped: false });
    assert.deepEqual(await count(h.root, '?state=queued'), { count: 3, capped: false });
    assert.deepEqual(await count(h.acme, '?state=2&failed=1'), { count: 1, capped: false });
    assert.deepEqual(await count(h.root, '?client=other&limit=1&offset=2&order_by=priority&asc=1'), {
      count: 4,
      capped: false,
    });
    assert.deepEqual(await count(h.acme, '?search=logs'), { count: 1, capped: false });
    const listed = json<unknown[]>(await h.call(h.root, 'GET', '/jobs?state=completed&limit=1000'));
    assert.equal((await count(h.root, '?state=completed')).count, listed.length);
    assert.equal((await h.call(h.acme, 'GET', '/stats/job-count?client=other')).statusCode, 403);
    assert.equal((await h.call(h.acme, 'GET', '/stats/job-count?state=9')).statusCode, 400);
  });

  void test('GET /stats/job-count stops at 10 000 and says it did', async () => {
    await h.store.db.query(
      `INSERT INTO jobs (client, workflow, queue_state, definition)
       SELECT 'bulk', 'demo', 'completed', '{}'::jsonb FROM generate_series(1, 10001)`,
    );
    const res = await h.call(h.root, 'GET', '/stats/job-count?client=bulk');
    assert.deepEqual(json(res), { count: 10_000, capped: true });
    const exact = await h.call(h.root, 'GET', `/stats/job-count?client=bulk&from=2000-01-01T00:00:00`);
    assert.deepEqual(json(exact), { count: 10_000, capped: true });
  });

  void test('GET /logs with offset and limit answers one page and the total in x-total-count', async () => {
    const page = await h.call(h.acme, 'GET', `/logs/${acmeJob}?offset=0&limit=100`);
    assert.equal(page.statusCode, 200);
    const entries = json<{ id: number; message: string; severity: number }[]>(page);
    assert.equal(entries.length, 100);
    assert.equal(page.headers['x-total-count'], '1092', '1 200 minus the 108 hidden DEBUG entries');
    assert.equal(entries[0]!.message, 'line 1');
    const ids = entries.map((e) => e.id);
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
    );

    const all = json<{ id: number }[]>(await h.call(h.acme, 'GET', `/logs/${acmeJob}`));
    assert.equal(all.length, 1092, 'without paging parameters the whole log, as before');
    const later = json<{ id: number }[]>(
      await h.call(h.acme, 'GET', `/logs/${acmeJob}?offset=1090&limit=100`),
    );
    assert.deepEqual(
      later.map((e) => e.id),
      all.slice(1090).map((e) => e.id),
    );

    const shown = await h.call(h.acme, 'GET', `/logs/${acmeJob}?show_all=1&limit=5000`);
    assert.equal(shown.headers['x-total-count'], '1200');
    assert.equal(json<unknown[]>(shown).length, 1200);

    const errors = await h.call(h.acme, 'GET', `/logs/${acmeJob}?severity=ERROR&limit=10`);
    assert.equal(errors.headers['x-total-count'], '12');
    assert.deepEqual(
      json<{ severity: number; message: string }[]>(errors).map((e) => e.message),
      [
        'line 100',
        'line 200',
        'line 300',
        'line 400',
        'line 500',
        'line 600',
        'line 700',
        'line 800',
        'line 900',
        'line 1000',
      ],
    );
    const warn = await h.call(h.acme, 'GET', `/logs/${acmeJob}?severity=2`);
    assert.equal(warn.headers['x-total-count'], '12');
  });

  void test('GET /logs pages: bad values are 400s, another client’s job a 404', async () => {
    for (const q of [
      'limit=0',
      'limit=5001',
      'offset=-1',
      'offset=x',
      'severity=5',
      'severity=LOUD',
      'limit=1&limit=2',
    ]) {
      const res = await h.call(h.acme, 'GET', `/logs/${acmeJob}?${q}`);
      assert.equal(res.statusCode, 400, q);
      assert.ok(json(res).error, q);
    }
    assert.equal((await h.call(h.other, 'GET', `/logs/${acmeJob}?limit=10`)).statusCode, 404);
  });
});
