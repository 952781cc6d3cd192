/**
 * The plans of the console's counting statements on PostgreSQL with many jobs: the throughput
 * count of `GET /stats` reads the ended jobs of its window by end time, persisted ones included,
 * instead of walking every persisted job (350 ms at 20 000 of them among 1 000 000 jobs).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { countFinishedJobs } from '../../src/store/queries/console.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';

/** Every index a plan (EXPLAIN FORMAT JSON) reads, with the node type that reads it. */
function indexesOf(node: Record<string, unknown>, out: string[] = []): string[] {
  if (typeof node['Index Name'] === 'string') out.push(`${String(node['Node Type'])} ${node['Index Name']}`);
  for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) indexesOf(child, out);
  return out;
}

void describe(
  'console statement plans [postgres]',
  { skip: storeKinds().includes('postgres') ? false : 'needs TEST_DATABASE_URL' },
  () => {
    let store: TestStore;
    before(async () => {
      store = await createTestStore('postgres');
      // 60 000 ended jobs over a year, one in three persisted; none ended in the last hour.
      await store.db.query(
        `INSERT INTO jobs (client, workflow, queue_state, persist, definition, created_at, started_at, finished_at)
         SELECT 'acme', 'demo', CASE WHEN i % 25 = 0 THEN 'broken' ELSE 'completed' END, i % 3 = 0,
                '{"name":"demo","tasks":[]}'::jsonb, t, t, t + interval '1 minute'
           FROM (SELECT i, now() - interval '2 hours' - i * interval '8 minutes' AS t
                   FROM generate_series(1, 60000) AS i) g`,
      );
      await store.db.query('ANALYZE jobs');
    });
    after(() => store?.dispose());

    void test('GET /stats reads the persisted ended jobs of its window by end time, not every persisted job', async () => {
      const now = new Date();
      const window = { now, since: new Date(now.getTime() - 3_600_000), bucketSeconds: 60, client: null };
      const values = countFinishedJobs.params.map((k) => window[k]);
      const { rows } = await store.db.query<{ 'QUERY PLAN': [{ Plan: Record<string, unknown> }] }>(
        `EXPLAIN (FORMAT JSON) ${countFinishedJobs.text}`,
        values,
      );
      const used = indexesOf(rows[0]!['QUERY PLAN'][0].Plan);
      assert.ok(
        used.some((u) => u.endsWith(' jobs_persist_finished_idx')),
        `the persisted arm reads jobs_persist_finished_idx: ${used.join('; ')}`,
      );
      assert.ok(
        !used.some((u) => u.endsWith(' jobs_persist_id_idx')),
        `no walk of every persisted job: ${used.join('; ')}`,
      );
      const counted = await countFinishedJobs.rows(store.db, window);
      assert.deepEqual(counted, [], 'nothing ended in the last hour');
    });
  },
);
