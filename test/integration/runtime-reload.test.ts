/**
 * A workflow reload that names a new queue: the running workers take it at once (no restart),
 * and the process's `workers` row and /health say so.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/api/build-server.js';
import { createClient } from '../../src/engine/clients/clients.js';
import { loadCatalog } from '../../src/workflows/catalog.js';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';

const workflow = (name: string, queue: string): string =>
  `name: ${name}\ntasks:\n  - name: only\n    queue: ${queue}\n    run: sleep\n    with: { seconds: 0 }\n`;

forEachStore('runtime: reload adds new queues to the running workers', (kind) => {
  let store: TestStore;
  let dir: string;
  let te: TestEngine;
  let pinned: TestEngine;
  let app: FastifyInstance;
  let headers: Record<string, string>;

  before(async () => {
    store = await createTestStore(kind);
    dir = await mkdtemp(path.join(tmpdir(), 'te-reload-'));
    await mkdir(path.join(dir, 'common'));
    await writeFile(path.join(dir, 'common', 'hello.yaml'), workflow('hello', 'work'));
    // An engine with its queues configured keeps them, whatever the workflows name. It starts
    // first: on PGlite an engine that starts marks the rows of earlier ones stopped.
    pinned = await startTestEngine(store, { catalog: await loadCatalog(dir), queues: ['work'] });
    te = await startTestEngine(store, { catalog: await loadCatalog(dir) });
    app = buildServer(te.engine.ctx);
    await app.ready();
    const admin = await createClient(store.db, { name: 'root', admin: true });
    headers = { client: 'root', 'api-key': admin.api_key };
  });
  after(async () => {
    await app?.close();
    await pinned?.stop();
    await te?.stop();
    await store?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const rowQueues = async (workerId: string): Promise<string[]> =>
    (await store.db.query<{ queues: string[] }>(`SELECT queues FROM workers WHERE id = $1`, [workerId]))
      .rows[0]!.queues;

  it('runs a job of a workflow added by POST /workflows/reload on a new queue, without a restart', async () => {
    assert.deepEqual(await rowQueues(te.engine.workerId), ['work', 'callback']);
    await writeFile(path.join(dir, 'common', 'fresh.yaml'), workflow('fresh', 'fresh'));
    const res = await app.inject({ method: 'POST', url: '/workflows/reload', headers });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json<{ workflows: string[] }>().workflows, ['fresh', 'hello']);

    // The reply comes after the row is updated: /health tells the truth at once.
    assert.deepEqual(await rowQueues(te.engine.workerId), ['work', 'fresh', 'callback']);
    const health = await app.inject({ method: 'GET', url: '/health', headers });
    assert.equal(health.statusCode, 200, health.body);
    const queues = health.json<{ queues: Record<string, { workers: number }> }>().queues;
    assert.equal(queues.fresh?.workers, 1, JSON.stringify(queues));

    const id = await te.submit('fresh');
    const row = await te.waitForState(id, 'completed', 10_000);
    assert.equal(row.failed, false);
    const [attempt] = await te.attempts(id, 'only');
    assert.equal(attempt!.worker_id, te.engine.workerId);
  });

  it('keeps serving a queue no workflow names any more, so its ready tasks are not stranded', async () => {
    // The pinned engine's catalog takes `fresh` (its jobs are submitted there); then the file goes
    // and this engine reloads a set without it.
    await pinned.catalog.reload();
    await rm(path.join(dir, 'common', 'fresh.yaml'));
    const res = await app.inject({ method: 'POST', url: '/workflows/reload', headers });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json<{ workflows: string[] }>().workflows, ['hello']);
    assert.deepEqual(await rowQueues(te.engine.workerId), ['work', 'fresh', 'callback']);
    const id = await pinned.submit('fresh');
    const row = await te.waitForState(id, 'completed', 10_000);
    assert.equal(row.failed, false);
    assert.equal((await te.attempts(id, 'only'))[0]!.worker_id, te.engine.workerId);
  });

  it('does not change the queues of workers started with TASK_ENGINE_WORKER_QUEUES', async () => {
    assert.deepEqual(await rowQueues(pinned.engine.workerId), ['work', 'callback']);
  });
});
