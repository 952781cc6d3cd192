/**
 * `task-engine worker` as a real process against PostgreSQL: it registers one worker row with the
 * queues and concurrency asked for, and marks it stopped on SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { createTestStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = path.join(ROOT, 'src/cli/main.ts');

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('TASK_ENGINE_') && k !== 'DATABASE_URL') env[k] = v;
  return { ...env, TASK_ENGINE_LOG_LEVEL: 'warn', ...extra };
}

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
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', MAIN, 'worker', '--queues', 'work,slow', '--concurrency', '2'],
        {
          cwd: ROOT,
          env: cleanEnv({ DATABASE_URL: store.databaseUrl! }),
        },
      );
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      try {
        await waitFor(() => /running roles worker/.test(out), {
          timeoutMs: 90_000,
          what: `the worker to start (${err})`,
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
        const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
        child.kill('SIGTERM');
        assert.equal(await exited, 0, err);
        const stopped = await store.db.query(
          'SELECT 1 FROM workers WHERE stopped_at IS NOT NULL AND pid = $1',
          [child.pid],
        );
        assert.equal(stopped.rowCount, 1);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    });
  },
);
