/**
 * Retries, timeouts, stalls and stale attempts on both stores (SPEC section 6).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { ManualClock } from '../../src/engine/clock.js';
import { recoverStalledAttempts } from '../../src/engine/maintenance/recover-stalled.js';
import { claimTasks } from '../../src/engine/workers/claim.js';
import { recordFailure, recordSuccess } from '../../src/engine/workers/results.js';
import type { Executor } from '../../src/store/executor.js';
import { startCallbackReceiver, type CallbackReceiver } from '../helpers/callback-receiver.js';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, storeKinds, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';
import { ENGINE_PG_TYPES } from '../../src/store/pg-types.js';

forEachStore('runtime: retries and timeouts', (kind) => {
  let store: TestStore;
  let te: TestEngine;

  before(async () => {
    store = await createTestStore(kind);
    te = await startTestEngine(store, {
      settings: { max_jobs: 10, retry_delay: 0 },
      workflows: {
        // Fails on attempts 1 and 2 (exit 1), succeeds from attempt 3 on.
        flaky: {
          tasks: [
            {
              name: 'flaky',
              run: 'exec',
              with: {
                command: 'sh',
                args: ['-c', 'echo "attempt $TASK_ENGINE_ATTEMPT"; test "$TASK_ENGINE_ATTEMPT" -ge 3'],
              },
              retry_limit: 3,
              retry_delay: 1,
            },
          ],
        },
        doomed: {
          tasks: [
            { name: 'doomed', run: 'fail', with: { message: 'always' }, retry_limit: 1, retry_delay: 0 },
            { name: 'after', run: 'sleep', with: { seconds: 0 } },
          ],
        },
        permanent: {
          tasks: [
            { name: 'bad', run: 'fail', with: { message: 'hopeless', permanent: true }, retry_limit: 5 },
          ],
        },
        slow: {
          tasks: [{ name: 'slow', run: 'sleep', with: { seconds: 10 }, timeout: 1, retry_limit: 0 }],
        },
        long: {
          tasks: [{ name: 'long', run: 'sleep', with: { seconds: 2 }, retry_limit: 2, retry_delay: 0 }],
        },
        // Two branches: `quick` fails the job at once; `late` is running then and fails a second later.
        fanfail: {
          tasks: [
            { name: 'start', run: 'sleep', with: { seconds: 0 } },
            {
              name: 'quick',
              needs: ['start'],
              run: 'fail',
              with: { message: 'broken input' },
              retry_limit: 0,
            },
            {
              name: 'late',
              needs: ['start'],
              run: 'exec',
              with: { command: 'sh', args: ['-c', 'sleep 1; exit 3'] },
              retry_limit: 3,
              retry_delay: 0,
            },
          ],
        },
      },
    });
  });
  after(async () => {
    await te?.stop();
    await store?.dispose();
  });

  it('retries a failing task after retry_delay: fails twice, succeeds on the third attempt (retry_limit 3, retry_delay 1)', async () => {
    const id = await te.submit('flaky');
    const row = await te.waitForState(id, 'completed', 20_000);
    assert.equal(row.failed, false);
    const attempts = await te.attempts(id, 'flaky');
    assert.deepEqual(
      attempts.map((a) => [a.number, a.state]),
      [
        [1, 'failed'],
        [2, 'failed'],
        [3, 'succeeded'],
      ],
    );
    for (let i = 1; i < attempts.length; i++) {
      const gap = attempts[i]!.started_at.getTime() - attempts[i - 1]!.finished_at!.getTime();
      // Honoured to well under a second: not early, and at most 250 ms late.
      assert.ok(
        gap >= 990 && gap <= 1250,
        `attempt ${i + 1} started ${gap} ms after attempt ${i} ended; retry_delay is 1 s`,
      );
    }
    const tasks = await te.tasks(id);
    assert.equal(tasks[0]!.attempts, 3);
    assert.equal(tasks[0]!.output.stdout, 'attempt 3\n');
    const logs = (await te.logs(id)).map((l) => l.message);
    assert.ok(
      logs.some((m) => /retrying in 1s \(attempt 2 of 4\)/.test(m)),
      logs.join('\n'),
    );
    assert.ok(logs.some((m) => /retrying in 1s \(attempt 3 of 4\)/.test(m)));
  });

  it('fails the job once retries are used up (retry_limit 1: two attempts), skipping the rest', async () => {
    const id = await te.submit('doomed');
    const row = await te.waitForState(id, 'completed');
    assert.equal(row.failed, true);
    const attempts = await te.attempts(id, 'doomed');
    assert.deepEqual(
      attempts.map((a) => a.state),
      ['failed', 'failed'],
    );
    const tasks = await te.tasks(id);
    assert.deepEqual(
      tasks.map((t) => t.state),
      ['failed', 'skipped'],
    );
  });

  it('does not start a running task again once another task has failed the job', async () => {
    const id = await te.submit('fanfail');
    const row = await te.waitForState(id, 'completed', 20_000);
    assert.equal(row.failed, true);
    assert.deepEqual(
      (await te.attempts(id, 'late')).map((a) => [a.number, a.state]),
      [[1, 'failed']],
      'late had retries left, but the job had already failed',
    );
    const logs = (await te.logs(id)).map((l) => l.message);
    assert.ok(
      logs.some((m) => m.includes("not retried: task 'quick' has already failed the job")),
      logs.join('\n'),
    );
    assert.ok(
      logs.some((m) => m.startsWith("job has failed: task 'quick' failed")),
      logs.join('\n'),
    );
  });

  it('does not retry a PermanentTaskError', async () => {
    const id = await te.submit('permanent');
    const row = await te.waitForState(id, 'completed');
    assert.equal(row.failed, true);
    assert.equal((await te.attempts(id, 'bad')).length, 1);
  });

  it('fails an attempt that passes its timeout, and stops its handler', async () => {
    const id = await te.submit('slow');
    const t0 = Date.now();
    const row = await te.waitForState(id, 'completed', 8_000);
    const took = Date.now() - t0;
    assert.equal(row.failed, true);
    const [attempt] = await te.attempts(id, 'slow');
    assert.equal(attempt!.state, 'failed');
    assert.equal(attempt!.error, 'timed out after 1s');
    assert.ok(took < 5_000, `a 1 s timeout ended a 10 s sleep after ${took} ms`);
  });

  it('recovers a stalled attempt as a failure, and the stale attempt can never overwrite the newer one', async () => {
    const id = await te.submit('long');
    const [task] = await waitFor(async () => {
      const ts = await te.tasks(id);
      return ts[0]?.state === 'running' ? ts : null;
    });
    const [first] = await te.attempts(id, 'long');
    // Pretend its worker died: the heartbeat is older than stall_timeout.
    await store.db.query(`UPDATE attempts SET heartbeat_at = now() - interval '1 hour' WHERE id = $1`, [
      first!.id,
    ]);
    assert.equal(await recoverStalledAttempts(te.engine.ctx), 1);
    const stalled = (await te.attempts(id, 'long'))[0]!;
    assert.equal(stalled.state, 'stalled');
    assert.match(stalled.error!, /no heartbeat/);
    // A second recovery pass finds nothing more to do.
    assert.equal(await recoverStalledAttempts(te.engine.ctx), 0);

    const row = await te.waitForState(id, 'completed', 10_000);
    assert.equal(row.failed, false);
    const attempts = await te.attempts(id, 'long');
    assert.deepEqual(
      attempts.map((a) => a.state),
      ['stalled', 'succeeded'],
    );
    // The first attempt's late answer is dropped: nothing of the task changes.
    const before = (await te.tasks(id))[0]!;
    const outcome = await recordSuccess(
      te.engine.ctx,
      { attemptId: first!.id, taskId: task!.id, jobId: id },
      { late: true },
    );
    assert.equal(outcome, 'stale');
    const afterwards = (await te.tasks(id))[0]!;
    assert.deepEqual(afterwards.output, before.output);
    assert.equal(afterwards.state, 'succeeded');
    assert.equal((await te.attempts(id, 'long'))[0]!.state, 'stalled');
  });
});

void describe(
  'runtime: a final failure racing with a claim of a ready sibling [postgres]',
  { skip: storeKinds().includes('postgres') ? false : 'needs TEST_DATABASE_URL' },
  () => {
    let store: TestStore;
    let te: TestEngine;
    let receiver: CallbackReceiver;

    before(async () => {
      store = await createTestStore('postgres');
      receiver = await startCallbackReceiver();
      // Controller only: nothing claims the tasks but the test itself.
      te = await startTestEngine(store, {
        roles: ['controller'],
        settings: { max_jobs: 10 },
        workflows: {
          pair: {
            parameters: { type: 'object', properties: { rest_endpoints: { type: 'array' } } },
            tasks: [
              { name: 'a', needs: [], run: 'fail', with: { message: 'bad input' }, retry_limit: 0 },
              { name: 'b', needs: [], run: 'sleep', with: { seconds: 0 } },
            ],
          },
        },
      });
    });
    after(async () => {
      await te?.stop();
      await receiver?.close();
      await store?.dispose();
    });

    it(
      'does not claim a task of a job whose pause is being written (max_jobs is never exceeded)',
      { timeout: 30_000 },
      async () => {
        const id = await te.submit('pair', {});
        await waitFor(async () => (await te.tasks(id)).every((t) => t.state === 'ready'));
        // A second connection holds the job row as a pause does (control.ts locks it FOR UPDATE).
        const other = new pg.Client({ connectionString: store.databaseUrl!, types: ENGINE_PG_TYPES });
        await other.connect();
        try {
          await other.query('BEGIN');
          await other.query(`SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE`, [id]);
          assert.deepEqual(
            await claimTasks(store.db, ['work'], 5, 'test-worker'),
            [],
            'a task of a job being paused was claimed',
          );
          await other.query(`UPDATE jobs SET queue_state = 'paused' WHERE id = $1`, [id]);
          await other.query('COMMIT');
          // Paused now: nothing of it is claimed, so its slot stays free as the pause said.
          assert.deepEqual(await claimTasks(store.db, ['work'], 5, 'test-worker'), []);
          assert.ok((await te.tasks(id)).every((t) => t.state === 'ready'));
        } finally {
          await other.query('ROLLBACK').catch(() => undefined);
          await other.end();
        }
        // Broken, so the suite's other jobs are not held up by it.
        await store.db.query(`UPDATE jobs SET queue_state = 'broken', finished_at = now() WHERE id = $1`, [
          id,
        ]);
      },
    );

    it('does not finish the job while a sibling claimed during the failure still runs', async () => {
      const id = await te.submit('pair', { rest_endpoints: [receiver.url('/hook')] });
      await waitFor(async () => (await te.tasks(id)).every((t) => t.state === 'ready'));
      const [claimedA] = await claimTasks(store.db, ['work'], 1, 'test-worker');
      assert.equal(claimedA?.name, 'a');
      const taskB = (await te.tasks(id)).find((t) => t.name === 'b')!;

      // A second connection runs the real claim statement for `b`, with `b` locked first so
      // that the claim commits while the failure of `a` is being written.
      const other = new pg.Client({ connectionString: store.databaseUrl!, types: ENGINE_PG_TYPES });
      await other.connect();
      try {
        await other.query('BEGIN');
        await other.query(`SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE`, [taskB.id]);
        const failing = recordFailure(
          te.engine.ctx,
          { attemptId: claimedA.attemptId, taskId: claimedA.taskId, jobId: id },
          { error: 'bad input', permanent: true },
        );
        // The failure has read `b` as ready and now waits for `b`'s row to skip it.
        await waitFor(async () => {
          const { rows } = await store.db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%skipped%'`,
          );
          return rows[0]!.n > 0;
        });
        const viaOther = { query: (sql: string, params: unknown[]) => other.query(sql, params) };
        const [claimedB] = await claimTasks(viaOther as unknown as Executor, ['work'], 5, 'test-worker');
        assert.equal(claimedB?.name, 'b');
        await other.query('COMMIT');
        assert.equal(await failing, 'failed');

        // `b` runs: the job holds on until it ends, as for any task running when a sibling fails.
        assert.equal((await te.tasks(id)).find((t) => t.name === 'b')!.state, 'running');
        assert.equal((await te.job(id)).queue_state, 'started', 'the job finished while b was running');

        assert.equal(
          await recordSuccess(
            te.engine.ctx,
            { attemptId: claimedB.attemptId, taskId: claimedB.taskId, jobId: id },
            { done: true },
          ),
          'recorded',
        );
        const row = await te.job(id);
        assert.equal(row.queue_state, 'completed');
        assert.equal(row.failed, true);
        const { rows: cbs } = await store.db.query<{ kind: string; event: string; task_id: number }>(
          `SELECT kind, event, task_id FROM callback_deliveries WHERE job_id = $1 ORDER BY id`,
          [id],
        );
        assert.deepEqual(
          cbs.map(
            (c) => `${c.kind}:${c.event}:${c.task_id === taskB.id ? 'b' : c.task_id === 0 ? '-' : 'a'}`,
          ),
          ['task:start:a', 'task:fail:a', 'task:start:b', 'task:complete:b', 'job:failed:-'],
        );
      } finally {
        await other.query('ROLLBACK').catch(() => undefined);
        await other.end();
      }
    });
  },
);

forEachStore('runtime: attempt outcomes take their time from the engine clock', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  const clock = new ManualClock(Date.UTC(2031, 4, 6, 7, 8, 9, 123));

  before(async () => {
    store = await createTestStore(kind);
    // Controller only: the test claims the tasks and records their outcomes itself.
    te = await startTestEngine(store, {
      roles: ['controller'],
      settings: { max_jobs: 10 },
      workflows: {
        once: {
          parameters: { type: 'object', properties: { rest_endpoints: { type: 'array' } } },
          tasks: [{ name: 'only', run: 'fail', with: { message: 'x' }, retry_limit: 1, retry_delay: 7 }],
        },
      },
    });
  });
  after(async () => {
    await te?.stop();
    await store?.dispose();
  });

  const claimOnly = async (id: number) => {
    await waitFor(async () => (await te.tasks(id))[0]?.state === 'ready');
    // Claimed once it is due by the claim's clock (the engine's, not the database's `now()`).
    const claimed = await waitFor(async () => (await claimTasks(store.db, ['work'], 1, 'test-worker'))[0], {
      timeoutMs: 10_000,
      what: `the task of job ${id} to be claimed`,
    });
    return { attemptId: claimed.attemptId, taskId: claimed.taskId, jobId: id };
  };

  it('a retry is due retry_delay after the clock’s now; a final failure finishes the job at it', async () => {
    const ctx = { ...te.engine.ctx, clock };
    const id = await te.submit('once', { rest_endpoints: ['http://127.0.0.1:9/hook'] });
    const first = await claimOnly(id);
    assert.equal(await recordFailure(ctx, first, { error: 'exit 1' }), 'retry');
    const [attempt] = await te.attempts(id, 'only');
    assert.equal(attempt!.finished_at!.getTime(), clock.now().getTime());
    const { rows } = await store.db.query<{ run_after: Date }>(`SELECT run_after FROM tasks WHERE id = $1`, [
      first.taskId,
    ]);
    assert.equal(rows[0]!.run_after.getTime(), clock.now().getTime() + 7_000);

    // Due now for the claim (which still reads the database's time).
    await store.db.query(`UPDATE tasks SET run_after = now() WHERE id = $1`, [first.taskId]);
    const second = await claimOnly(id);
    await clock.advance(60_000);
    assert.equal(await recordFailure(ctx, second, { error: 'exit 1' }), 'failed');
    const job = await te.job(id);
    assert.equal(job.queue_state, 'completed');
    assert.equal(job.finished_at!.getTime(), clock.now().getTime());
    const { rows: cbs } = await store.db.query<{ kind: string; body: { time: string } }>(
      `SELECT kind, body FROM callback_deliveries WHERE job_id = $1 AND (kind = 'job' OR event = 'fail') ORDER BY id`,
      [id],
    );
    assert.deepEqual(
      cbs.map((c) => [c.kind, c.body.time]),
      [
        ['task', clock.now().toISOString()],
        ['job', clock.now().toISOString()],
      ],
    );
  });
});
