/**
 * Table upkeep on both stores: dead rows in an engine table are vacuumed by one pass (the
 * statistics then show the vacuum and no dead rows), a table with nothing to do is left alone, and
 * a running scheduler leader does it by itself. On PostgreSQL the table's autovacuum is switched
 * off first, so the test holds whatever the server's setting; PGlite has no autovacuum daemon.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { runTableUpkeep } from '../../src/engine/maintenance/table-upkeep.js';
import { flushOwnStatistics, readTableUpkeepStats } from '../../src/store/queries/table-upkeep.js';
import { startTestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const silent = pino({ level: 'silent' });

async function eventStats(s: TestStore): Promise<{ dead: number; vacuumed: boolean }> {
  if (s.kind === 'pglite') await flushOwnStatistics.first(s.db, {});
  const [r] = await readTableUpkeepStats.rows(s.db, { tables: ['events'] });
  const { rows } = await s.db.query<{ vacuumed: boolean }>(
    `SELECT last_vacuum IS NOT NULL AS vacuumed FROM pg_stat_user_tables WHERE relname = 'events'`,
  );
  return { dead: r?.dead_rows ?? 0, vacuumed: rows[0]?.vacuumed ?? false };
}

/**
 * Vacuums `events` by hand and waits until the statistics show no dead rows, then writes `n` events
 * and deletes them, and waits until the statistics count those `n` dead rows. Starting from zero
 * matters on PostgreSQL: a pooled connection sends its statistics up to seconds later, and a
 * count that reached `n` from earlier leftovers could be followed by a late increment after the
 * vacuum under test.
 */
async function makeDeadEvents(s: TestStore, n: number): Promise<void> {
  await s.db.exec('VACUUM events');
  await waitFor(async () => (await eventStats(s)).dead === 0, { what: 'events to start with no dead rows' });
  await s.db.query(
    `INSERT INTO events (job_id, kind, data) SELECT g, 'job', '{}'::jsonb FROM generate_series(1, $1::int) g`,
    [n],
  );
  await s.db.query(`DELETE FROM events`);
  await waitFor(async () => (await eventStats(s)).dead >= n, {
    what: `the statistics to count ${n} dead rows`,
  });
}

/** When `events` was last vacuumed by hand (null: never). */
async function lastVacuum(s: TestStore): Promise<number | null> {
  const { rows } = await s.db.query<{ at: Date | null }>(
    `SELECT last_vacuum AS at FROM pg_stat_user_tables WHERE relname = 'events'`,
  );
  return rows[0]?.at ? rows[0].at.getTime() : null;
}

forEachStore('table upkeep', (kind) => {
  let s: TestStore;
  before(async () => {
    s = await createTestStore(kind);
    if (kind === 'postgres')
      await s.db.exec(
        `ALTER TABLE events SET (autovacuum_enabled = false); ALTER TABLE workers SET (autovacuum_enabled = f)`,
      );
  });
  after(() => s.dispose());

  describe('one pass', () => {
    it('vacuums a table whose dead rows pass the threshold, and says why', async () => {
      await makeDeadEvents(s, 600);
      await waitFor(async () => (await eventStats(s)).dead >= 600, {
        what: 'the statistics to count the dead rows',
      });
      const pass = await runTableUpkeep(s.db, silent);
      const step = pass.steps.find((x) => x.table === 'events');
      assert.equal(step?.action, 'vacuum', JSON.stringify(pass.steps));
      assert.match(step.reason, /^\d+ dead rows \(threshold \d+\)$/);
      const afterPass = await waitFor(
        async () => {
          const st = await eventStats(s);
          return st.vacuumed && st.dead === 0 ? st : null;
        },
        { what: 'the vacuum to show in the statistics' },
      );
      assert.equal(afterPass.dead, 0);
    });

    it('then has nothing to do for that table', async () => {
      const pass = await runTableUpkeep(s.db, silent);
      assert.equal(
        pass.steps.find((x) => x.table === 'events'),
        undefined,
      );
    });

    it('a failing step is reported and the other tables still get their turn', async () => {
      await makeDeadEvents(s, 600);
      await s.db.query(
        `INSERT INTO workers (id, queues, concurrency, host, pid)
         SELECT 'upkeep-' || g, '{}', 1, 'h', g FROM generate_series(1, 200) g`,
      );
      await s.db.query(`DELETE FROM workers WHERE id LIKE 'upkeep-%'`);
      await waitFor(
        async () => {
          if (s.kind === 'pglite') await flushOwnStatistics.first(s.db, {});
          const rows = await readTableUpkeepStats.rows(s.db, { tables: ['events', 'workers'] });
          const dead = (t: string): number => rows.find((r) => r.table === t)?.dead_rows ?? 0;
          return dead('events') >= 600 && dead('workers') >= 200;
        },
        { what: 'dead rows counted in events and workers' },
      );
      // The same store, but VACUUM of events fails (as a statement_timeout would).
      const failing = Object.assign(Object.create(s.db) as typeof s.db, {
        exec: (sql: string) =>
          sql.includes(' events')
            ? Promise.reject(new Error('canceling statement due to statement timeout'))
            : s.db.exec(sql),
      });
      const pass = await runTableUpkeep(failing, silent);
      assert.deepEqual(pass.failed, [
        { table: 'events', error: 'canceling statement due to statement timeout' },
      ]);
      assert.ok(
        pass.steps.some((x) => x.table === 'workers'),
        `a later table was still vacuumed: ${JSON.stringify(pass.steps)}`,
      );
      const skipped = await runTableUpkeep(s.db, silent, () => true, new Set(['events']));
      assert.equal(
        skipped.steps.find((x) => x.table === 'events'),
        undefined,
        'a table in the back-off set is left out',
      );
      await runTableUpkeep(s.db, silent);
    });

    it('stops before a step once told to', async () => {
      await makeDeadEvents(s, 600);
      await waitFor(async () => (await eventStats(s)).dead >= 600, { what: 'dead rows counted' });
      const pass = await runTableUpkeep(s.db, silent, () => false);
      assert.deepEqual(pass.steps, []);
      assert.ok((await eventStats(s)).dead >= 600, 'nothing was vacuumed');
    });
  });

  describe('in a running engine', () => {
    it('the scheduler leader vacuums by itself, soon after it is elected', async () => {
      await makeDeadEvents(s, 600);
      const before = (await lastVacuum(s)) ?? 0;
      const engine = await startTestEngine(s, { roles: ['scheduler'] });
      try {
        await waitFor(
          async () => {
            const at = await lastVacuum(s);
            return at !== null && at > before && (await eventStats(s)).dead === 0;
          },
          { timeoutMs: 20_000, intervalMs: 200, what: 'the leader to vacuum events' },
        );
      } finally {
        await engine.stop();
      }
    });

    it('TASK_ENGINE_TABLE_UPKEEP=off leaves the tables alone', async () => {
      await makeDeadEvents(s, 600);
      await waitFor(async () => (await eventStats(s)).dead >= 600, { what: 'dead rows counted' });
      const engine = await startTestEngine(s, { roles: ['scheduler'], config: { tableUpkeep: 'off' } });
      try {
        await new Promise((r) => setTimeout(r, 6_500));
        assert.ok((await eventStats(s)).dead >= 600, 'the dead rows are still there');
      } finally {
        await engine.stop();
      }
    });
  });
});
