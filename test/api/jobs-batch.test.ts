/**
 * `POST /jobs/batch` through HTTP (`app.inject()`) on both stores: each item answered as `POST /job`
 * would answer its body (same status, same message), the good items of a mixed batch written whole
 * and nothing of a bad item written; idempotency keys per item and per client; the limits of the
 * list and of the body; non-admin scoping; and one wake-up of admission and of the scheduler per
 * batch.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CHANNELS } from '../../src/engine/signals.js';
import { forEachStore } from '../helpers/stores.js';
import { createApiHarness, json, type ApiHarness, type TestClient } from './harness.js';

interface ItemResult {
  index: number;
  id?: number;
  result?: 'accepted';
  status?: number;
  error?: string;
}
interface BatchReply {
  accepted: number;
  refused: number;
  results: ItemResult[];
}

const greet = (content_id: string, job: Record<string, unknown> = {}) => ({
  job: { workflow: 'greet', ...job },
  parameters: { content_id },
});

forEachStore('api: POST /jobs/batch', (kind) => {
  let h: ApiHarness;
  before(async () => {
    h = await createApiHarness(kind);
  });
  after(async () => {
    await h?.close();
  });

  const batch = (as: TestClient | null, items: unknown) => h.call(as, 'POST', '/jobs/batch', items);
  const count = async (sql: string, params: unknown[] = []): Promise<number> =>
    Number((await h.store.db.query<{ n: number }>(sql, params)).rows[0]!.n);
  const totals = async () => ({
    jobs: await count('SELECT count(*)::int AS n FROM jobs'),
    tasks: await count('SELECT count(*)::int AS n FROM tasks'),
    logs: await count('SELECT count(*)::int AS n FROM logs'),
    search: await count('SELECT count(*)::int AS n FROM job_search'),
    keys: await count('SELECT count(*)::int AS n FROM job_idempotency_keys'),
  });
  /** Rows anywhere that mention `marker` (jobs, their search rows, logs). */
  const traces = async (marker: string) =>
    (await count('SELECT count(*)::int AS n FROM jobs WHERE parameters::text LIKE $1', [`%${marker}%`])) +
    (await count('SELECT count(*)::int AS n FROM job_search WHERE parameters_text LIKE $1', [
      `%${marker}%`,
    ])) +
    (await count('SELECT count(*)::int AS n FROM logs WHERE message LIKE $1', [`%${marker}%`]));

  void test('a mixed batch: each item answered as POST /job answers it, good ones written whole, bad ones not at all', async () => {
    const items: unknown[] = [
      greet('good-0'),
      { job: { workflow: 'nope' }, parameters: { content_id: 'bad-1' } },
      { job: { workflow: 'greet' }, parameters: { seconds: 'bad-2' } },
      greet('good-3', { priority: '2', run_at: '2099-01-01T00:00:00.000Z' }),
      'bad-4',
      greet('bad-5', { priority: 11 }),
      { client: 'other', ...greet('bad-6') },
      greet('bad-7', { colour: 'red' }),
      greet('good-8', { persist: true, top_of_queue: true }),
      greet('bad-9', { run_at: 'yesterday' }),
      greet('bad-10', { semaphore_url: 'ftp://x' }),
      {
        ...greet('bad-11'),
        parameters: { content_id: 'bad-11', rest_endpoints: ['http://169.254.169.254/x'] },
      },
    ];
    const before = await totals();
    const res = await batch(h.acme, items);
    assert.equal(res.statusCode, 200, res.body);
    const reply = json<BatchReply>(res);
    assert.equal(reply.results.length, items.length);
    assert.deepEqual(
      reply.results.map((r) => r.index),
      items.map((_x, i) => i),
    );
    const good = [0, 3, 8];
    assert.equal(reply.accepted, good.length);
    assert.equal(reply.refused, items.length - good.length);
    const after = await totals();
    assert.deepEqual(
      {
        jobs: after.jobs - before.jobs,
        tasks: after.tasks - before.tasks,
        search: after.search - before.search,
      },
      { jobs: 3, tasks: 6, search: 3 },
    );
    // Ids in the order of the items.
    const ids = good.map((i) => reply.results[i]!.id!);
    assert.deepEqual(
      [...ids].sort((a, b) => a - b),
      ids,
    );
    for (const i of good) {
      const r = reply.results[i]!;
      assert.deepEqual(Object.keys(r).sort(), ['id', 'index', 'result']);
      const job = json<{ client: string; parameters: { content_id: string }; tasks: unknown[] }>(
        await h.call(h.acme, 'GET', `/jobs/${r.id}`),
      );
      assert.equal(job.client, 'acme');
      assert.equal(job.parameters.content_id, `good-${i}`);
      assert.equal(job.tasks.length, 2);
      const logs = json<{ message: string }[]>(await h.call(h.acme, 'GET', `/logs/${r.id}`));
      assert.match(logs[0]!.message, /"path":"POST \/jobs\/batch"/);
    }
    const g3 = json<{ priority: number; queue_state: string }>(
      await h.call(h.acme, 'GET', `/jobs/${ids[1]}`),
    );
    assert.deepEqual([g3.priority, g3.queue_state], [2, 'scheduled']);
    const g8 = json<{ persist: boolean; top_of_queue: boolean }>(
      await h.call(h.acme, 'GET', `/jobs/${ids[2]}`),
    );
    assert.deepEqual([g8.persist, g8.top_of_queue], [true, true]);
    // Each refused item: exactly what POST /job answers for the same body; nothing of it stored.
    for (const [i, item] of items.entries()) {
      if (good.includes(i)) continue;
      const r = reply.results[i]!;
      assert.equal(r.result, undefined);
      assert.equal(await traces(`bad-${i}`), 0, `nothing of item ${i} was written`);
      const single = await h.call(h.acme, 'POST', '/job', JSON.stringify(item), {
        headers: { 'content-type': 'application/json' },
      });
      assert.ok(single.statusCode >= 400, `POST /job refuses item ${i} too`);
      assert.deepEqual(
        { status: r.status, error: r.error },
        { status: single.statusCode, error: json<{ error: string }>(single).error },
        `item ${i}`,
      );
    }
  });

  void test('idempotency keys act per item and per client, inside a batch and across requests', async () => {
    const first = await h.call(h.acme, 'POST', '/job', greet('k', { idempotency_key: 'key-a' }));
    const idA = json<{ id: number }>(first).id;
    const before = await totals();
    const reply = json<BatchReply>(
      await batch(h.acme, [
        greet('k', { idempotency_key: 'key-a' }), // POST /job's key, same content
        greet('k', { idempotency_key: 'key-b' }), // new
        greet('k', { idempotency_key: 'key-b', priority: 5 }), // same content said another way
        greet('other-content', { idempotency_key: 'key-b' }), // 409
        greet('k', { idempotency_key: 'key-a', priority: 1 }), // 409 on the POST /job key
        greet('k', { idempotency_key: '' }), // 400
      ]),
    );
    const [a, b, b2, b3, a2, empty] = reply.results;
    assert.deepEqual([a!.id, a!.result], [idA, 'accepted']);
    assert.equal(b!.result, 'accepted');
    assert.deepEqual([b2!.id, b2!.result], [b!.id, 'accepted']);
    assert.deepEqual([b3!.status, b3!.id], [409, b!.id]);
    assert.match(b3!.error!, /key-b.*already used for job/);
    assert.deepEqual([a2!.status, a2!.id], [409, idA]);
    assert.equal(empty!.status, 400);
    assert.match(empty!.error!, /job\.idempotency_key must be/);
    const after = await totals();
    assert.deepEqual([after.jobs - before.jobs, after.keys - before.keys], [1, 1], 'only key-b made a job');
    // Again, in a second batch: the same ids, nothing new; another client's key-b is its own.
    const again = json<BatchReply>(await batch(h.acme, [greet('k', { idempotency_key: 'key-b' })]));
    assert.equal(again.results[0]!.id, b!.id);
    const theirs = json<BatchReply>(await batch(h.other, [greet('k', { idempotency_key: 'key-b' })]));
    assert.equal(theirs.results[0]!.result, 'accepted');
    assert.notEqual(theirs.results[0]!.id, b!.id);
    assert.equal((await totals()).jobs, after.jobs + 1);
  });

  void test('the list: not an array, empty, over 1000 items, malformed or huge is a 4xx JSON naming what is accepted', async () => {
    const before = await totals();
    for (const [body, message] of [
      [greet('x'), /must be a JSON array of 1 to 1000 submissions.*got an object/],
      [[], /got an empty array/],
      [
        Array.from({ length: 1001 }, (_x, i) => greet(`over-${i}`)),
        /got 1001 submissions; split them into batches of at most 1000/,
      ],
      ['"text"', /must be a JSON array/],
    ] as const) {
      const res = await h.call(
        h.acme,
        'POST',
        '/jobs/batch',
        typeof body === 'string' ? body : JSON.stringify(body),
        {
          headers: { 'content-type': 'application/json' },
        },
      );
      assert.equal(res.statusCode, 400, res.body);
      assert.match(json<{ error: string }>(res).error, message);
    }
    const malformed = await h.call(h.acme, 'POST', '/jobs/batch', '[{"job": ', {
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(malformed.statusCode, 400);
    assert.match(json<{ error: string }>(malformed).error, /not valid JSON/);
    const dup = await h.call(h.acme, 'POST', '/jobs/batch', '[{"job":{"workflow":"greet"},"job":{}}]', {
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(dup.statusCode, 400);
    assert.match(json<{ error: string }>(dup).error, /repeats the key "job" at body\[0\]\.job/);
    const text = await h.call(h.acme, 'POST', '/jobs/batch', '[]', {
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal(text.statusCode, 415);
    const huge = await h.call(
      h.acme,
      'POST',
      '/jobs/batch',
      JSON.stringify([greet('x'.repeat(17 * 1024 * 1024))]),
      { headers: { 'content-type': 'application/json' } },
    );
    assert.equal(huge.statusCode, 413);
    assert.match(
      json<{ error: string }>(huge).error,
      /larger than 16777216 bytes \(16 MiB\).*POST \/jobs\/batch accepts up to 16777216 bytes/,
    );
    assert.equal(
      json<{ error: string }>(await batch(null, [greet('x')])).error.includes('missing credentials'),
      true,
    );
    assert.deepEqual(await totals(), before, 'nothing was written');
  });

  void test('an item over 1 MiB is refused as POST /job refuses it; the others of its batch are written', async () => {
    const big = greet(`big-${'x'.repeat(1024 * 1024)}`);
    const reply = json<BatchReply>(await batch(h.acme, [greet('small-0'), big, greet('small-2')]));
    assert.deepEqual(
      reply.results.map((r) => r.status ?? r.result),
      ['accepted', 413, 'accepted'],
    );
    assert.match(reply.results[1]!.error!, /item 1 is larger than 1048576 bytes/);
    assert.equal(await traces('big-x'), 0);
    const single = await h.call(h.acme, 'POST', '/job', big);
    assert.equal(single.statusCode, 413);
  });

  void test('scoping: items run as the caller, a workflow of another client is unknown, another client sees none of them', async () => {
    const mine = json<BatchReply>(
      await batch(h.acme, [{ job: { workflow: 'private' } }, { client: 'acme', ...greet('scoped') }]),
    );
    assert.deepEqual(
      mine.results.map((r) => r.result),
      ['accepted', 'accepted'],
    );
    const theirs = json<BatchReply>(await batch(h.other, [{ job: { workflow: 'private' } }, greet('o')]));
    assert.equal(theirs.results[0]!.status, 400);
    assert.match(theirs.results[0]!.error!, /workflow/);
    assert.equal(theirs.results[1]!.result, 'accepted');
    for (const r of mine.results) {
      assert.equal((await h.call(h.other, 'GET', `/jobs/${r.id}`)).statusCode, 404);
      assert.equal((await h.call(h.root, 'GET', `/jobs/${r.id}`)).statusCode, 200);
    }
    // An admin submits as itself: a body client naming another client is refused per item.
    const admin = json<BatchReply>(
      await batch(h.root, [{ client: 'acme', ...greet('as-acme') }, greet('root')]),
    );
    assert.equal(admin.results[0]!.status, 400);
    assert.match(admin.results[0]!.error!, /does not match the client header/);
    const job = json<{ client: string }>(await h.call(h.root, 'GET', `/jobs/${admin.results[1]!.id}`));
    assert.equal(job.client, 'root');
    assert.equal(await traces('as-acme'), 0);
  });

  void test('one wake-up of admission and one of the scheduler per batch', async () => {
    const got: Record<string, string[]> = { [CHANNELS.admission]: [], [CHANNELS.scheduler]: [] };
    const offs = await Promise.all(
      Object.keys(got).map((ch) => h.store.db.listen(ch, (p) => got[ch]!.push(p))),
    );
    // A marker notification after the batch: once it arrives, the batch's have too.
    const items = [
      ...Array.from({ length: 40 }, (_x, i) => greet(`wake-${i}`)),
      ...Array.from({ length: 20 }, (_x, i) => greet(`later-${i}`, { run_at: '2099-01-01T00:00:00Z' })),
    ];
    const reply = json<BatchReply>(await batch(h.acme, items));
    assert.equal(reply.accepted, 60);
    await h.store.db.query(`SELECT pg_notify($1, 'marker')`, [CHANNELS.scheduler]);
    const deadline = Date.now() + 5000;
    while (!got[CHANNELS.scheduler]!.includes('marker') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    await Promise.all(offs.map((off) => off()));
    assert.deepEqual(got[CHANNELS.admission], ['job_queued']);
    assert.deepEqual(got[CHANNELS.scheduler], ['0', 'marker']);
  });
});
