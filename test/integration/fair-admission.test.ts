/**
 * Fair share, client quotas, job concurrency keys and per-client retry settings on both stores,
 * with a real engine (controller + worker) in-process.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, it } from 'node:test';
import { createClient } from '../../src/engine/clients/clients.js';
import { getJob, patchJob } from '../../src/engine/jobs/service.js';
import { postSetting } from '../../src/engine/settings.js';
import { fitConcurrencyKey, MAX_CONCURRENCY_KEY_LENGTH } from '../../src/workflows/task-concurrency.js';
import { startTestEngine, submitAs, TEST_CLIENT, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';
import { FAIR_WORKFLOWS, sampleHolders } from './fair-helpers.js';

const admin = { client: TEST_CLIENT, admin: true };

forEachStore('runtime: fair share, quotas, concurrency keys', (kind) => {
  let store: TestStore;
  let te: TestEngine;

  before(async () => {
    store = await createTestStore(kind);
    for (const name of ['light', 'heavy', 'capped', 'open', 'strict', 'lenient'])
      await createClient(store.db, { name });
    te = await startTestEngine(store, { concurrency: 8, workflows: FAIR_WORKFLOWS, start: false });
  });
  afterEach(async () => {
    // Break whatever is still live so the next test starts with free slots.
    const { rows } = await store.db.query<{ id: number }>(
      `SELECT id FROM jobs WHERE queue_state IN ('queued', 'started', 'paused', 'scheduled', 'pending')`,
    );
    for (const r of rows)
      await patchJob(te.engine.ctx, admin, String(r.id), { queue_state: 'broken' }).catch(() => undefined);
  });
  after(async () => {
    await te?.stop();
    await store?.dispose();
  });

  const allDone = (ids: number[]) => async () => {
    const { rows } = await store.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM jobs WHERE id = ANY($1::bigint[]) AND queue_state = 'completed'`,
      [ids],
    );
    return rows[0]!.n === ids.length;
  };

  it('weights 1 and 3 over a shared backlog: the first 200 admissions split 1:3 (within 10 %)', async () => {
    await te.setSetting('max_jobs', 4);
    await postSetting(te.engine.ctx, { name: 'weight', setting: 3, client: 'heavy' });
    // The backlog is in place before admission runs: 100 light and 250 heavy jobs, interleaved.
    for (let i = 0; i < 250; i++) {
      if (i < 100) await submitAs(te.engine, 'quick', {}, {}, 'light');
      await submitAs(te.engine, 'quick', {}, {}, 'heavy');
    }
    await te.engine.start();
    await waitFor(
      async () =>
        (
          await store.db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM jobs WHERE started_at IS NOT NULL`,
          )
        ).rows[0]!.n >= 200,
      { timeoutMs: 120_000, intervalMs: 100, what: '200 admissions' },
    );
    const { rows } = await store.db.query<{ client: string }>(
      `SELECT client FROM jobs WHERE started_at IS NOT NULL ORDER BY started_at, id LIMIT 200`,
    );
    const light = rows.filter((r) => r.client === 'light').length;
    // 1:3 of 200 is 50 light; within ±10 % of the ratio is 45 … 55.
    assert.ok(light >= 45 && light <= 55, `light got ${light} of the first 200 admissions (expected 50 ± 5)`);
  });

  it('never lets a client hold more than its own max_jobs, and gives the rest to the others', async () => {
    await te.setSetting('max_jobs', 6);
    await postSetting(te.engine.ctx, { name: 'max_jobs', setting: 2, client: 'capped' });
    const ids: number[] = [];
    for (let i = 0; i < 12; i++) {
      ids.push(await submitAs(te.engine, 'hold', { seconds: 0.2 }, {}, 'capped'));
      // Held long enough that open's jobs overlap however slowly the 24 submissions go.
      ids.push(await submitAs(te.engine, 'hold', { seconds: 1 }, {}, 'open'));
    }
    const { max, samples } = await sampleHolders(store.db, 'j.client', allDone(ids), {
      intervalMs: 50,
      timeoutMs: 60_000,
    });
    assert.ok(
      (max.get('capped') ?? 0) <= 2,
      `capped held ${max.get('capped')} slots at once (${samples} samples)`,
    );
    assert.equal(max.get('capped'), 2, 'capped used its quota');
    assert.ok(
      (max.get('open') ?? 0) >= 3,
      `open held at most ${max.get('open')} slots: the others were not given out`,
    );
  });

  it('a concurrency key with limit 1 is never held by two jobs; other keys run beside it', async () => {
    await te.setSetting('max_jobs', 6);
    const ids: number[] = [];
    for (let i = 0; i < 10; i++) {
      ids.push(await te.submit('keyed', { content_id: 'same', seconds: 0.1 }));
      ids.push(await te.submit('keyed', { content_id: `other-${i}`, seconds: 0.1 }));
    }
    const { max, samples } = await sampleHolders(store.db, 'j.concurrency_key', allDone(ids), {
      intervalMs: 50,
      timeoutMs: 60_000,
    });
    assert.equal(
      max.get('content-same'),
      1,
      `content-same held ${max.get('content-same')} times at once (${samples} samples)`,
    );
    const { rows } = await store.db.query<{ concurrency_key: string; concurrency_limit: number }>(
      `SELECT DISTINCT concurrency_key, concurrency_limit FROM jobs WHERE id = ANY($1::bigint[]) ORDER BY 1`,
      [ids],
    );
    assert.equal(rows.length, 11, 'the key is rendered per job at submission');
    assert.ok(rows.every((r) => r.concurrency_limit === 1));
  });

  it('a job key that renders empty is the shared key "" (the limit still holds); a long one is fitted like a task key', async () => {
    await te.setSetting('max_jobs', 6);
    const first = await te.submit('keyed_whole', { seconds: 30 });
    await te.waitForState(first, 'started');
    const second = await te.submit('keyed_whole', { seconds: 30 });
    const w = await waitFor(
      async () => {
        const job = await getJob(te.engine.ctx, admin, String(second));
        return job.waiting?.reason === 'concurrency_key' ? job.waiting : null;
      },
      { what: 'the second job waiting for the empty key' },
    );
    assert.match(w.detail, new RegExp(`concurrency key "" is held by 1 job \\(limit 1\\): ${first}`));
    assert.equal((await te.job(second)).queue_state, 'queued', 'the empty key does not lift the limit');
    const long = 'ключ-😀'.repeat(100);
    const third = await te.submit('keyed_whole', { content_id: long, seconds: 0 });
    const { rows } = await store.db.query<{ concurrency_key: string }>(
      'SELECT concurrency_key FROM jobs WHERE id = $1',
      [third],
    );
    assert.equal(rows[0]!.concurrency_key, fitConcurrencyKey(long));
    assert.ok(rows[0]!.concurrency_key.length <= MAX_CONCURRENCY_KEY_LENGTH);
  });

  it("a client's own retry_limit and retry_delay decide its tasks' retries", async () => {
    await te.setSetting('retry_limit', 2);
    await te.setSetting('retry_delay', 0);
    await postSetting(te.engine.ctx, { name: 'retry_limit', setting: 0, client: 'strict' });
    const strict = await submitAs(te.engine, 'flaky', {}, {}, 'strict');
    const lenient = await submitAs(te.engine, 'flaky', {}, {}, 'lenient');
    await te.waitForState(strict, 'completed', 30_000);
    await te.waitForState(lenient, 'completed', 30_000);
    assert.equal((await te.attempts(strict, 'boom')).length, 1, 'strict: no retry (its own retry_limit 0)');
    assert.equal((await te.attempts(lenient, 'boom')).length, 3, 'lenient: the global retry_limit 2');
  });
});
