/**
 * `job.idempotency_key` on `POST /job`, through the API (`app.inject()`) on both stores: one key
 * makes one job however many submissions of it arrive at once; the key is per client; the same
 * key with other content is a 409 naming the job; after the retention window (driven by a
 * ManualClock) the key makes a new job; bad keys are a 400 naming the field. The batch path is
 * also called directly, to pin down duplicates inside one batch.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import { buildServer } from '../../src/api/build-server.js';
import { createClient } from '../../src/engine/clients/clients.js';
import { ManualClock } from '../../src/engine/clock.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import {
  insertJobs,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  type JobToInsert,
  readSubmission,
  submissionFingerprint,
} from '../../src/engine/jobs/submit.js';
import { testConfig, writeSettings } from '../helpers/engine.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { forEachStore, createTestStore, type TestStore } from '../helpers/stores.js';

const DAY_MS = 86_400_000;

forEachStore('API idempotent submission', (kind) => {
  let store: TestStore;
  let engine: Engine;
  let app: FastifyInstance;
  const clock = new ManualClock(Date.UTC(2030, 0, 1));
  const headers: Record<string, Record<string, string>> = {};
  const catalog = createFixtureCatalog({
    pair: {
      parameters: { type: 'object', properties: { content_id: { type: 'string' }, n: { type: 'number' } } },
      tasks: [
        { name: 'one', run: 'sleep', with: { seconds: 0 } },
        { name: 'two', run: 'sleep', with: { seconds: 0 } },
      ],
    },
  });

  before(async () => {
    store = await createTestStore(kind);
    engine = await createEngine(testConfig({ databaseUrl: store.databaseUrl, roles: ['api'] }), {
      db: store.db,
      catalog,
      clock,
      logger: pino({ level: 'silent' }),
    });
    app = buildServer(engine.ctx);
    await app.ready();
    for (const name of ['acme', 'other']) {
      const c = await createClient(store.db, { name }, clock);
      headers[name] = { client: name, 'api-key': c.api_key };
    }
  });
  after(async () => {
    await app?.close();
    await engine?.stop();
    await store?.dispose();
  });

  const submit = (client: string, job: Record<string, unknown>, parameters: unknown = {}) =>
    app.inject({
      method: 'POST',
      url: '/job',
      headers: headers[client],
      payload: { job: { workflow: 'pair', ...job }, parameters },
    });
  const body = (res: LightMyRequestResponse) =>
    JSON.parse(res.body) as { id?: number; result?: string; error?: string };
  const count = async (sql: string, params: unknown[] = []) =>
    Number((await store.db.query<{ n: number }>(sql, params)).rows[0]!.n);
  const jobsWithKey = (client: string, key: string) =>
    count('SELECT count(*)::int AS n FROM jobs WHERE client = $1 AND idempotency_key = $2', [client, key]);
  const totals = async () => ({
    jobs: await count('SELECT count(*)::int AS n FROM jobs'),
    tasks: await count('SELECT count(*)::int AS n FROM tasks'),
    logs: await count('SELECT count(*)::int AS n FROM logs'),
  });

  void test('50 concurrent submissions with one key create one job and all answer its id', async () => {
    const before = await totals();
    const replies = await Promise.all(
      Array.from({ length: 50 }, () =>
        submit('acme', { idempotency_key: 'order-50' }, { content_id: 'c50' }),
      ),
    );
    for (const r of replies) assert.equal(r.statusCode, 200, r.body);
    const ids = new Set(replies.map((r) => body(r).id));
    assert.equal(ids.size, 1, `one id for all: ${[...ids].join(', ')}`);
    assert.ok(replies.every((r) => body(r).result === 'accepted'));
    assert.equal(await jobsWithKey('acme', 'order-50'), 1);
    // Nothing but that one job was written: its row, its two tasks, its two log lines.
    assert.deepEqual(await totals(), {
      jobs: before.jobs + 1,
      tasks: before.tasks + 2,
      logs: before.logs + 2,
    });
    const [id] = [...ids];
    const job = JSON.parse(
      (await app.inject({ method: 'GET', url: `/jobs/${id}`, headers: headers.acme })).body,
    ) as { idempotency_key: string | null; queue_state: string };
    assert.equal(job.idempotency_key, 'order-50');
    assert.equal(job.queue_state, 'queued');
  });

  void test('a repeat with the same content written differently answers the same job', async () => {
    const first = body(
      await submit(
        'acme',
        { idempotency_key: 'same', priority: 2, run_at: '2030-06-01T00:00:00.000Z' },
        { content_id: 'x', n: 1 },
      ),
    );
    const again = await submit(
      'acme',
      { idempotency_key: 'same', priority: '2', run_at: '2030-06-01T00:00:00.000' },
      { n: 1, content_id: 'x' },
    );
    assert.equal(again.statusCode, 200, again.body);
    assert.deepEqual(body(again), { id: first.id, result: 'accepted' });
  });

  void test('the key is per client: another client with the same key gets its own job', async () => {
    const a = body(await submit('acme', { idempotency_key: 'shared' }, { content_id: 's' }));
    const b = body(await submit('other', { idempotency_key: 'shared' }, { content_id: 's' }));
    assert.equal(typeof a.id, 'number');
    assert.equal(typeof b.id, 'number');
    assert.notEqual(a.id, b.id);
    assert.equal(await jobsWithKey('acme', 'shared'), 1);
    assert.equal(await jobsWithKey('other', 'shared'), 1);
    // And each client's repeat answers its own job.
    assert.equal(body(await submit('other', { idempotency_key: 'shared' }, { content_id: 's' })).id, b.id);
  });

  void test('the same key with different content is a 409 naming the first job, and writes nothing', async () => {
    const first = body(await submit('acme', { idempotency_key: 'k-409' }, { content_id: 'one' }));
    for (const [job, parameters] of [
      [{ idempotency_key: 'k-409' }, { content_id: 'two' }],
      [{ idempotency_key: 'k-409', priority: 1 }, { content_id: 'one' }],
      [{ idempotency_key: 'k-409', persist: true }, { content_id: 'one' }],
    ] as const) {
      const before = await totals();
      const res = await submit('acme', job, parameters);
      assert.equal(res.statusCode, 409, res.body);
      const b = body(res);
      assert.equal(b.id, first.id);
      assert.match(
        b.error!,
        new RegExp(`job.idempotency_key "k-409" was already used for job ${first.id} with different content`),
      );
      assert.deepEqual(await totals(), before, 'nothing was written');
    }
  });

  void test('after the retention window (24 h by default, on the engine clock) the key makes a new job', async () => {
    const first = body(await submit('acme', { idempotency_key: 'daily' }, { content_id: 'd' })).id;
    await clock.advance(DAY_MS - 1_000);
    assert.equal(body(await submit('acme', { idempotency_key: 'daily' }, { content_id: 'd' })).id, first);
    await clock.advance(1_000);
    const second = body(await submit('acme', { idempotency_key: 'daily' }, { content_id: 'd' })).id;
    assert.equal(typeof second, 'number');
    assert.notEqual(second, first);
    // The key now answers the new job, for its own window; other content is welcome after expiry.
    assert.equal(body(await submit('acme', { idempotency_key: 'daily' }, { content_id: 'd' })).id, second);
    assert.equal(await jobsWithKey('acme', 'daily'), 2);
    await clock.advance(DAY_MS);
    const third = await submit('acme', { idempotency_key: 'daily' }, { content_id: 'changed' });
    assert.equal(third.statusCode, 200, third.body);
    assert.notEqual(body(third).id, second);
  });

  void test('the idempotency_retention setting changes the window at once', async () => {
    await writeSettings(store.db, { idempotency_retention: 60 });
    try {
      const first = body(await submit('acme', { idempotency_key: 'minute' }, { content_id: 'm' })).id;
      await clock.advance(59_000);
      assert.equal(body(await submit('acme', { idempotency_key: 'minute' }, { content_id: 'm' })).id, first);
      await clock.advance(1_000);
      assert.notEqual(
        body(await submit('acme', { idempotency_key: 'minute' }, { content_id: 'm' })).id,
        first,
      );
    } finally {
      await store.db.query(`DELETE FROM settings WHERE name = 'idempotency_retention'`);
    }
  });

  void test('a bad idempotency_key is a 400 naming job.idempotency_key, and writes nothing', async () => {
    for (const key of [
      '',
      5,
      true,
      ['a'],
      { a: 1 },
      'x'.repeat(MAX_IDEMPOTENCY_KEY_LENGTH + 1),
      'tab\there',
      'del\u007fhere',
      // C1 control characters (U+0080 to U+009F) are control characters too: NEL, CSI.
      'nel\u0085here',
      'csi\u009bhere',
      '\ud800',
    ]) {
      const before = await totals();
      const res = await submit('acme', { idempotency_key: key }, { content_id: 'bad' });
      assert.equal(res.statusCode, 400, `${JSON.stringify(key)}: ${res.body}`);
      assert.match(
        body(res).error!,
        /job\.idempotency_key (must be a string of 1 to 255 characters|contains a NUL character or an unpaired surrogate)/,
      );
      assert.deepEqual(await totals(), before);
    }
    // 255 characters (counted as characters, not UTF-16 units) and null (absent) are accepted.
    const long = '😀'.repeat(MAX_IDEMPOTENCY_KEY_LENGTH);
    assert.equal((await submit('acme', { idempotency_key: long }, { content_id: 'ok' })).statusCode, 200);
    const none = await submit('acme', { idempotency_key: null }, { content_id: 'ok' });
    assert.equal(none.statusCode, 200);
    const row = await store.db.query<{ k: string | null }>(
      'SELECT idempotency_key AS k FROM jobs WHERE id = $1',
      [body(none).id],
    );
    assert.equal(row.rows[0]!.k, null);
  });

  void describe('the batch path (one statement for many submissions)', () => {
    const item = (client: string, key: string | null, parameters: Record<string, unknown>): JobToInsert => {
      const input = readSubmission(
        { client, admin: false },
        { job: { workflow: 'pair', ...(key === null ? {} : { idempotency_key: key }) }, parameters },
      );
      const resolved = catalog.resolve(client, 'pair')!;
      return {
        job: {
          client,
          workflow: 'pair',
          priority: input.priority,
          persist: false,
          topOfQueue: false,
          runAt: clock.now(),
          semaphoreUrl: null,
          parameters,
          resolvedParameters: parameters,
          definition: resolved.definition,
          definitionSource: 'common',
          rerunOf: null,
          idempotency: key === null ? null : { key, fingerprint: submissionFingerprint(input) },
        },
        now: clock.now(),
        firstLog: 'test',
      };
    };

    void test('answers each duplicate inside one batch with the first one’s id, and writes one job per key', async () => {
      const out = await insertJobs(store.db, [
        item('acme', 'b1', { content_id: 'a' }),
        item('acme', null, { content_id: 'plain' }),
        item('acme', 'b1', { content_id: 'a' }),
        item('other', 'b1', { content_id: 'a' }),
        item('acme', 'b2', { content_id: 'b' }),
        item('acme', 'b1', { content_id: 'different' }),
        item('acme', null, { content_id: 'plain' }),
      ]);
      assert.equal(out.length, 7);
      const [a, plain, aAgain, otherA, b, aDifferent, plain2] = out;
      assert.ok(a!.created && plain!.created && otherA!.created && b!.created && plain2!.created);
      assert.deepEqual(aAgain, { created: false, id: a!.id, sameContent: true });
      assert.deepEqual(aDifferent, { created: false, id: a!.id, sameContent: false });
      assert.equal(new Set([a!.id, plain!.id, otherA!.id, b!.id, plain2!.id]).size, 5);
      assert.equal(await jobsWithKey('acme', 'b1'), 1);
      assert.equal(await jobsWithKey('other', 'b1'), 1);
      // Each created job has its two tasks and its two log lines; nothing for the duplicates.
      const ids = [a!.id, plain!.id, otherA!.id, b!.id, plain2!.id];
      assert.equal(
        await count('SELECT count(*)::int AS n FROM tasks WHERE job_id = ANY($1::bigint[])', [ids]),
        10,
      );
      assert.equal(
        await count('SELECT count(*)::int AS n FROM logs WHERE job_id = ANY($1::bigint[])', [ids]),
        10,
      );

      // A later batch with a key already taken answers the holder.
      const [later] = await insertJobs(store.db, [item('acme', 'b2', { content_id: 'b' })]);
      assert.deepEqual(later, { created: false, id: b!.id, sameContent: true });
    });
  });
});
