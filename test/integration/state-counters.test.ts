/**
 * The job and task counters of migration 0018 (`job_state_counts`, `task_state_counts`, kept by
 * statement triggers) against `count(*)` of the real tables, on both stores with a running
 * engine: submissions, admissions, successes, failures with retries, pause and resume, break,
 * reruns (superseded), priority changes, scheduled jobs, the retention purge (ON DELETE CASCADE),
 * multi-row and rolled-back statements, compaction and TRUNCATE; `/health` job counts equal the
 * `/jobs?state=` totals. On PostgreSQL also real engine processes with a kill -9 mid-run and the
 * recovery after it. A last case disables one trigger and shows the comparison notices.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/api/build-server.js';
import { createClient } from '../../src/engine/clients/clients.js';
import type { Engine } from '../../src/engine/engine.js';
import { cleanupJobs } from '../../src/engine/maintenance/cleanup.js';
import { recoverStalledAttempts } from '../../src/engine/maintenance/recover-stalled.js';
import type { Executor } from '../../src/store/executor.js';
import {
  compactStateCounts,
  countStatesFromCounters,
  countStatesFromTables,
} from '../../src/store/queries/status.js';
import {
  createIdleEngine,
  engineProcessSpawner,
  startTestEngine,
  submitAs,
  writeSettings,
  type TestEngine,
} from '../helpers/engine.js';
import { createFixtureCatalog, type FixtureWorkflow } from '../helpers/fixture-catalog.js';
import { createTestStore, forEachStore, storeKinds, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const WORKFLOWS: Record<string, FixtureWorkflow> = {
  ok3: {
    tasks: [
      { name: 'a', run: 'sleep', with: { seconds: 0 } },
      { name: 'b', run: 'sleep', with: { seconds: 0 } },
      { name: 'c', run: 'sleep', with: { seconds: 0 } },
    ],
  },
  flaky: {
    tasks: [
      { name: 'first', run: 'sleep', with: { seconds: 0 } },
      { name: 'second', run: 'fail', with: { message: 'no luck' }, retry_limit: 2, retry_delay: 0 },
    ],
  },
  slow: {
    tasks: [
      { name: 'wait', run: 'sleep', with: { seconds: 1.5 } },
      { name: 'after', run: 'sleep', with: { seconds: 0 } },
    ],
  },
};

/** The job states by their `/jobs?state=` numbers (seed). */
const STATE_NUMBERS = {
  queued: 0,
  started: 1,
  completed: 2,
  pending: 3,
  broken: 4,
  scheduled: 5,
  paused: 6,
} as const;

/** Asserts that the counters hold exactly what `count(*)` over the tables says. */
async function assertCountersExact(db: Executor, what: string): Promise<void> {
  // One snapshot for both reads: engines may be changing the tables meanwhile.
  const [fromTables, fromCounters] = await db.transaction(async (tx) => {
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    return [await countStatesFromTables.first(tx, {}), await countStatesFromCounters.first(tx, {})];
  });
  assert.deepEqual(fromCounters, fromTables, `counters equal count(*) ${what}`);
}

/** The counter rows (all shards): for compaction checks. */
async function counterRows(db: Executor): Promise<number> {
  const r = await db.query<{ n: number }>(
    `SELECT (SELECT count(*) FROM job_state_counts)::int + (SELECT count(*) FROM task_state_counts)::int AS n`,
  );
  return r.rows[0]!.n;
}

