/**
 * The claim statement picks the targets of its `start` callbacks, builds their bodies and writes
 * its "started" log line in SQL; every other event uses callbackTargets, taskEventBody and the
 * log-messages builders in TypeScript. Both must agree: same targets in the same order, same body,
 * same line.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { callbackTargets, taskEventBody } from '../../src/engine/callbacks/bodies.js';
import { taskStartedLine, taskStartedMessage } from '../../src/engine/jobs/log-messages.js';
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
        // run_after a moment back: the claim compares with the engine clock (milliseconds), the
        // column's default is the database's now() (microseconds), which may lie ahead of it.
        `INSERT INTO tasks (job_id, name, position, queue, state, run_after)
         VALUES ($1, 'only', 0, 'targets', 'ready', now() - interval '1 second')`,
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

  it('build the start callback body and the started log line as bodies.ts and log-messages.ts do', async () => {
    const parameters = { rest_endpoints: ['http://a.example/hook'], content_id: 'cid-1' };
    const jobId = await insertJob(store.db, {
      queue_state: 'started',
      parameters,
      client: 'acme',
      workflow: 'wf',
    });
    const { rows: tasks } = await store.db.query<{ id: number }>(
      `INSERT INTO tasks (job_id, name, position, queue, state, attempts, run_after)
       VALUES ($1, 'it''s', 0, 'bodies', 'ready', 1, now() - interval '1 second') RETURNING id`,
      [jobId],
    );
    const [claimed] = await claimTasks(store.db, ['bodies'], 1, 'test-worker');
    assert.equal(claimed?.job.id, jobId);
    const { rows: attempts } = await store.db.query<{ started_at: Date }>(
      `SELECT started_at FROM attempts WHERE task_id = $1`,
      [tasks[0]!.id],
    );
    const { rows: bodies } = await store.db.query<{ body: unknown }>(
      `SELECT body FROM callback_deliveries WHERE job_id = $1 AND event = 'start'`,
      [jobId],
    );
    assert.deepEqual(
      bodies[0]!.body,
      taskEventBody(
        { id: jobId, workflow: 'wf', content_id: 'cid-1', client: 'acme', resolved_parameters: parameters },
        { id: tasks[0]!.id, name: "it's" },
        'start',
        taskStartedMessage("it's"),
        2,
        attempts[0]!.started_at,
      ),
    );
    const { rows: lines } = await store.db.query<{ message: string }>(
      `SELECT message FROM logs WHERE task_id = $1 ORDER BY id`,
      [tasks[0]!.id],
    );
    assert.equal(lines.at(-1)?.message, taskStartedLine("it's", 2));
  });
});
