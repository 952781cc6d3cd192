/**
 * The plan of a one-state `GET /jobs` listing on PostgreSQL when the newest rows are all of another
 * state (a backlog of queued jobs above many completed ones): it reads `jobs_state_id_idx`, never
 * the primary key with a filter, which read past every queued job (150-370 ms at 100,000 queued;
 * bench/RESULTS.md). With a client the plan is left to the planner (`= ANY` would cost
 * `jobs_client_state_id_idx` its order), and it may still choose the primary key there.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { buildJobListing, type JobListingParams } from '../../src/store/queries/jobs.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';

function indexesOf(node: Record<string, unknown>, out: string[] = []): string[] {
  if (typeof node['Relation Name'] === 'string')
    out.push(
      `${String(node['Node Type'])} ${typeof node['Index Name'] === 'string' ? node['Index Name'] : ''}`.trim(),
    );
  for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) indexesOf(child, out);
  return out;
}

const base: JobListingParams = {
  asc: false,
  client: null,
  state: null,
  failed: null,
  persist: null,
  from: null,
  to: null,
  jobIds: null,
  search: null,
  orderBy: null,
  limit: 10,
  offset: 0,
  after: null,
};

void describe(
  'GET /jobs one-state listing plans [postgres]',
  { skip: storeKinds().includes('postgres') ? false : 'needs TEST_DATABASE_URL' },
  () => {
    let store: TestStore;
    before(async () => {
      store = await createTestStore('postgres');
      // 40 000 completed jobs, then 10 000 newer queued ones.
      await store.db.query(
        `INSERT INTO jobs (client, workflow, queue_state, definition, created_at, queued_at)
         SELECT 'c' || (i % 5), 'demo', CASE WHEN i <= 40000 THEN 'completed' ELSE 'queued' END,
                '{"name":"demo","tasks":[]}'::jsonb, now(), now()
           FROM generate_series(1, 50000) AS i`,
      );
      await store.db.query('ANALYZE jobs');
    });
    after(() => store.dispose());

    async function plan(f: Partial<JobListingParams>): Promise<string[]> {
      const { sql, params } = buildJobListing({ ...base, ...f });
      const { rows } = await store.db.query<{ 'QUERY PLAN': [{ Plan: Record<string, unknown> }] }>(
        `EXPLAIN (FORMAT JSON) ${sql}`,
        params,
      );
      return indexesOf(rows[0]!['QUERY PLAN'][0].Plan);
    }

    test('completed jobs, newest first, below 10 000 queued: the state index', async () => {
      assert.deepEqual(await plan({ state: 'completed' }), ['Index Scan jobs_state_id_idx']);
    });

    test('the oldest queued jobs, above 40 000 completed: the state index', async () => {
      assert.deepEqual(await plan({ state: 'queued', asc: true }), ['Index Scan jobs_state_id_idx']);
    });

    test('the same rows as ordering by id alone', async () => {
      const { sql, params } = buildJobListing({ ...base, state: 'completed', limit: 25, offset: 5 });
      const got = (await store.db.query<{ id: string }>(sql, params)).rows.map((r) => Number(r.id));
      const { rows } = await store.db.query<{ id: string }>(
        `SELECT id FROM jobs WHERE queue_state = 'completed' ORDER BY id DESC LIMIT 25 OFFSET 5`,
      );
      assert.deepEqual(
        got,
        rows.map((r) => Number(r.id)),
      );
    });
  },
);
