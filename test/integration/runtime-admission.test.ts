/**
 * Admission on both stores (SPEC 5.4): the `max_jobs` cap, slots reserved for priority jobs, an
 * ineligible head skipped, and the priority order.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, it } from 'node:test';
import { patchJob } from '../../src/engine/jobs/service.js';
import { startTestEngine, TEST_CLIENT, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { sampleMaxStarted } from '../helpers/sample-started.js';
import { waitFor } from '../helpers/wait-for.js';

const admin = { client: TEST_CLIENT, admin: true };

forEachStore('runtime: admission', (kind) => {
  let store: TestStore;
  let te: TestEngine;

  before(async () => {
    store = await createTestStore(kind);
    te = await startTestEngine(store, {
      concurrency: 8,
      workflows: {
        hold: {
          parameters: { type: 'object', properties: { seconds: { type: 'number' } } },
          tasks: [{ name: 'hold', run: 'sleep', with: { seconds: '{{ parameters.seconds }}' } }],
        },
      },
    });
  });
  afterEach(async () => {
    // Break whatever is still live so the next test starts with free slots.
    const { rows } = await store.db.query<{ id: number }>(
      `SELECT id FROM jobs WHERE queue_state IN ('queued', 'started', 'paused', 'scheduled', 'pending')`,
    );
    for (const r of rows)
      await patchJob(te.engine.ctx, admin, String(r.id), { queue_state: 'broken' }).catch(() => undefined);
  });
  after(async () => {
    await te?.stop();
    await store?.dispose();
  });

  const started = async (): Promise<number[]> =>
    (
      await store.db.query<{ id: number }>(`SELECT id FROM jobs WHERE queue_state = 'started' ORDER BY id`)
    ).rows.map((r) => r.id);

  it('never starts more than max_jobs: ten 1-second jobs with max_jobs 2, sampled every 50 ms', async () => {
    await te.setSetting('max_jobs', 2);
    await te.setSetting('priority_slots', 0);
    const ids: number[] = [];
    for (let i = 0; i < 10; i++) ids.push(await te.submit('hold', { seconds: 1 }));
    const { max, samples } = await sampleMaxStarted(store.db, ids, { intervalMs: 50, timeoutMs: 30_000 });
    assert.equal(max, 2, `at most 2 started at once (max seen ${max} over ${samples} samples)`);
    for (const id of ids) assert.equal((await te.job(id)).failed, false);
  });

  it('keeps reserved slots for priority jobs: a 4th priority-8 job waits while a priority-2 starts at once', async () => {
    await te.setSetting('max_jobs', 5);
    await te.setSetting('priority_slots', 2);
    await te.setSetting('priority_threshold', 5);
    const low = [];
    for (let i = 0; i < 3; i++) low.push(await te.submit('hold', { seconds: 30 }, { priority: 8 }));
    await waitFor(async () => (await started()).length === 3, { what: 'three priority-8 jobs started' });
    const fourth = await te.submit('hold', { seconds: 30 }, { priority: 8 });
    const urgent = await te.submit('hold', { seconds: 30 }, { priority: 2 });
    await te.waitForState(urgent, 'started', 3_000);
    // Give admission every chance to (wrongly) start the fourth low-priority job.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await te.job(fourth)).queue_state, 'queued');
    assert.deepEqual(
      await started(),
      [...low, urgent].sort((a, b) => a - b),
    );
  });

  it('skips an ineligible head: with only reserved slots free, the priority-3 job behind a top-of-queue priority-8 starts', async () => {
    await te.setSetting('max_jobs', 3);
    await te.setSetting('priority_slots', 1);
    await te.setSetting('priority_threshold', 5);
    const a = await te.submit('hold', { seconds: 30 }, { priority: 8 });
    const b = await te.submit('hold', { seconds: 30 }, { priority: 8 });
    await waitFor(async () => (await started()).length === 2, { what: 'two general slots used' });
    const head = await te.submit('hold', { seconds: 30 }, { priority: 8, top_of_queue: true });
    const behind = await te.submit('hold', { seconds: 30 }, { priority: 3 });
    await te.waitForState(behind, 'started', 3_000);
    assert.equal((await te.job(head)).queue_state, 'queued');
    assert.deepEqual(await started(), [a, b, behind]);
  });

  it('starts waiting jobs by priority, then FIFO: 7, 3, 5 behind a blocker start as 3, 5, 7', async () => {
    await te.setSetting('max_jobs', 1);
    await te.setSetting('priority_slots', 0);
    const blocker = await te.submit('hold', { seconds: 0.5 });
    await te.waitForState(blocker, 'started');
    const p7 = await te.submit('hold', { seconds: 0.1 }, { priority: 7 });
    const p3 = await te.submit('hold', { seconds: 0.1 }, { priority: 3 });
    const p5 = await te.submit('hold', { seconds: 0.1 }, { priority: 5 });
    const p5b = await te.submit('hold', { seconds: 0.1 }, { priority: 5 });
    for (const id of [p7, p3, p5, p5b]) await te.waitForState(id, 'completed', 10_000);
    const rows = await Promise.all([p3, p5, p5b, p7].map((id) => te.job(id)));
    const order = [...rows]
      .sort((x, y) => x.started_at!.getTime() - y.started_at!.getTime())
      .map((r) => r.id);
    assert.deepEqual(order, [p3, p5, p5b, p7]);
  });

  it('re-orders a queued job at once when PATCH changes its priority (SPEC 5.3)', async () => {
    await te.setSetting('max_jobs', 1);
    await te.setSetting('priority_slots', 0);
    const blocker = await te.submit('hold', { seconds: 0.5 });
    await te.waitForState(blocker, 'started');
    const first = await te.submit('hold', { seconds: 0.1 }, { priority: 5 });
    const second = await te.submit('hold', { seconds: 0.1 }, { priority: 5 });
    // FIFO would start `first`; raising `second` to priority 1 while both wait puts it ahead.
    await patchJob(te.engine.ctx, admin, String(second), { priority: '1' });
    for (const id of [first, second]) await te.waitForState(id, 'completed', 10_000);
    const [a, b] = await Promise.all([te.job(first), te.job(second)]);
    assert.equal(b.priority, 1);
    assert.ok(b.started_at! < a.started_at!, 'the re-prioritised job started first');
  });

  it('keeps admitting when max_jobs is set absurdly high (a pass is capped, not the cap)', async () => {
    await te.setSetting('priority_slots', 0);
    await te.setSetting('max_jobs', '99999999999999999999');
    const id = await te.submit('hold', { seconds: 0 });
    const row = await te.waitForState(id, 'completed', 5_000);
    assert.equal(row.failed, false);
  });
});
