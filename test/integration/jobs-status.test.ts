import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { rejects } from '../helpers/assertions.js';
import { submitJob } from '../../src/engine/jobs/service.js';
import { getHealth } from '../../src/engine/status/health.js';
import { getDashboard } from '../../src/engine/status/dashboard.js';
import { listSettings, postSetting, readSettings } from '../../src/engine/settings.js';
import { CHANNELS } from '../../src/engine/signals.js';
import { isEngineError } from '../../src/errors/catalogue.js';
import { waitFor } from '../helpers/wait-for.js';
import {
  ACME,
  ADMIN,
  createJobsContext,
  DEMO,
  type JobsTestContext,
  REQUEST,
  setJob,
  taskRows,
} from './jobs-helpers.js';

forEachStore('jobs: health, dashboard, settings', (kind) => {
  let s: TestStore;
  let t: JobsTestContext;
  const j: Record<string, number> = {};

  before(async () => {
    s = await createTestStore(kind);
    t = await createJobsContext(s.db);
    const submit = async (label: string, viewer = DEMO, job: Record<string, unknown> = {}) => {
      j[label] = (
        await submitJob(
          t.ctx,
          viewer,
          { job: { workflow: 'jobs_hello', ...job }, parameters: { content_id: label } },
          REQUEST,
        )
      ).id;
      t.clock.advance(1000);
    };
    await submit('q1', DEMO, { priority: 8 });
    await submit('q2', ACME, { priority: 2 });
    await submit('q3', DEMO, { priority: 2 });
    await submit('s1');
    await submit('s2', ACME);
    await submit('done');
    await submit('fail');
    await submit('br');
    await submit('pau');
    await submit('sch', DEMO, { run_at: '2031-01-01T00:00:00' });
    await submit('pen', DEMO, { semaphore_url: 'http://127.0.0.1:9/s' });
    for (const l of ['s1', 's2'])
      await setJob(s.db, j[l]!, { queue_state: 'started', started_at: t.clock.now() });
    await setJob(s.db, j.done!, { queue_state: 'completed' });
    await setJob(s.db, j.fail!, { queue_state: 'completed', failed: true });
    await setJob(s.db, j.br!, { queue_state: 'broken' });
    await setJob(s.db, j.pau!, { queue_state: 'paused' });
    // Tasks: s1 → succeeded, running, ready; s2 (acme's one-task copy) → failed; done → 3 succeeded.
    const [a, b, c] = await taskRows(s.db, j.s1!);
    await s.db.query(`UPDATE tasks SET state = 'succeeded' WHERE id = $1`, [a!.id]);
    await s.db.query(`UPDATE tasks SET state = 'running' WHERE id = $1`, [b!.id]);
    await s.db.query(`UPDATE tasks SET state = 'ready' WHERE id = $1`, [c!.id]);
    await s.db.query(`UPDATE tasks SET state = 'failed' WHERE job_id = $1`, [j.s2]);
    await s.db.query(`UPDATE tasks SET state = 'succeeded' WHERE job_id = $1`, [j.done]);
    // Workers: one alive with every role, one alive serving jobs_media only, one stopped, one silent.
    const now = t.clock.now();
    const old = new Date(now.getTime() - 60_000);
    await s.db.query(
      `INSERT INTO workers (id, queues, concurrency, host, pid, roles, heartbeat_at, stopped_at) VALUES
       ('h:1:aaaaaa', '{work,jobs_media,callback}', 4, 'h', 1, '{api,controller,scheduler,worker}', $1, NULL),
       ('h:2:bbbbbb', '{jobs_media}', 2, 'h', 2, '{worker}', $1, NULL),
       ('h:3:cccccc', '{work}', 2, 'h', 3, '{worker,controller}', $1, $1),
       ('h:4:dddddd', '{work}', 2, 'h', 4, '{worker,scheduler}', $2, NULL)`,
      [now, old],
    );
    await s.db.query(
      `INSERT INTO callback_deliveries (job_id, kind, event, target_url, body, state, next_attempt_at) VALUES
       ($1, 'task', 'start', 'http://x/1', '{}', 'delivering', $2),
       ($1, 'task', 'start', 'http://x/2', '{}', 'pending', $2),
       ($1, 'task', 'start', 'http://x/3', '{}', 'pending', $3),
       ($1, 'task', 'start', 'http://x/4', '{}', 'delivered', $2)`,
      [j.s1, old, new Date(now.getTime() + 60_000)],
    );
  });
  after(async () => {
    await t.cleanup();
    await s.dispose();
  });

  it('reports health in the seed shape with honest counts from the database', async () => {
    const h = await getHealth(t.ctx, ADMIN);
    assert.equal(h.version, '9.9.9-test');
    assert.deepEqual(h.databases, { postgres: 'OK', redis: 'not used' });
    assert.deepEqual(h.jobs, {
      completed: 1,
      failed: 1,
      pending: 1,
      broken: 1,
      queued: 3,
      started: 2,
      scheduled: 1,
      paused: 1,
      superseded: 0,
      superseded_failed: 0,
      max_jobs: 2,
      priority_slots: 0,
    });
    assert.deepEqual(h.tasks, { failed: 1, pending: 1, processed: 5 });
    assert.deepEqual(Object.keys(h.queues).sort(), [
      'callback',
      'controller',
      'jobs_media',
      'scheduler',
      'work',
    ]);
    assert.deepEqual(h.queues.controller, { workers: 1, working: 0, pending: 3 });
    assert.deepEqual(h.queues.scheduler, { workers: 1, working: 0, pending: 2 });
    assert.deepEqual(h.queues.callback, { workers: 1, working: 1, pending: 1 });
    assert.deepEqual(h.queues.work, { workers: 1, working: 1, pending: 1 });
    assert.deepEqual(h.queues.jobs_media, { workers: 2, working: 0, pending: 0 });
  });

  it('scopes job and task counts to a non-admin client, queue blocks stay engine-wide', async () => {
    const h = await getHealth(t.ctx, ACME);
    assert.equal(h.jobs.queued, 1);
    assert.equal(h.jobs.started, 1);
    assert.equal(h.jobs.completed, 0);
    assert.deepEqual(h.tasks, { failed: 1, pending: 0, processed: 1 });
    assert.deepEqual(h.queues.controller, { workers: 1, working: 0, pending: 3 });
  });

  it('lists started, queued (admission order) and scheduled jobs on the dashboard, without parameters', async () => {
    const d = await getDashboard(t.ctx, ADMIN, {});
    assert.equal(d.version, '9.9.9-test');
    assert.equal(d.max_jobs, 2);
    assert.equal(d.priority_slots, 0);
    assert.deepEqual(
      d.started.map((r) => r.id),
      [j.s1, j.s2],
    );
    // Priority 2 (q2 before q3, FIFO), then priority 8.
    assert.deepEqual(
      d.queued.map((r) => [r.id, r.position]),
      [
        [j.q2, 1],
        [j.q3, 2],
        [j.q1, 3],
      ],
    );
    assert.deepEqual(
      d.scheduled.map((r) => r.id),
      [j.sch],
    );
    assert.equal('parameters' in d.queued[0]!, false);
    assert.equal(d.queued[0]!.queue_state, 'queued');
  });

  it('shows a non-admin its own jobs with their engine-wide positions; the client filter is for admins', async () => {
    const d = await getDashboard(t.ctx, DEMO, {});
    assert.deepEqual(
      d.queued.map((r) => [r.id, r.position]),
      [
        [j.q3, 2],
        [j.q1, 3],
      ],
    );
    assert.deepEqual(
      d.started.map((r) => r.id),
      [j.s1],
    );
    const a = await getDashboard(t.ctx, ADMIN, { client: 'acme' });
    assert.deepEqual(
      a.queued.map((r) => [r.id, r.position]),
      [[j.q2, 1]],
    );
    await assert.rejects(getDashboard(t.ctx, DEMO, { client: 'acme' }), (e: unknown) =>
      isEngineError(e, 'FORBIDDEN'),
    );
    await assert.rejects(getDashboard(t.ctx, ADMIN, { state: '1' }), (e: unknown) =>
      isEngineError(e, 'VALIDATION_FAILED'),
    );
  });

  it('creates, then updates a setting, validates known ones, and wakes admission', async () => {
    const got: string[] = [];
    const unlisten = await s.db.listen(CHANNELS.admission, (p) => got.push(p));
    // A known setting always exists (at its default): "updated"; only a new unknown name is "created".
    assert.deepEqual(await postSetting(t.ctx, { name: 'max_jobs', setting: '4' }), {
      result: 'ok',
      message: 'max_jobs setting updated',
    });
    assert.deepEqual(await postSetting(t.ctx, { name: 'max_jobs', setting: 5 }), {
      result: 'ok',
      message: 'max_jobs setting updated',
    });
    await waitFor(() => got.length >= 2, { what: 'admission wake-ups' });
    await unlisten();
    assert.equal((await readSettings(s.db)).known.max_jobs, 5);
    assert.equal((await getHealth(t.ctx, ADMIN)).jobs.max_jobs, 5);
    assert.equal((await getDashboard(t.ctx, ADMIN)).max_jobs, 5);

    const bad: [unknown, string][] = [
      [null, 'JSON object'],
      [[], 'JSON object'],
      [{ setting: 1 }, 'name'],
      [{ name: '', setting: 1 }, 'name'],
      [{ name: 'max_jobs' }, 'required'],
      [{ name: 'max_jobs', setting: 'four' }, 'whole number'],
      [{ name: 'max_jobs', setting: 0 }, 'at least 1'],
      [{ name: 'max_jobs', setting: 2.5 }, 'whole number'],
      [{ name: 'priority_slots', setting: 6 }, 'must not exceed max_jobs'],
      [{ name: 'priority_threshold', setting: 0 }, 'at least 1'],
      [{ name: 'custom', setting: { a: 1 } }, 'string, number or boolean'],
    ];
    for (const [body, part] of bad) await rejects(postSetting(t.ctx, body), 'VALIDATION_FAILED', part);
    assert.equal((await readSettings(s.db)).known.max_jobs, 5);
  });

  it('lists every known setting with defaults filled in, plus unknown ones as stored', async () => {
    assert.equal(
      (await postSetting(t.ctx, { name: 'night_mode', setting: 'on' })).message,
      'night_mode setting created',
    );
    assert.equal(
      (await postSetting(t.ctx, { name: 'night_mode', setting: 'on' })).message,
      'night_mode setting updated',
    );
    const list = await listSettings(t.ctx);
    assert.equal(list.result, 'ok');
    assert.equal(list.settings.priority_threshold, 5);
    assert.equal(list.settings.retention_days, 30);
    assert.equal(list.settings.stall_timeout, 30);
    assert.equal(list.settings.max_jobs, 5);
    assert.equal(list.settings.idempotency_retention, 86_400);
    assert.equal(list.settings.night_mode, 'on');
    assert.equal(list.settings.event_retention, 900);
    assert.equal(list.settings.weight, 1);
    assert.equal(Object.keys(list.settings).length, 13);
  });
});
