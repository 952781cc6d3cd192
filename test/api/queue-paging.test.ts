/**
 * The head of the queue on `/dashboard` and the whole queue paged with
 * `GET /jobs?state=0&order_by=position&asc=1` agree, on both stores: `/dashboard` lists the first
 * 100 queued jobs (the lists of waiting jobs are bounded; `started` is not), and the pages list
 * every queued job in admission order (`top_of_queue` first, then priority, then queue time, then
 * id) with consecutive positions from 1.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { forEachStore } from '../helpers/stores.js';
import { createApiHarness, json, type ApiHarness } from './harness.js';

interface Row {
  id: number;
  priority: number;
  top_of_queue: boolean;
  position: number;
  queue_state: string;
}

const JOBS = 130;

forEachStore('queue head on /dashboard, whole queue paged by position', (kind) => {
  let h: ApiHarness;
  const submitted: { id: number; priority: number; top: boolean }[] = [];
  before(async () => {
    h = await createApiHarness(kind);
    const items = Array.from({ length: JOBS }, (_, i) => ({
      job: { workflow: 'greet', priority: 1 + ((i * 7) % 10), top_of_queue: i % 43 === 5 },
      parameters: { content_id: `q${i}` },
    }));
    const res = await h.call(h.acme, 'POST', '/jobs/batch', items);
    assert.equal(res.statusCode, 200, res.body);
    const reply = json<{ results: { id: number }[] }>(res).results;
    reply.forEach((r, i) =>
      submitted.push({ id: r.id, priority: items[i]!.job.priority, top: items[i]!.job.top_of_queue }),
    );
  });
  after(async () => {
    await h?.close();
  });

  const get = async (url: string): Promise<Row[]> => {
    const res = await h.call(h.acme, 'GET', url);
    assert.equal(res.statusCode, 200, res.body);
    return json<Row[]>(res);
  };

  test('pages of order_by=position follow admission order with consecutive positions', async () => {
    // Submitted in one batch: the same queue time, so the order is top, priority, id.
    const expected = [...submitted]
      .sort((a, b) => Number(b.top) - Number(a.top) || a.priority - b.priority || a.id - b.id)
      .map((j) => j.id);
    const page1 = await get('/jobs?state=0&order_by=position&asc=1&limit=50');
    const page2 = await get('/jobs?state=0&order_by=position&asc=1&limit=50&offset=50');
    const page3 = await get('/jobs?state=0&order_by=position&asc=1&limit=50&offset=100');
    const all = [...page1, ...page2, ...page3];
    assert.deepEqual(
      all.map((r) => r.id),
      expected,
    );
    assert.deepEqual(
      all.map((r) => r.position),
      expected.map((_, i) => i + 1),
    );
    const last = await get('/jobs?state=0&order_by=position&limit=3');
    assert.deepEqual(
      last.map((r) => r.position),
      [JOBS, JOBS - 1, JOBS - 2],
      'without asc, the last positions first',
    );
    const byId = await get('/jobs?state=2&order_by=position&asc=1');
    assert.deepEqual(byId, [], 'another state is listed by id (none completed here)');
  });

  test('/dashboard lists the first 100 queued jobs, the same as the first page', async () => {
    const res = await h.call(h.acme, 'GET', '/dashboard');
    assert.equal(res.statusCode, 200, res.body);
    const d = json<{ queued: Row[] }>(res);
    const head = await get('/jobs?state=0&order_by=position&asc=1&limit=100');
    assert.equal(d.queued.length, 100);
    assert.deepEqual(
      d.queued.map((r) => [r.id, r.position]),
      head.map((r) => [r.id, r.position]),
    );
  });

  test('order_by=position is in the 400 of a bad order_by', async () => {
    const res = await h.call(h.acme, 'GET', '/jobs?order_by=rank');
    assert.equal(res.statusCode, 400);
    assert.match(res.body, /position/);
  });
});
