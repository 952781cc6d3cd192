/**
 * Real engine processes on one PostgreSQL database: a kill -9 in the middle of a task, and two
 * engines admitting at once. PostgreSQL only (an embedded database belongs to one process).
 */
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { after, before, describe, it } from 'node:test';
import type { Engine } from '../../src/engine/engine.js';
import { recoverStalledAttempts } from '../../src/engine/maintenance/recover-stalled.js';
import { startCallbackReceiver, type CallbackReceiver } from '../helpers/callback-receiver.js';
import { createIdleEngine, engineProcessSpawner, submitAs, writeSettings } from '../helpers/engine.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { sampleMaxStarted } from '../helpers/sample-started.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const hasPostgres = storeKinds().includes('postgres');

void describe(
  'runtime: engine processes [postgres]',
  { skip: hasPostgres ? false : 'needs TEST_DATABASE_URL' },
  () => {
    let store: TestStore;
    let receiver: CallbackReceiver;
    let local: Engine;
    const { spawn, procs, killAll } = engineProcessSpawner(() => ({
      databaseUrl: store.databaseUrl!,
      workflowsDir: catalog.dir,
      env: { TE_HEARTBEAT_MS: '500' },
    }));
    const catalog = createFixtureCatalog({
      slow: {
        parameters: { type: 'object', properties: { rest_endpoints: { type: 'array' } } },
        tasks: [{ name: 'work', run: 'sleep', with: { seconds: 3 }, retry_limit: 2, retry_delay: 0 }],
      },
      quick: {
        tasks: [{ name: 'quick', run: 'sleep', with: { seconds: 0.05 } }],
      },
    });

    before(async () => {
      store = await createTestStore('postgres');
      receiver = await startCallbackReceiver();
      // Not started: used to submit jobs and to run recovery passes, as an API node would.
      local = await createIdleEngine(store, catalog);
    });
    after(async () => {
      await killAll();
      await receiver?.close();
      await store?.dispose();
    });

    it('retries a task whose engine was killed with SIGKILL, completes the job and sends exactly one job-end callback', async () => {
      await writeSettings(store.db, { max_jobs: 5, stall_timeout: 2 });
      const a = await spawn();
      const id = await submitAs(local, 'slow', { rest_endpoints: [receiver.url('/crash')] });
      const first = await waitFor(
        async () =>
          (
            await store.db.query<{ id: number; worker_id: string }>(
              `SELECT id, worker_id FROM attempts WHERE job_id = $1 AND state = 'running'`,
              [id],
            )
          ).rows[0],
        { timeoutMs: 10_000, what: 'the first attempt to run' },
      );
      assert.ok(first.worker_id.startsWith(`${hostname()}:${a.pid}:`), `attempt run by ${first.worker_id}`);
      // Kill it once its `start` callback is delivered: a delivery in flight at the kill would hold
      // the later callbacks of this target until its lease (30 s) runs out, which is the callback
      // dispatcher's business, not what this test is about.
      // "Delivered" is what the database says, not the receiver: under load the engine may take
      // longer than any fixed pause to record the answer it got.
      await receiver.waitForCount(1, (r) => r.body?.job_id === id && r.body?.event === 'start', 10_000);
      await waitFor(
        async () =>
          (
            await store.db.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM callback_deliveries
                WHERE job_id = $1 AND event = 'start' AND state = 'delivered'`,
              [id],
            )
          ).rows[0]!.n === 1,
        { timeoutMs: 10_000, what: 'the start callback to be recorded as delivered' },
      );
      await a.kill();

      const b = await spawn();
      // The `recover_stalled_tasks` schedule runs this every 15 s; here it is called until the
      // stall_timeout (2 s) has passed, so the test does not wait for the schedule's period.
      await waitFor(async () => (await recoverStalledAttempts(local.ctx)) > 0, {
        timeoutMs: 15_000,
        intervalMs: 250,
        what: 'the killed attempt to be recovered',
      });
      await waitFor(
        async () =>
          (await store.db.query<{ s: string }>(`SELECT queue_state AS s FROM jobs WHERE id = $1`, [id]))
            .rows[0]!.s === 'completed',
        { timeoutMs: 15_000, what: 'the job to complete' },
      );
      const attempts = await store.db.query<{ state: string; worker_id: string }>(
        `SELECT state, worker_id FROM attempts WHERE job_id = $1 ORDER BY number`,
        [id],
      );
      assert.deepEqual(
        attempts.rows.map((r) => r.state),
        ['stalled', 'succeeded'],
      );
      assert.ok(attempts.rows[1]!.worker_id.startsWith(`${hostname()}:${b.pid}:`));
      const job = await store.db.query<{ failed: boolean }>(`SELECT failed FROM jobs WHERE id = $1`, [id]);
      assert.equal(job.rows[0]!.failed, false);

      const isJobEnd = (r: { body?: { job_id?: number; status?: string } }) =>
        r.body?.job_id === id && r.body?.status !== undefined;
      await receiver.waitForCount(1, isJobEnd, 10_000);
      await new Promise((r) => setTimeout(r, 1_500));
      const ends = receiver.requests.filter(isJobEnd);
      assert.equal(ends.length, 1, 'exactly one job-end callback');
      assert.equal(ends[0]!.body.status, 'completed');
      await b.stop();
    });

    it('two engine processes admitting 200 jobs with max_jobs 3 never start more than 3 (sampled from the database)', async () => {
      for (const p of procs.splice(0)) await p.kill();
      await writeSettings(store.db, { max_jobs: 3, priority_slots: 0 });
      const [p1, p2] = await Promise.all([spawn(), spawn()]);
      const ids: number[] = [];
      for (let i = 0; i < 200; i++) ids.push(await submitAs(local, 'quick'));
      const { max, samples } = await sampleMaxStarted(store.db, ids, { intervalMs: 5, timeoutMs: 50_000 });
      assert.ok(max <= 3, `${max} jobs were started at once (${samples} samples)`);
      assert.equal(max, 3, `the cap was reached (${samples} samples)`);
      const workers = await store.db.query<{ n: number }>(
        `SELECT count(DISTINCT worker_id) AS n FROM attempts WHERE job_id = ANY($1::bigint[])`,
        [ids],
      );
      assert.equal(workers.rows[0]!.n, 2, 'both processes ran tasks');
      const failed = await store.db.query<{ n: number }>(
        `SELECT count(*) AS n FROM jobs WHERE id = ANY($1::bigint[]) AND failed`,
        [ids],
      );
      assert.equal(failed.rows[0]!.n, 0);
      assert.equal(await p1.stop(), 0);
      assert.equal(await p2.stop(), 0);
    });
  },
);
