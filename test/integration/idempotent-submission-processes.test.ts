/**
 * `job.idempotency_key` across engine processes: two real `task-engine serve` processes (API role)
 * on one PostgreSQL database receive the same key at the same moment, and exactly one job is
 * made; every reply, from either process, answers its id. PostgreSQL only (an embedded database
 * belongs to one process).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createClient } from '../../src/engine/clients/clients.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = path.join(ROOT, 'src/cli/main.ts');
const hasPostgres = storeKinds().includes('postgres');

interface Server {
  child: ChildProcess;
  url: string;
  output(): string;
}

/** Starts `task-engine serve` with the API role only, on a free port, against `databaseUrl`. */
async function startServer(databaseUrl: string, workflowsDir: string): Promise<Server> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('TASK_ENGINE_') && k !== 'DATABASE_URL') env[k] = v;
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve'], {
    cwd: ROOT,
    env: {
      ...env,
      DATABASE_URL: databaseUrl,
      TASK_ENGINE_ROLES: 'api',
      TASK_ENGINE_PORT: '0',
      TASK_ENGINE_WORKFLOWS_DIR: workflowsDir,
      TASK_ENGINE_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'te-idem-')),
      TASK_ENGINE_LOG_LEVEL: 'warn',
    },
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const url = await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}: ${out}`);
      return /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
    },
    { timeoutMs: 60_000, what: 'serve to print its URL' },
  );
  return { child, url, output: () => out };
}

async function stopServer(s: Server): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = new Promise((resolve) => s.child.once('exit', resolve));
  s.child.kill('SIGTERM');
  await exited;
}

void describe(
  'idempotent submission across engine processes [postgres]',
  { skip: hasPostgres ? false : 'needs TEST_DATABASE_URL' },
  () => {
    let store: TestStore;
    const servers: Server[] = [];
    let headers: Record<string, string>;
    // A workflows folder as the real loader reads it.
    const workflowsDir = mkdtempSync(path.join(tmpdir(), 'te-idem-workflows-'));
    mkdirSync(path.join(workflowsDir, 'common'));
    writeFileSync(
      path.join(workflowsDir, 'common', 'pair.json'),
      JSON.stringify({
        name: 'pair',
        tasks: [
          { name: 'one', run: 'sleep', with: { seconds: 0 } },
          { name: 'two', run: 'sleep', with: { seconds: 0 } },
        ],
      }),
    );

    before(async () => {
      store = await createTestStore('postgres');
      const c = await createClient(store.db, { name: 'acme' });
      headers = { client: 'acme', 'api-key': c.api_key, 'content-type': 'application/json' };
      // Each is kept as soon as it runs, so `after` stops it even when the other fails to start.
      await Promise.all(
        [0, 1].map(async () => servers.push(await startServer(store.databaseUrl!, workflowsDir))),
      );
    });
    after(async () => {
      await Promise.all(servers.map(stopServer));
      await store?.dispose();
    });

    it('two engines receiving one key at the same moment make one job, and all replies answer its id', async () => {
      const perServer = 10;
      for (let round = 0; round < 5; round++) {
        const key = `race-${round}`;
        const body = JSON.stringify({
          job: { workflow: 'pair', idempotency_key: key },
          parameters: { round },
        });
        const replies = await Promise.all(
          servers.flatMap((s) =>
            Array.from({ length: perServer }, async () => {
              const res = await fetch(`${s.url}/job`, { method: 'POST', headers, body });
              return { status: res.status, body: (await res.json()) as { id?: number; result?: string } };
            }),
          ),
        );
        for (const r of replies) assert.equal(r.status, 200, JSON.stringify(r.body));
        const ids = new Set(replies.map((r) => r.body.id));
        assert.equal(ids.size, 1, `round ${round}: one id, got ${[...ids].join(', ')}`);
        const { rows } = await store.db.query<{ n: number; tasks: number }>(
          `SELECT count(*)::int AS n, (SELECT count(*)::int FROM tasks t JOIN jobs j ON j.id = t.job_id
                                        WHERE j.idempotency_key = $1) AS tasks
             FROM jobs WHERE client = 'acme' AND idempotency_key = $1`,
          [key],
        );
        assert.deepEqual(rows[0], { n: 1, tasks: 2 }, `round ${round}: one job with its two tasks`);
        assert.equal(
          Number(
            (
              await store.db.query(`SELECT job_id FROM job_idempotency_keys WHERE idempotency_key = $1`, [
                key,
              ])
            ).rows[0]!.job_id,
          ),
          [...ids][0],
        );
      }
      const total = await store.db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs');
      assert.equal(total.rows[0]!.n, 5, 'five keys, five jobs');
    });
  },
);