forEachStore('job and task counters', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let app: FastifyInstance;
  let acme: Record<string, string>;
  let admin: Record<string, string>;

  before(async () => {
    store = await createTestStore(kind);
    te = await startTestEngine(store, {
      workflows: WORKFLOWS,
      settings: { max_jobs: 3, priority_slots: 0, retry_delay: 0 },
    });
    app = buildServer(te.engine.ctx);
    await app.ready();
    const a = await createClient(store.db, { name: 'acme' });
    acme = { client: 'acme', 'api-key': a.api_key };
    const b = await createClient(store.db, { name: 'boss', admin: true });
    admin = { client: 'boss', 'api-key': b.api_key };
  });
  after(async () => {
    await app?.close();
    await te?.stop();
    await store?.dispose();
  });

  const call = async (
    headers: Record<string, string>,
    method: 'GET' | 'POST' | 'PATCH',
    url: string,
    payload?: Record<string, unknown>,
  ) => {
    const res = await app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
    assert.ok(res.statusCode < 300, `${method} ${url}: ${res.statusCode} ${res.body}`);
    return JSON.parse(res.body) as Record<string, unknown>;
  };
  const submit = async (
    headers: Record<string, string>,
    workflow: string,
    job: Record<string, unknown> = {},
  ) => (await call(headers, 'POST', '/job', { job: { workflow, ...job }, parameters: {} })).id as number;
  const patch = (id: number, body: Record<string, unknown>) => call(admin, 'PATCH', `/jobs/${id}`, body);

  /** `/health` job counts equal the `/stats/job-count` and `/jobs?state=` totals, for `headers`' view. */
  const assertHealthMatchesListings = async (headers: Record<string, string>) => {
    const health = (await call(headers, 'GET', '/health')) as { jobs: Record<string, number> };
    for (const [state, number] of Object.entries(STATE_NUMBERS)) {
      const listed = (await call(headers, 'GET', `/jobs?state=${number}&limit=1000`)) as unknown as unknown[];
      const counted = (await call(headers, 'GET', `/stats/job-count?state=${number}`)).count as number;
      assert.equal(counted, listed.length, `/stats/job-count and /jobs agree on ${state}`);
      if (state === 'completed') {
        const failedListed = (
          (await call(headers, 'GET', `/jobs?state=2&failed=1&limit=1000`)) as unknown as unknown[]
        ).length;
        assert.equal(health.jobs.completed, listed.length - failedListed, '/health completed');
        assert.equal(health.jobs.failed, failedListed, '/health failed');
      } else assert.equal(health.jobs[state], listed.length, `/health ${state} for ${headers.client}`);
    }
  };

  it('equal count(*) after a mixed run: successes, retries, pause/resume, break, rerun, priority, schedule', async () => {
    await assertCountersExact(store.db, 'after the migration');
    const ok = [] as number[];
    for (let i = 0; i < 5; i++) ok.push(await submit(i % 2 ? acme : admin, 'ok3', { priority: 1 + i }));
    const flaky = [await submit(acme, 'flaky'), await submit(admin, 'flaky')];
    const slow = [await submit(acme, 'slow'), await submit(admin, 'slow')];
    const later = await submit(acme, 'ok3', { run_at: '2099-01-01T00:00:00.000Z' });
    const queuedThenPaused = await submit(acme, 'ok3', { priority: 10, run_at: '2099-01-01T00:00:00.000Z' });
    await assertCountersExact(store.db, 'after submissions');
    await patch(later, { priority: '2' });
    await patch(queuedThenPaused, { priority: '9' });
    await patch(queuedThenPaused, { queue_state: 'paused' });

    // Pause a started slow job while its task runs, then resume it; break the other one.
    await te.waitForState(slow[0]!, 'started', 20_000);
    await patch(slow[0]!, { queue_state: 'paused' });
    await assertCountersExact(store.db, 'with a job paused while its task runs');
    await patch(slow[0]!, { queue_state: 'queued' });
    await te.waitForState(slow[1]!, 'started', 20_000);
    await patch(slow[1]!, { queue_state: 'broken' });

    for (const id of [...ok, ...flaky, slow[0]!]) await te.waitForState(id, ['completed', 'broken'], 30_000);
    assert.equal((await te.job(flaky[0]!)).failed, true);
    assert.equal((await te.tasks(flaky[0]!))[1]!.attempts, 3, 'the failing task was retried twice');
    await assertCountersExact(store.db, 'after successes and failures with retries');

    // Reruns: a failed job and the broken one are superseded.
    const rerunOfFailed = (await call(acme, 'POST', `/jobs/${flaky[0]!}/rerun`, {})).id as number;
    const rerunOfBroken = (await call(admin, 'POST', `/jobs/${slow[1]!}/rerun`, {})).id as number;
    await patch(queuedThenPaused, { queue_state: 'queued' });
    for (const id of [rerunOfFailed, rerunOfBroken, queuedThenPaused])
      await te.waitForState(id, ['completed', 'broken'], 30_000);
    const superseded = await store.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM jobs WHERE rerun_by IS NOT NULL`,
    );
    assert.equal(superseded.rows[0]!.n, 2);
    await assertCountersExact(store.db, 'after reruns');
    // Each task carries its job's client from submission (the task triggers count by it, reading
    // the job only for a task written without it).
    const offClient = await store.db.query<{ n: number; all: number }>(
      `SELECT count(*) FILTER (WHERE t.client IS DISTINCT FROM j.client)::int AS n, count(*)::int AS all
         FROM tasks t JOIN jobs j ON j.id = t.job_id`,
    );
    assert.equal(offClient.rows[0]!.n, 0, 'every task has its job client');
    assert.ok(offClient.rows[0]!.all > 10);
    const health = (await call(admin, 'GET', '/health')) as { jobs: Record<string, number> };
    assert.equal(health.jobs.superseded, 2);
    assert.equal(health.jobs.superseded_failed, 1);
    assert.equal(health.jobs.scheduled, 1);
    await assertHealthMatchesListings(acme);
    await assertHealthMatchesListings(admin);
  });

  it('equal count(*) after the retention purge deletes jobs and, by cascade, their tasks', async () => {
    await writeSettings(store.db, { retention_days: 1 });
    const old = await store.db.query<{ id: number }>(
      `UPDATE jobs SET finished_at = now() - interval '3 days'
        WHERE id IN (SELECT id FROM jobs WHERE queue_state IN ('completed', 'broken') ORDER BY id LIMIT 4)
        RETURNING id`,
    );
    assert.equal(old.rowCount, 4);
    const r = await cleanupJobs(te.engine.ctx, { batchSize: 3 });
    assert.equal(r.jobs, 4);
    await assertCountersExact(store.db, 'after the purge');
    const left = await store.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM state_count_deleted_jobs`,
    );
    assert.equal(left.rows[0]!.n, 0, 'no clients of deleted jobs are left behind');
    await assertHealthMatchesListings(admin);
  });

  it('equal count(*) after multi-row statements, a direct delete and a rolled-back transaction', async () => {
    await store.db.query(
      `UPDATE jobs SET priority = 7, queue_state = 'paused' WHERE queue_state = 'scheduled'`,
    );
    await store.db.query(
      `UPDATE tasks SET state = 'skipped' WHERE job_id = (SELECT min(id) FROM jobs WHERE queue_state = 'completed')`,
    );
    await assertCountersExact(store.db, 'after multi-row updates');
    const victim = await store.db.query<{ id: number }>(`SELECT max(id)::int AS id FROM jobs`);
    await store.db.query(`DELETE FROM tasks WHERE job_id = $1 AND name = 'a'`, [victim.rows[0]!.id]);
    await store.db.query(`DELETE FROM jobs WHERE id = $1`, [victim.rows[0]!.id]);
    await assertCountersExact(store.db, 'after direct deletes');
    await assert.rejects(
      store.db.transaction(async (tx) => {
        await tx.query(`UPDATE jobs SET queue_state = 'broken' WHERE queue_state = 'completed'`);
        await tx.query(`UPDATE tasks SET state = 'cancelled'`);
        throw new Error('roll back');
      }),
      /roll back/,
    );
    await assertCountersExact(store.db, 'after a rolled-back transaction');
  });

  it('compaction folds the rows of ended sessions and drops zero groups without changing a count', async () => {
    // Rows of sessions that have ended (no live backend has these pids), summing to zero per group
    // as real ones do across sessions, and a zero group.
    await store.db.query(
      `INSERT INTO job_state_counts (client, queue_state, failed, superseded, shard, n)
       VALUES ('acme', 'queued', false, false, -17, 2), ('acme', 'queued', false, false, -18, -2),
              ('ghost', 'queued', false, false, -19, 0)`,
    );
    await store.db.query(
      `INSERT INTO task_state_counts (client, state, shard, n) VALUES ('acme', 'ready', -17, 1), ('acme', 'ready', -18, -1)`,
    );
    const rowsBefore = await counterRows(store.db);
    await assertCountersExact(store.db, 'with rows of an ended session');
    const removed = (await compactStateCounts.first(store.db, {}))!.removed;
    assert.ok(removed >= 1, `compaction removed ${removed} rows`);
    assert.equal(await counterRows(store.db), rowsBefore - removed);
    const stale = await store.db.query<{ n: number }>(
      `SELECT (SELECT count(*) FROM job_state_counts WHERE shard < 0 OR n = 0 AND shard = 0)::int
            + (SELECT count(*) FROM task_state_counts WHERE shard < 0 OR n = 0 AND shard = 0)::int AS n`,
    );
    assert.equal(stale.rows[0]!.n, 0);
    await assertCountersExact(store.db, 'after compaction');
    await assertHealthMatchesListings(admin);
  });

  it('notices any missing trigger, and TRUNCATE empties the counters', async () => {
    await te.stop();
    const rebuild = async () => {
      await store.db.query(`DELETE FROM job_state_counts`);
      await store.db.query(
        `INSERT INTO job_state_counts (client, queue_state, failed, superseded, shard, n)
         SELECT client, queue_state, failed, rerun_by IS NOT NULL, 0, count(*) FROM jobs GROUP BY 1, 2, 3, 4`,
      );
      await store.db.query(`DELETE FROM task_state_counts`);
      await store.db.query(
        `INSERT INTO task_state_counts (client, state, shard, n)
         SELECT j.client, t.state, 0, count(*) FROM tasks t JOIN jobs j ON j.id = t.job_id GROUP BY 1, 2`,
      );
      await assertCountersExact(store.db, 'after a rebuild');
    };
    // Each step changes rows with one trigger disabled: the comparison must notice every one.
    const steps: [table: string, trigger: string, sql: string][] = [
      [
        'jobs',
        'jobs_state_counts_insert',
        `INSERT INTO jobs (id, client, workflow, queue_state, definition) VALUES (-5, 'acme', 'w', 'queued', '{}')`,
      ],
      [
        'tasks',
        'tasks_state_counts_insert',
        `INSERT INTO tasks (job_id, name, position) VALUES (-5, 't', 0)`,
      ],
      ['tasks', 'tasks_state_counts_update', `UPDATE tasks SET state = 'ready' WHERE job_id = -5`],
      ['jobs', 'jobs_state_counts_update', `UPDATE jobs SET queue_state = 'broken' WHERE id = -5`],
      ['tasks', 'tasks_state_counts_delete', `DELETE FROM tasks WHERE job_id = -5`],
      ['jobs', 'jobs_state_counts_delete', `DELETE FROM jobs WHERE id = -5`],
    ];
    for (const [table, trigger, sql] of steps) {
      await store.db.query(`ALTER TABLE ${table} DISABLE TRIGGER ${trigger}`);
      await store.db.query(sql);
      await assert.rejects(
        assertCountersExact(store.db, `without ${trigger}`),
        assert.AssertionError,
        trigger,
      );
      await store.db.query(`ALTER TABLE ${table} ENABLE TRIGGER ${trigger}`);
      await rebuild();
    }
    await store.db.query(`TRUNCATE jobs CASCADE`);
    assert.equal(await counterRows(store.db), 0);
    await assertCountersExact(store.db, 'after TRUNCATE');
  });
});

