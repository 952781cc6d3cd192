/**
 * The worker pool keeps one time, the engine's clock: a delayed ready task is due when the
 * clock (not the database's `now()`) passes its `run_after`, the pool's timer for it runs on the
 * clock, and the attempt's start and heartbeat are stamped with the clock's time.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { ManualClock } from '../../src/engine/clock.js';
import { createWorkerPool, type WorkerPool } from '../../src/engine/workers/worker-pool.js';
import { insertJob, testContext } from '../helpers/factories.js';
import { toDefinition } from '../helpers/fixture-catalog.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

/** Longer than any test: the poll and heartbeat timers never fire on their own. */
const NEVER_MS = 3_600_000;

forEachStore('runtime: the worker pool on the engine clock', (kind) => {
  let store: TestStore;
  let pool: WorkerPool | null = null;

  before(async () => {
    store = await createTestStore(kind);
  });
  after(async () => {
    await pool?.stop();
    await store?.dispose();
  });

  it('claims a delayed task when the clock reaches its run_after, by the timer it armed for it', async () => {
    // An hour ahead of the database's own time, so nothing here can be due by `now()`.
    const clock = new ManualClock(Date.now() + 3_600_000);
    const start = clock.now().getTime();
    const definition = {
      ...toDefinition('later', { tasks: [{ name: 'only', run: 'sleep', with: { seconds: 0 } }] }),
    };
    const jobId = await insertJob(store.db, { workflow: 'later', queue_state: 'started', definition });
    const { rows } = await store.db.query<{ id: number }>(
      `INSERT INTO tasks (job_id, name, position, queue, state, run_after)
       VALUES ($1, 'only', 0, 'work', 'ready', $2) RETURNING id`,
      [jobId, new Date(start + 30_000)],
    );
    const taskId = rows[0]!.id;
    const task = async () =>
      (
        await store.db.query<{ state: string; started_at: Date | null }>(
          `SELECT state, started_at FROM tasks WHERE id = $1`,
          [taskId],
        )
      ).rows[0]!;

    pool = createWorkerPool(testContext(store.db, { clock }), {
      workerId: 'clock-test',
      queues: ['work'],
      concurrency: 1,
      pollIntervalMs: NEVER_MS,
      heartbeatIntervalMs: NEVER_MS,
    });
    await pool.start();
    // The first pass finds nothing due and arms a timer for the task's run_after (2 ms late).
    await waitFor(() => clock.nextTimerAt() === start + 30_002, { what: 'the due timer to be armed' });
    assert.equal((await task()).state, 'ready');

    await clock.advance(29_000);
    assert.equal((await task()).state, 'ready', 'not due before its run_after');

    await clock.advance(1_002);
    await waitFor(async () => (await task()).state === 'succeeded', { what: 'the task to run' });
    assert.equal((await task()).started_at?.getTime(), start + 30_002, 'started at the clock time');
    const attempt = await store.db.query<{ started_at: Date; heartbeat_at: Date }>(
      `SELECT started_at, heartbeat_at FROM attempts WHERE task_id = $1`,
      [taskId],
    );
    assert.equal(attempt.rows[0]!.started_at.getTime(), start + 30_002);
    assert.equal(attempt.rows[0]!.heartbeat_at.getTime(), start + 30_002);
    await pool.stop();
    pool = null;
  });
});
