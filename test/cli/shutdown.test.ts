/**
 * Stopping `task-engine serve` (PostgreSQL): SIGTERM lets a running attempt go on within
 * `TASK_ENGINE_SHUTDOWN_GRACE_SECONDS`; a second SIGTERM hands it back at once (task `ready`
 * again, attempt `cancelled`, no retry used), and the process exits 0 with its `workers` row
 * marked stopped.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCli } from '../helpers/cli.js';
import { createTestStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const ADMIN = 'ops';
const KEY = 'shutdown-test-key-0123456789';

void describe(
  'task-engine serve: shutdown grace and hand-back',
  { skip: !process.env.TEST_DATABASE_URL && 'TEST_DATABASE_URL is not set' },
  () => {
    let store: TestStore;
    before(async () => {
      store = await createTestStore('postgres');
    });
    after(() => store.dispose());

    void test('a second SIGTERM hands the running attempt back at once instead of waiting out the grace', async () => {
      const serve = startCli(['serve'], {
        DATABASE_URL: store.databaseUrl!,
        TASK_ENGINE_PORT: '0',
        TASK_ENGINE_ADMIN_CLIENT: ADMIN,
        TASK_ENGINE_ADMIN_API_KEY: KEY,
        TASK_ENGINE_SHUTDOWN_GRACE_SECONDS: '120',
      });
      const { child } = serve;
      try {
        const url = await waitFor(() => /listening on (http:\/\/\S+)/.exec(serve.stdout())?.[1], {
          timeoutMs: 90_000,
          what: `serve to listen (${serve.stderr()})`,
        });
        const res = await fetch(`${url}/job`, {
          method: 'POST',
          headers: { client: ADMIN, 'api-key': KEY, 'content-type': 'application/json' },
          body: JSON.stringify({
            job: { workflow: 'demo' },
            parameters: { content_id: 'long', seconds: 300 },
          }),
        });
        const { id } = (await res.json()) as { id: number };
        await waitFor(
          async () =>
            (
              await store.db.query(
                "SELECT 1 FROM tasks WHERE job_id = $1 AND name = 'wait' AND state = 'running'",
                [id],
              )
            ).rowCount === 1,
          { timeoutMs: 30_000, what: 'the wait task to run' },
        );
        child.kill('SIGTERM');
        await waitFor(() => /stopping \(running task attempts may finish within 120 s/.test(serve.stderr()), {
          timeoutMs: 10_000,
          what: 'the first SIGTERM to be acknowledged',
        });
        await new Promise((r) => setTimeout(r, 1000));
        assert.equal(child.exitCode, null, 'within the grace period the engine waits for the attempt');
        const second = Date.now();
        child.kill('SIGTERM');
        assert.equal(await serve.exited, 0, serve.stderr());
        assert.ok(Date.now() - second < 15_000, 'the second SIGTERM did not wait out the grace period');
        assert.match(serve.stderr(), /handing running task attempts back now/);

        const task = await store.db.query<{ state: string; attempts: number }>(
          "SELECT state, attempts FROM tasks WHERE job_id = $1 AND name = 'wait'",
          [id],
        );
        assert.equal(task.rows[0]!.state, 'ready', 'the task is ready for another engine');
        const attempt = await store.db.query<{ state: string }>(
          "SELECT a.state FROM attempts a JOIN tasks t ON t.id = a.task_id WHERE t.job_id = $1 AND t.name = 'wait'",
          [id],
        );
        assert.deepEqual(
          attempt.rows.map((r) => r.state),
          ['cancelled'],
        );
        const stopped = await store.db.query(
          'SELECT 1 FROM workers WHERE pid = $1 AND stopped_at IS NOT NULL',
          [child.pid],
        );
        assert.equal(stopped.rowCount, 1, 'its workers row is marked stopped');
      } finally {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await serve.exited;
        }
      }
    });
  },
);