const hasPostgres = storeKinds().includes('postgres');

void describe(
  'job and task counters: engine processes killed mid-run [postgres]',
  { skip: hasPostgres ? false : 'needs TEST_DATABASE_URL' },
  () => {
    let store: TestStore;
    let local: Engine;
    const catalog = createFixtureCatalog({
      ...WORKFLOWS,
      slow: { tasks: [{ name: 'work', run: 'sleep', with: { seconds: 2 }, retry_limit: 2, retry_delay: 0 }] },
    });
    const { spawn, killAll } = engineProcessSpawner(() => ({
      databaseUrl: store.databaseUrl!,
      workflowsDir: catalog.dir,
      concurrency: 3,
      env: { TE_HEARTBEAT_MS: '500' },
    }));

    before(async () => {
      store = await createTestStore('postgres');
      local = await createIdleEngine(store, catalog);
    });
    after(async () => {
      await killAll();
      await store?.dispose();
    });

    it('equal count(*) after kill -9 of one of two engines mid-run and the recovery', async () => {
      await writeSettings(store.db, { max_jobs: 6, stall_timeout: 2, retry_delay: 0 });
      const [a, b] = await Promise.all([spawn(), spawn()]);
      const ids: number[] = [];
      for (let i = 0; i < 12; i++) ids.push(await submitAs(local, ['slow', 'ok3', 'flaky'][i % 3]!, {}));
      // Kill one engine while attempts of both run.
      await waitFor(
        async () =>
          (
            await store.db.query<{ n: number }>(
              `SELECT count(DISTINCT worker_id)::int AS n FROM attempts WHERE state = 'running'`,
            )
          ).rows[0]!.n >= 2,
        { timeoutMs: 20_000, intervalMs: 50, what: 'both engines to run attempts' },
      );
      await a.kill();
      await assertCountersExact(store.db, 'right after the kill');
      for (const id of ids.slice(0, 3))
        await local.ctx.db.query(`UPDATE jobs SET priority = 2 WHERE id = $1`, [id]);
      const c = await spawn();
      await waitFor(
        async () => {
          await recoverStalledAttempts(local.ctx);
          const r = await store.db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM jobs WHERE queue_state NOT IN ('completed', 'broken')`,
          );
          return r.rows[0]!.n === 0;
        },
        { timeoutMs: 60_000, intervalMs: 250, what: 'every job to end after the recovery' },
      );
      const stalled = await store.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM attempts WHERE state = 'stalled'`,
      );
      assert.ok(stalled.rows[0]!.n >= 1, 'the kill left stalled attempts to recover');
      await assertCountersExact(store.db, 'after the recovery');
      await b.stop();
      await c.stop();
      // The killed engine's database sessions have ended: compaction folds their rows.
      await waitFor(async () => (await compactStateCounts.first(store.db, {}))!.removed > 0, {
        timeoutMs: 10_000,
        intervalMs: 250,
        what: 'compaction to fold the rows of ended sessions',
      });
      await assertCountersExact(store.db, 'after compaction');
    });
  },
);
