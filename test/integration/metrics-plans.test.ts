/**
 * The plans of the statements a `GET /metrics` scrape and `/health` run, on PostgreSQL with many
 * finished tasks: the ready and running task counts read their partial indexes, never every task
 * (a single `state IN ('ready', 'running')` matched neither index and scanned the whole table:
 * about 90 ms per scrape at 1,000,000 jobs; bench/metrics-scrape.bench.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readMetricsSnapshot } from '../../src/store/queries/metrics.js';
import { countActiveTasksByQueue } from '../../src/store/queries/status.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';

/** Every relation a plan (EXPLAIN FORMAT JSON) reads, with the node type and index that read it. */
function scansOf(node: Record<string, unknown>, out: string[] = []): string[] {
  const index = node['Index Name'];
  if (typeof node['Relation Name'] === 'string')
    out.push(
      `${String(node['Node Type'])} ${node['Relation Name']}${typeof index === 'string' ? ` (${index})` : ''}`,
    );
  for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) scansOf(child, out);
  return out;
}

void describe(
  'metrics and health statement plans [postgres]',
  { skip: storeKinds().includes('postgres') ? false : 'needs TEST_DATABASE_URL' },
  () => {
    let store: TestStore;
    before(async () => {
      store = await createTestStore('postgres');
      // 60 000 ended jobs of one task each, and a few live ones with ready and running tasks.
      await store.db.query(
        `INSERT INTO jobs (client, workflow, queue_state, definition, created_at)
         SELECT 'acme', 'demo', CASE WHEN i <= 59990 THEN 'completed' ELSE 'started' END,
                '{"name":"demo","tasks":[]}'::jsonb, now() - i * interval '1 minute'
           FROM generate_series(1, 60000) AS i`,
      );
      await store.db.query(
        `INSERT INTO tasks (job_id, name, position, state)
         SELECT id, 'only', 0, CASE WHEN queue_state = 'completed' THEN 'succeeded'
                                    WHEN id % 2 = 0 THEN 'ready' ELSE 'running' END FROM jobs`,
      );
      await store.db.query('ANALYZE jobs');
      await store.db.query('ANALYZE tasks');
    });
    after(() => store?.dispose());

    const planOf = async (text: string, values: unknown[]): Promise<string[]> => {
      const { rows } = await store.db.query<{ 'QUERY PLAN': [{ Plan: Record<string, unknown> }] }>(
        `EXPLAIN (FORMAT JSON) ${text}`,
        values.length ? values : undefined,
      );
      return scansOf(rows[0]!['QUERY PLAN'][0].Plan);
    };

    void test('the metrics snapshot reads no whole table of jobs or tasks', async () => {
      const scans = await planOf(readMetricsSnapshot.text, [new Date(), 30]);
      const full = scans.filter((s) => /^Seq Scan (jobs|tasks)\b/.test(s));
      assert.deepEqual(full, [], `no sequential scan of jobs or tasks: ${scans.join('; ')}`);
      assert.ok(
        scans.some((s) => s.includes('(tasks_claim_idx)')),
        `ready tasks by tasks_claim_idx: ${scans.join('; ')}`,
      );
      assert.ok(
        scans.some((s) => s.includes('(tasks_running_idx)')),
        `running tasks by tasks_running_idx: ${scans.join('; ')}`,
      );
      const row = await readMetricsSnapshot.first(store.db, { now: new Date(), aliveSeconds: 30 });
      const tasks = [...(row?.tasks ?? [])].sort((a, b) => a.state.localeCompare(b.state));
      assert.deepEqual(tasks, [
        { queue: 'work', state: 'ready', n: 5 },
        { queue: 'work', state: 'running', n: 5 },
      ]);
    });

    void test("/health's task counts per queue read the partial indexes, not every task", async () => {
      const scans = await planOf(countActiveTasksByQueue.text, []);
      const full = scans.filter((s) => /^Seq Scan tasks\b/.test(s));
      assert.deepEqual(full, [], `no sequential scan of tasks: ${scans.join('; ')}`);
      const rows = await countActiveTasksByQueue.rows(store.db, {});
      assert.deepEqual(
        [...rows].sort((a, b) => a.state.localeCompare(b.state)),
        [
          { queue: 'work', state: 'ready', n: 5 },
          { queue: 'work', state: 'running', n: 5 },
        ],
      );
    });
  },
);
