/**
 * The claim statement picks the targets of its `start` callbacks in SQL; every other event uses
 * callbackTargets in TypeScript. Both must pick the same targets in the same order.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { callbackTargets } from '../../src/engine/callbacks/bodies.js';
import { claimTasks } from '../../src/engine/workers/claim.js';
import { insertJob } from '../helpers/factories.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';

const CASES: Record<string, unknown>[] = [
  {},
  { rest_endpoints: null },
  { rest_endpoints: 'http://a.example/x' },
  { rest_endpoints: { url: 'http://a.example/x' } },
  { rest_endpoints: [] },
  { rest_endpoints: ['http://a.example/1', 'https://b.example/2'] },
  { rest_endpoints: ['https://b.example/2', 'http://a.example/1', 'https://b.example/2'] },
  {
    rest_endpoints: [
      'HTTP://UPPER.example/',
      'ftp://no.example/',
      'no-scheme.example',
      ' http://space.example/',
    ],
  },
  {
    rest_endpoints: [1, null, true, { u: 'http://x.example/' }, ['http://y.example/'], 'http://ok.example/'],
  },
  { rest_endpoints: ['http://a.example/?q=1&r=ü', "http://a.example/it's", 'http://a.example/?q=1&r=ü'] },
];

forEachStore('callback targets in SQL and TypeScript', (kind) => {
  let store: TestStore;
  before(async () => {
    store = await createTestStore(kind);
  });
  after(() => store.dispose());

  it('choose the same targets in the same order for every shape of rest_endpoints', async () => {
    for (const parameters of CASES) {
      const jobId = await insertJob(store.db, { queue_state: 'started', parameters });
      await store.db.query(
        `INSERT INTO tasks (job_id, name, position, queue, state) VALUES ($1, 'only', 0, 'targets', 'ready')`,
        [jobId],
      );
      const [claimed] = await claimTasks(store.db, ['targets'], 1, 'test-worker');
      assert.equal(claimed?.job.id, jobId);
      const { rows } = await store.db.query<{ url: string }>(
        `SELECT target_url AS url FROM callback_deliveries WHERE job_id = $1 AND event = 'start' ORDER BY id`,
        [jobId],
      );
      assert.deepEqual(
        rows.map((r) => r.url),
        callbackTargets(parameters),
        `rest_endpoints ${JSON.stringify(parameters.rest_endpoints)}`,
      );
    }
  });
});
