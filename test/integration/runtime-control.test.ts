/**
 * Pause, resume, break and graceful shutdown as the runtime sees them, on both stores.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { createEngine } from '../../src/engine/engine.js';
import { patchJob } from '../../src/engine/jobs/service.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import {
  startTestEngine,
  TEST_CLIENT,
  testConfig,
  testEngineOver,
  type TestEngine,
} from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';
import { pino } from 'pino';

const admin = { client: TEST_CLIENT, admin: true };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

forEachStore('runtime: pause, break, shutdown', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  const catalog = createFixtureCatalog({
    two: {
      tasks: [
        { name: 'first', run: 'sleep', with: { seconds: 1 } },
        { name: 'second', run: 'sleep', with: { seconds: 0 } },
      ],
    },
    child: {
      parameters: { type: 'object', properties: { pidfile: { type: 'string' } } },
      tasks: [
        {
          name: 'long',
          run: 'exec',
          with: {
            command: 'sh',
            args: ['-c', 'echo $$ > "$1"; exec sleep 60', 'sh', '{{ parameters.pidfile }}'],
          },
        },
      ],
    },
    nap: {
      tasks: [{ name: 'nap', run: 'sleep', with: { seconds: 3 }, retry_limit: 0 }],
    },
  });

  before(async () => {
    store = await createTestStore(kind);
    te = await startTestEngine(store, { catalog, settings: { max_jobs: 1 } });
  });
  after(async () => {
    await te?.stop();
    await store?.dispose();
  });

  it('pauses during the first task: it finishes once, nothing new starts, the slot is given back; resume finishes the job', async () => {
    const id = await te.submit('two');
    await waitFor(async () => (await te.tasks(id))[0]!.state === 'running', { what: 'first task running' });
    await patchJob(te.engine.ctx, admin, String(id), { queue_state: 'paused' });
    // While its task runs, the paused job still holds the only slot.
    const other = await te.submit('two');
    // Real time on purpose: this proves that nothing happens (no admission) while the first
    // task's handler still runs; no event marks "admission decided not to start it".
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await te.job(other)).queue_state, 'queued');
    // The first task finishes; the second is not started; the slot goes to the other job.
    await waitFor(async () => (await te.tasks(id))[0]!.state === 'succeeded', {
      what: 'first task finished',
    });
    await te.waitForState(other, 'started', 5_000);
    const tasks = await te.tasks(id);
    assert.notEqual(tasks[1]!.state, 'running');
    assert.notEqual(tasks[1]!.state, 'succeeded');
    assert.equal((await te.job(id)).queue_state, 'paused');
    await te.waitForState(other, 'completed', 10_000);

    await patchJob(te.engine.ctx, admin, String(id), { queue_state: 'queued' });
    const row = await te.waitForState(id, 'completed', 10_000);
    assert.equal(row.failed, false);
    const [first, second] = await te.tasks(id);
    assert.equal(first!.attempts, 1);
    assert.equal((await te.attempts(id, 'first')).length, 1);
    assert.equal(second!.state, 'succeeded');
  });

  it('breaking a job during exec stops its child process within 2 s of the PATCH', async () => {
    const pidfile = path.join(mkdtempSync(path.join(tmpdir(), 'te-pid-')), 'pid');
    const id = await te.submit('child', { pidfile });
    const pid = await waitFor(
      () => (existsSync(pidfile) ? Number(readFileSync(pidfile, 'utf8').trim()) || null : null),
      {
        what: 'the child to write its pid',
      },
    );
    assert.ok(alive(pid));
    const t0 = Date.now();
    await patchJob(te.engine.ctx, admin, String(id), { queue_state: 'broken' });
    await waitFor(() => !alive(pid), { timeoutMs: 2_000, intervalMs: 10, what: `process ${pid} to be gone` });
    const took = Date.now() - t0;
    assert.ok(took <= 2_000, `child gone after ${took} ms`);
    assert.equal((await te.job(id)).queue_state, 'broken');
    const [attempt] = await te.attempts(id, 'long');
    assert.equal(attempt!.state, 'cancelled');
    // The worker's slot is free again: another job runs.
    const next = await te.submit('two');
    await te.waitForState(next, 'completed', 10_000);
  });

  it('a graceful stop hands running attempts back without using a retry, and another engine finishes them', async () => {
    const id = await te.submit('nap');
    await waitFor(async () => (await te.tasks(id))[0]!.state === 'running', { what: 'nap running' });
    const t0 = Date.now();
    // The test engine's grace period is 2 s; the nap takes 3 s.
    await te.stop();
    assert.ok(Date.now() - t0 < 4_500, 'stop waited for the grace period only');
    const [task] = await te.tasks(id);
    assert.equal(task!.state, 'ready');
    const [attempt] = await te.attempts(id, 'nap');
    assert.equal(attempt!.state, 'cancelled');
    assert.equal(attempt!.error, 'worker shutdown');
    const worker = await store.db.query<{ stopped_at: Date | null }>(
      `SELECT stopped_at FROM workers WHERE id = $1`,
      [te.engine.workerId],
    );
    assert.ok(worker.rows[0]!.stopped_at);

    // retry_limit is 0, yet the handed-back task runs again and succeeds.
    const engine = await createEngine(
      testConfig({ databaseUrl: store.databaseUrl, workflowsDir: catalog.dir }),
      {
        db: store.db,
        catalog,
        logger: pino({ level: 'silent' }),
      },
    );
    await engine.start();
    te = testEngineOver(engine, store.db, catalog);
    const row = await te.waitForState(id, 'completed', 10_000);
    assert.equal(row.failed, false);
    assert.deepEqual(
      (await te.attempts(id, 'nap')).map((a) => a.state),
      ['cancelled', 'succeeded'],
    );
  });
});
