/**
 * `task-engine worker` as a real process against PostgreSQL: it registers one worker row with the
 * queues and concurrency asked for, and marks it stopped on SIGTERM. PostgreSQL only, on purpose:
 * `worker` runs against a database server (it refuses to start without DATABASE_URL, which
 * cli.test.ts checks); an embedded PGlite database belongs to the one process that opened it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCli } from '../helpers/cli.js';
import { createTestStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

void describe(
  'task-engine worker against PostgreSQL',
  { skip: !process.env.TEST_DATABASE_URL && 'TEST_DATABASE_URL is not set' },
  () => {
    let store: TestStore;
    before(async () => {
      store = await createTestStore('postgres');
    });
    after(() => store.dispose());

    void test('worker --queues --concurrency registers one worker row and marks it stopped on SIGTERM', async () => {
      const worker = startCli(['worker', '--queues', 'work,slow', '--concurrency', '2'], {
        DATABASE_URL: store.databaseUrl!,
      });
      const { child } = worker;
      try {
        await waitFor(() => /running roles worker/.test(worker.stdout()), {
          timeoutMs: 90_000,
          what: `the worker to start (${worker.stderr()})`,
        });
        const { rows } = await store.db.query<{
          queues: string[];
          concurrency: number;
          roles: string[];
          pid: number;
        }>('SELECT queues, concurrency, roles, pid FROM workers WHERE stopped_at IS NULL');
        assert.equal(rows.length, 1);
        assert.deepEqual([...rows[0]!.queues].sort(), ['callback', 'slow', 'work']);
        assert.equal(rows[0]!.concurrency, 2);
        assert.deepEqual(rows[0]!.roles, ['worker']);
        assert.equal(rows[0]!.pid, child.pid);
        child.kill('SIGTERM');
        assert.equal(await worker.exited, 0, worker.stderr());
        const stopped = await store.db.query(
          'SELECT 1 FROM workers WHERE stopped_at IS NOT NULL AND pid = $1',
          [child.pid],
        );
        assert.equal(stopped.rowCount, 1);
      } finally {
        if (child.exitCode === null) {
          child.kill('SIGKILL');
          await worker.exited;
        }
      }
    });
  },
);
