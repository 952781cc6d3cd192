/**
 * "Why is it waiting?" on both stores: every waiting reason admission and the scheduler decide is
 * produced by a real scenario and asserted by its code, on `GET /jobs/<id>` (the job service),
 * `/dashboard` rows, and `task-engine why <id>` against a listening API.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, it } from 'node:test';
import { buildServer } from '../../src/api/build-server.js';
import { createClient } from '../../src/engine/clients/clients.js';
import { getJob, patchJob } from '../../src/engine/jobs/service.js';
import { postSetting } from '../../src/engine/settings.js';
import { getDashboard } from '../../src/engine/status/dashboard.js';
import type { Waiting } from '../../src/engine/status/waiting.js';
import { runCli } from '../helpers/cli.js';
import { startTestEngine, submitAs, TEST_CLIENT, type TestEngine } from '../helpers/engine.js';
import { startReceiver, type Receiver } from '../helpers/http-receiver.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';
import { FAIR_WORKFLOWS } from './fair-helpers.js';

const admin = { client: TEST_CLIENT, admin: true };

forEachStore('waiting: why a job is not running', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let semaphore: Receiver;

  before(async () => {
    store = await createTestStore(kind);
    for (const name of ['xa', 'yb', 'capped']) await createClient(store.db, { name });
    semaphore = await startReceiver(() => ({ status: 503 }));
    te = await startTestEngine(store, {
      concurrency: 8,
      workflows: FAIR_WORKFLOWS,
      roles: ['controller', 'worker', 'scheduler'],
      start: false,
    });
  });
  afterEach(async () => {
    const { rows } = await store.db.query<{ id: number }>(
      `SELECT id FROM jobs WHERE queue_state IN ('queued', 'started', 'paused', 'scheduled', 'pending')`,
    );
    for (const r of rows)
      await patchJob(te.engine.ctx, admin, String(r.id), { queue_state: 'broken' }).catch(() => undefined);
    await store.db.query('DELETE FROM client_settings');
  });
  after(async () => {
    await te?.stop();
    await semaphore?.close();
    await store?.dispose();
  });

  const waiting = async (id: number): Promise<Waiting | null> =>
    (await getJob(te.engine.ctx, admin, String(id))).waiting;
  const hold = (client = TEST_CLIENT, job: Record<string, unknown> = {}) =>
    submitAs(te.engine, 'hold', { seconds: 30 }, job, client);

  it('starting: a queued job with a free slot, before any controller runs', async () => {
    const id = await hold();
    const w = await waiting(id);
    assert.equal(w?.reason, 'starting');
    assert.equal(w?.ahead, 0);
    await te.engine.start();
    await te.waitForState(id, 'started');
    assert.equal(await waiting(id), null, 'a started job whose task runs waits for nothing');
  });

  it('max_jobs_reached names the holders, a paused job with a running task included; ahead counts the queue', async () => {
    await te.setSetting('max_jobs', 2);
    await te.setSetting('priority_slots', 0);
    const a = await hold();
    const b = await hold();
    await te.waitForState(a, 'started');
    await te.waitForState(b, 'started');
    await waitFor(async () => (await te.tasks(a))[0]!.state === 'running', { what: 'a running' });
    await patchJob(te.engine.ctx, admin, String(a), { queue_state: 'paused' });
    const q = [await hold(), await hold(), await hold()];
    const w0 = await waiting(q[0]!);
    assert.equal(w0?.reason, 'max_jobs_reached');
    assert.match(
      w0.detail,
      new RegExp(
        `all 2 slots \\(max_jobs\\) are held, by jobs ${a} \\(paused, a task still running\\), ${b}`,
      ),
    );
    assert.match(w0.detail, /takes the next one to free/);
    assert.deepEqual(await Promise.all(q.map(async (id) => (await waiting(id))?.ahead)), [0, 1, 2]);
    assert.equal((await waiting(q[2]!))?.position, 3);
    const paused = await waiting(a);
    assert.equal(paused?.reason, 'paused');
    assert.match(paused.detail, /its running task hold still holds a slot/);
    // The dashboard rows carry the same answers, from one read for all of them.
    const dash = await getDashboard(te.engine.ctx, admin);
    const rows = new Map(dash.queued.map((r) => [r.id, r.waiting]));
    const timeless = (w: Waiting | null | undefined) => w && { ...w, estimated_start_at: null };
    for (const id of q) assert.deepEqual(timeless(rows.get(id)), timeless(await waiting(id)));
    // A started row whose task runs waits for nothing.
    await waitFor(async () => (await te.tasks(b))[0]!.state === 'running', { what: 'b running' });
    const runningRow = (await getDashboard(te.engine.ctx, admin)).started.find((r) => r.id === b);
    assert.ok(runningRow, 'the running job is a started row');
    assert.equal(runningRow.waiting, null, 'a started row whose task runs waits for nothing');
  });

  it('reserved_for_priority: the free slot is kept for priority jobs', async () => {
    await te.setSetting('max_jobs', 2);
    await te.setSetting('priority_slots', 1);
    const low = await hold(TEST_CLIENT, { priority: 8 });
    await te.waitForState(low, 'started');
    const second = await hold(TEST_CLIENT, { priority: 8 });
    const w = await waiting(second);
    assert.equal(w?.reason, 'reserved_for_priority');
    assert.match(w.detail, /reserved for priority jobs \(priority_slots 1\); this job has priority 8/);
  });

  it('client_quota: the client holds its own max_jobs', async () => {
    await te.setSetting('max_jobs', 4);
    await te.setSetting('priority_slots', 0);
    await postSetting(te.engine.ctx, { name: 'max_jobs', setting: 1, client: 'capped' });
    const first = await hold('capped');
    await te.waitForState(first, 'started');
    const second = await hold('capped');
    const w = await waiting(second);
    assert.equal(w?.reason, 'client_quota');
    assert.match(
      w.detail,
      new RegExp(`client "capped" holds 1 of its 1 slot \\(its own max_jobs\\), by jobs ${first}`),
    );
  });

  it('fair_share: the next slot goes to a client further below its share, though this job is older', async () => {
    await te.setSetting('max_jobs', 2);
    await te.setSetting('priority_slots', 0);
    const x1 = await hold('xa');
    const x2 = await hold('xa');
    await te.waitForState(x1, 'started');
    await te.waitForState(x2, 'started');
    const x3 = await hold('xa');
    const y1 = await hold('yb');
    const w = await waiting(x3);
    assert.equal(w?.reason, 'fair_share');
    assert.match(
      w.detail,
      /goes to client "yb" \(0 slots held at weight 1\), further below its share than "xa" \(2 slots held at weight 1\)/,
    );
    assert.equal(w?.ahead, 1, 'yb goes first');
    const wy = await waiting(y1);
    assert.equal(wy?.reason, 'max_jobs_reached');
    assert.equal(wy?.ahead, 0);
  });

  it('concurrency_key: another job holds the key', async () => {
    await te.setSetting('max_jobs', 4);
    const first = await te.submit('keyed', { content_id: 'c1', seconds: 30 });
    await te.waitForState(first, 'started');
    const second = await te.submit('keyed', { content_id: 'c1', seconds: 30 });
    const w = await waiting(second);
    assert.equal(w?.reason, 'concurrency_key');
    assert.match(
      w.detail,
      new RegExp(`concurrency key "content-c1" is held by 1 job \\(limit 1\\): ${first}`),
    );
    assert.equal(w?.estimated_start_at, null);
  });

  it('paused, scheduled_run_at and semaphore_closed (last answer and next check)', async () => {
    await te.setSetting('max_jobs', 4);
    const runAt = new Date(Date.now() + 3_600_000).toISOString();
    const later = await hold(TEST_CLIENT, { run_at: runAt });
    const w = await waiting(later);
    assert.equal(w?.reason, 'scheduled_run_at');
    assert.equal(w?.estimated_start_at, runAt);

    const gated = await hold(TEST_CLIENT, { semaphore_url: `${semaphore.url}/gate` });
    const answered = await waitFor(
      async () => {
        const x = await waiting(gated);
        return x && /answered HTTP 503/.test(x.detail) ? x : null;
      },
      { timeoutMs: 20_000, what: 'the semaphore answer recorded' },
    );
    assert.equal(answered.reason, 'semaphore_closed');
    assert.match(answered.detail, /\/gate answered HTTP 503 at .*; next check at \d{4}-/);

    const queuedThenPaused = await hold(TEST_CLIENT, { run_at: runAt });
    await patchJob(te.engine.ctx, admin, String(queuedThenPaused), { queue_state: 'paused' });
    const p = await waiting(queuedThenPaused);
    assert.equal(p?.reason, 'paused');
    assert.doesNotMatch(p.detail, /still hold/);
  });

  it('estimated_start_at comes from the recent rate of slots freeing; task-engine why prints the answer', async () => {
    await te.setSetting('max_jobs', 1);
    // Slots freed recently (jobs broken after starting in the tests above count, as do these).
    const quick = await te.submit('quick');
    await te.waitForState(quick, 'completed');
    const blocker = await hold();
    await te.waitForState(blocker, 'started');
    const queued = await hold();
    const w = await waiting(queued);
    assert.equal(w?.reason, 'max_jobs_reached');
    assert.ok(
      w?.estimated_start_at && Date.parse(w.estimated_start_at) > Date.now() - 5_000,
      String(w?.estimated_start_at),
    );

    const root = await createClient(store.db, { name: 'why-admin', admin: true });
    const app = buildServer(te.engine.ctx);
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      const run = await runCli(
        ['why', String(queued), '--url', url, '--client', 'why-admin', '--api-key', root.api_key],
        {},
      );
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`job ${queued} is queued: max_jobs_reached`));
      assert.match(run.stdout, new RegExp(`held, by jobs ${blocker}`));
      assert.match(run.stdout, /ahead: 0 jobs start before it/);
      const http = await app.inject({
        method: 'GET',
        url: `/jobs/${queued}`,
        headers: { client: 'why-admin', 'api-key': root.api_key },
      });
      assert.equal((JSON.parse(http.body) as { waiting: Waiting }).waiting.reason, 'max_jobs_reached');
    } finally {
      await app.close();
    }
  });
});
