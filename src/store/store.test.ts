import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { waitFor } from '../../test/helpers/wait-for.js';
import { createTestStore, forEachStore, type TestStore } from '../../test/helpers/stores.js';
import { migrate, readMigrations } from './migrate.js';

forEachStore('store', (kind) => {
  let s: TestStore;
  before(async () => {
    s = await createTestStore(kind);
  });
  after(async () => {
    await s.dispose();
  });

  it('migrates once: a second run applies nothing', async () => {
    assert.deepEqual(await migrate(s.db), []);
    const { rows } = await s.db.query<{ version: number }>('SELECT version FROM schema_migrations');
    const expected = (await readMigrations()).map((m) => m.version);
    assert.ok(expected.length >= 1);
    assert.deepEqual(
      rows.map((r) => r.version),
      expected,
    );
  });

  it('migration 3 moves the search trigram indexes off jobs and fills job_search from the jobs there', async () => {
    const m3 = (await readMigrations()).find((m) => m.version === 3);
    assert.ok(m3, 'migration 3 is bundled');
    const indexesOf = async (table: string) =>
      (
        await s.db.query<{ indexname: string }>(
          'SELECT indexname FROM pg_indexes WHERE tablename = $1 ORDER BY indexname',
          [table],
        )
      ).rows.map((r) => r.indexname);
    assert.deepEqual(await indexesOf('job_search'), [
      'job_search_content_id_trgm_idx',
      'job_search_parameters_trgm_idx',
      'job_search_pkey',
    ]);
    const onJobs = await indexesOf('jobs');
    assert.ok(!onJobs.includes('jobs_search_trgm_idx') && !onJobs.includes('jobs_content_id_trgm_idx'));
    // Back to the schema of version 2 with jobs in it, run migration 3, check, and roll it all back.
    const rollback = new Error('rollback');
    await assert.rejects(
      s.db.transaction(async (tx) => {
        await tx.exec(`DROP TABLE job_search;
          CREATE INDEX jobs_search_trgm_idx ON jobs USING gin ((parameters::text) gin_trgm_ops);
          CREATE INDEX jobs_content_id_trgm_idx ON jobs USING gin (content_id gin_trgm_ops);`);
        const { rows: made } = await tx.query<{ id: number }>(
          `INSERT INTO jobs (client, workflow, queue_state, parameters, definition, content_id)
           VALUES ('c', 'w', 'completed', '{"content_id": "Abc-1", "note": "x"}', '{}', 'Abc-1'),
                  ('c', 'w', 'queued', '{}', '{}', NULL)
           RETURNING id`,
        );
        await tx.exec(m3.sql);
        const { rows } = await tx.query<{
          job_id: number;
          content_id: string | null;
          parameters_text: string;
        }>('SELECT job_id, content_id, parameters_text FROM job_search ORDER BY job_id');
        assert.deepEqual(rows, [
          {
            job_id: made[0]!.id,
            content_id: 'Abc-1',
            parameters_text: '{"note": "x", "content_id": "Abc-1"}',
          },
          { job_id: made[1]!.id, content_id: null, parameters_text: '{}' },
        ]);
        const { rows: left } = await tx.query<{ indexname: string }>(
          `SELECT indexname FROM pg_indexes WHERE tablename = 'jobs' AND indexdef LIKE '%gin_trgm_ops%'`,
        );
        assert.deepEqual(left, []);
        // A job deleted (clean-up) takes its search row with it.
        await tx.query('DELETE FROM jobs WHERE id = $1', [made[0]!.id]);
        const { rows: after } = await tx.query<{ job_id: number }>('SELECT job_id FROM job_search');
        assert.deepEqual(after, [{ job_id: made[1]!.id }]);
        throw rollback;
      }),
      (err) => err === rollback,
    );
  });

  it('returns int8 as numbers and timestamptz as Dates', async () => {
    const { rows } = await s.db.query<{ n: number; t: Date }>('SELECT count(*) AS n, now() AS t FROM jobs');
    assert.equal(rows[0]!.n, 0);
    assert.ok(rows[0]!.t instanceof Date);
  });

  it('leaves pg defaults alone for other pg clients of the process: their int8 stays a string', async (t) => {
    if (s.kind !== 'postgres') return t.skip('pg only');
    const other = new pg.Client({ connectionString: s.databaseUrl! });
    await other.connect();
    try {
      const { rows } = await other.query<{ n: unknown }>('SELECT 9007199254740993::int8 AS n');
      assert.equal(rows[0]!.n, '9007199254740993');
    } finally {
      await other.end();
    }
    // The engine's own connections still read int8 as a number.
    const { rows } = await s.db.query<{ n: unknown }>('SELECT 42::int8 AS n');
    assert.equal(rows[0]!.n, 42);
  });

  it('rolls back a failed transaction and keeps the connection usable', async () => {
    await assert.rejects(
      s.db.transaction(async (tx) => {
        await tx.query("INSERT INTO settings (name, value) VALUES ('x', '1')");
        await tx.query('SELECT * FROM no_such_table');
      }),
    );
    const { rows } = await s.db.query("SELECT * FROM settings WHERE name = 'x'");
    assert.equal(rows.length, 0);
  });

  it('delivers NOTIFY to listeners after commit', async () => {
    const got: string[] = [];
    const unlisten = await s.db.listen('te_test', (p) => got.push(p));
    await s.db.transaction(async (tx) => {
      await tx.query("SELECT pg_notify('te_test', $1)", ['hello']);
    });
    await waitFor(() => got.length > 0, { timeoutMs: 2_000, intervalMs: 10, what: 'the notification' }).catch(
      () => undefined,
    );
    await unlisten();
    assert.deepEqual(got, ['hello']);
  });

  it('re-subscribes when its LISTEN connection drops', async (t) => {
    if (s.kind !== 'postgres') return t.skip('pg only');
    const got: string[] = [];
    const unlisten = await s.db.listen('te_test_reconnect', (p) => got.push(p));
    try {
      const { rows } = await s.db.query<{ n: number }>(
        `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
          WHERE application_name = 'task-engine-listen' AND datname = current_database()`,
      );
      assert.equal(rows[0]!.n, 1);
      // Send until one arrives: notifications sent before the new connection listens are lost.
      await waitFor(
        async () => {
          await s.db.query("SELECT pg_notify('te_test_reconnect', 'again')");
          return got.length > 0;
        },
        { timeoutMs: 10_000, intervalMs: 100, what: 'a notification after the reconnect' },
      );
      assert.equal(got[0], 'again');
    } finally {
      await unlisten();
    }
  });
});
