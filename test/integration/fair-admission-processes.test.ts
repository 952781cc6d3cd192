/**
 * Fair share, client quotas and job concurrency keys with two engine processes admitting and
 * claiming at once on one PostgreSQL database (admission is serialised by its advisory lock).
 * PostgreSQL only (an embedded database belongs to one process).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { createClient } from '../../src/engine/clients/clients.js';
import type { Engine } from '../../src/engine/engine.js';
import { postSetting } from '../../src/engine/settings.js';
import { createIdleEngine, engineProcessSpawner, submitAs, writeSettings } from '../helpers/engine.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';
import { FAIR_WORKFLOWS, sampleHolders } from './fair-helpers.js';

const hasPostgres = storeKinds().includes('postgres');

void describe(
  'runtime: fair admission with two engine processes [postgres]',
  { skip: hasPostgres ? false : 'needs TEST_DATABASE_URL' },
  () => {
    let store: TestStore;
    let local: Engine;
    const catalog = createFixtureCatalog(FAIR_WORKFLOWS);
    const { spawn, killAll } = engineProcessSpawner(() => ({
      databaseUrl: store.databaseUrl!,
      workflowsDir: catalog.dir,
      concurrency: 8,
    }));

    before(async () => {
      store = await createTestStore('postgres');
      for (const name of ['light', 'heavy', 'capped', 'open']) await createClient(store.db, { name });
      // Not started: submits jobs and writes settings, as an API node would.
      local = await createIdleEngine(store, catalog);
    });
    afterEach(async () => {
      await killAll();
      await store.db.query(`UPDATE jobs SET queue_state = 'broken' WHERE queue_state <> 'completed'`);
      await store.db.query('DELETE FROM client_settings');
    });
    after(async () => {
      await killAll();
      await store?.dispose();
    });

    const count = async (sql: string, params: unknown[] = []): Promise<number> =>
      (await store.db.query<{ n: number }>(sql, params)).rows[0]!.n;
    const allDone = (ids: number[]) => async () =>
      (await count(
        `SELECT count(*)::int AS n FROM jobs WHERE id = ANY($1::bigint[]) AND queue_state = 'completed'`,
        [ids],
      )) === ids.length;

    it('weights 1 and 3 over a shared backlog: the first 200 admissions by either engine split 1:3 (within 14 %)', async () => {
      await writeSettings(store.db, { max_jobs: 4 });
      await postSetting(local.ctx, { name: 'weight', setting: 3, client: 'heavy' });
      const ids: number[] = [];
      for (let i = 0; i < 250; i++) {
        if (i < 100) ids.push(await submitAs(local, 'quick', {}, {}, 'light'));
        ids.push(await submitAs(local, 'quick', {}, {}, 'heavy'));
      }
      await Promise.all([spawn(), spawn()]);
      await waitFor(
        async () => (await count(`SELECT count(*)::int AS n FROM jobs WHERE started_at IS NOT NULL`)) >= 200,
        { timeoutMs: 120_000, intervalMs: 100, what: '200 admissions' },
      );
      const { rows } = await store.db.query<{ client: string }>(
        `SELECT client FROM jobs WHERE started_at IS NOT NULL ORDER BY started_at, id LIMIT 200`,
      );
      const light = rows.filter((r) => r.client === 'light').length;
      // 1:3 is 50 of 200. Two engines admit side by side, and under a loaded CI machine 56 was
      // seen once, so the bound is ± 7 (14 %). Submission order (light first in each pair) or an
      // even split would give 100, far outside it.
      assert.ok(
        light >= 43 && light <= 57,
        `light got ${light} of the first 200 admissions (expected 50 ± 7)`,
      );
      // Both engines admitted.
      const { rows: by } = await store.db.query<{ n: number }>(
        `SELECT count(DISTINCT a.worker_id)::int AS n FROM attempts a WHERE a.job_id = ANY($1::bigint[])`,
        [ids],
      );
      assert.equal(by[0]!.n, 2, 'both engine processes ran tasks');
    });

    it('a client quota is never exceeded while two engines admit', async () => {
      await writeSettings(store.db, { max_jobs: 6 });
      await postSetting(local.ctx, { name: 'max_jobs', setting: 2, client: 'capped' });
      const ids: number[] = [];
      for (let i = 0; i < 20; i++) {
        ids.push(await submitAs(local, 'hold', { seconds: 0.1 }, {}, 'capped'));
        ids.push(await submitAs(local, 'hold', { seconds: 0.1 }, {}, 'open'));
      }
      await Promise.all([spawn(), spawn()]);
      const { max, samples } = await sampleHolders(store.db, 'j.client', allDone(ids), {
        intervalMs: 50,
        timeoutMs: 90_000,
      });
      assert.ok(
        (max.get('capped') ?? 0) <= 2,
        `capped held ${max.get('capped')} slots at once (${samples} samples)`,
      );
      assert.ok((max.get('open') ?? 0) >= 3, `open held at most ${max.get('open')}`);
    });

    it('a concurrency key with limit 1 is never held twice: 300 jobs over 3 keys, two engines, sampled every 50 ms', async () => {
      await writeSettings(store.db, { max_jobs: 6 });
      const ids: number[] = [];
      for (let i = 0; i < 300; i++)
        ids.push(await submitAs(local, 'keyed', { content_id: `k${i % 3}`, seconds: 0 }));
      await Promise.all([spawn(), spawn()]);
      const { max, samples } = await sampleHolders(store.db, 'j.concurrency_key', allDone(ids), {
        intervalMs: 50,
        timeoutMs: 180_000,
      });
      for (const key of ['content-k0', 'content-k1', 'content-k2'])
        assert.ok((max.get(key) ?? 0) <= 1, `${key} held ${max.get(key)} times at once (${samples} samples)`);
      // Exactly, after the fact: per key, no two jobs' started … finished intervals overlap.
      const { rows } = await store.db.query<{ key: string; started_at: Date; finished_at: Date }>(
        `SELECT concurrency_key AS key, started_at, finished_at FROM jobs
          WHERE id = ANY($1::bigint[]) ORDER BY concurrency_key, started_at, id`,
        [ids],
      );
      for (let i = 1; i < rows.length; i++) {
        const [a, b] = [rows[i - 1]!, rows[i]!];
        if (a.key === b.key)
          assert.ok(
            b.started_at.getTime() >= a.finished_at.getTime(),
            `${b.key}: a job started at ${b.started_at.toISOString()} before the previous holder finished at ${a.finished_at.toISOString()}`,
          );
      }
    });
  },
);
