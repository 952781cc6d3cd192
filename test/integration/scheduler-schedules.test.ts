import assert from 'node:assert/strict';
import { after, afterEach, before, it } from 'node:test';
import { ManualClock } from '../../src/engine/clock.js';
import { isEngineError } from '../../src/errors/catalogue.js';
import type { EngineContext } from '../../src/engine/context.js';
import { cleanupJobs } from '../../src/engine/maintenance/cleanup.js';
import {
  createSchedulerService,
  type SchedulerService,
} from '../../src/engine/scheduler/scheduler-service.js';
import { listSchedules, setSchedule } from '../../src/engine/scheduler/schedules.js';
import { CHANNELS, notify } from '../../src/engine/signals.js';
import { advanceUntil } from '../helpers/advance-until.js';
import { insertDelivery, insertJob, putSetting, testContext } from '../helpers/factories.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const noop = () => Promise.resolve(0);
const DAY = 86_400_000;

forEachStore('scheduler schedules', (kind) => {
  let s: TestStore;
  let ctx: EngineContext;
  // The suite's clock: schedules, the run_at timer and the cleanup cut-off all follow it.
  const clock = new ManualClock();
  const ago = (ms: number) => new Date(clock.now().getTime() - ms);
  /**
   * Moves the clock `ms` on while the service keeps pace: a heartbeat schedule
   * (`recover_stalled_tasks`, every 0.1 s) must have run once per 0.1 s before the clock moves on.
   */
  let beats = 0;
  const heartbeat = {
    handlers: {
      recover_stalled_tasks: () => {
        beats++;
        return Promise.resolve(0);
      },
    },
    timing: { recover_stalled_tasks: { everySeconds: 0.1, firstInSeconds: 0.1 } },
  };
  const passTime = async (ms: number) => {
    for (let left = ms; left > 0; left -= 100) {
      const seen = beats;
      await advanceUntil(clock, () => beats > seen, { stepMs: 100, what: 'a heartbeat run' });
    }
  };
  let services: SchedulerService[] = [];
  const startService = async (options: Parameters<typeof createSchedulerService>[1] = {}) => {
    const svc = createSchedulerService(ctx, {
      ...options,
      handlers: { push_jobs: noop, recover_stalled_tasks: noop, cleanup_jobs: noop, ...options.handlers },
    });
    services.push(svc);
    await svc.start();
    await waitFor(() => svc.isLeader, { what: 'leadership' });
    return svc;
  };
  const state = async (id: number) =>
    (await s.db.query<{ queue_state: string }>('SELECT queue_state FROM jobs WHERE id = $1', [id])).rows[0]
      ?.queue_state;

  before(async () => {
    s = await createTestStore(kind);
    ctx = testContext(s.db, { clock });
  });
  afterEach(async () => {
    for (const svc of services) await svc.stop();
    services = [];
  });
  after(async () => {
    await s.dispose();
  });

  void it('lists the four schedules in the seed shape, queue_scheduled_jobs following schedule_interval', async () => {
    const out = await listSchedules(ctx);
    assert.equal(out.result, 'ok');
    assert.deepEqual(Object.keys(out.schedules), [
      'queue_scheduled_jobs',
      'push_jobs',
      'recover_stalled_tasks',
      'cleanup_jobs',
    ]);
    assert.deepEqual(out.schedules.queue_scheduled_jobs, {
      class: 'QueueJobs',
      every: [60, { first_in: 5 }],
      queue: 'scheduler',
      description: 'Enqueues scheduled jobs that have a run_at time in the past.',
      active: true,
      last_run_at: null,
      next_run_at: null,
    });
    assert.equal(out.schedules.push_jobs.class, 'PushJobs');
    assert.deepEqual(out.schedules.push_jobs.every[0], 30);
    assert.equal(out.schedules.recover_stalled_tasks.class, 'RecoverStalledTasks');
    assert.deepEqual(out.schedules.recover_stalled_tasks.every[0], 15);
    assert.equal(out.schedules.cleanup_jobs.class, 'CleanupJobs');
    assert.deepEqual(out.schedules.cleanup_jobs.every[0], 3600);
    await putSetting(s.db, 'schedule_interval', 120);
    assert.equal((await listSchedules(ctx)).schedules.queue_scheduled_jobs.every[0], 120);
    await putSetting(s.db, 'schedule_interval', 60);
  });

  void it('rejects bad PUT /scheduler bodies with a 400 that says what is accepted', async () => {
    const cases: [unknown, RegExp][] = [
      [
        { schedule: 'nope', active: true },
        /unknown schedule "nope"; known schedules: queue_scheduled_jobs, push_jobs, recover_stalled_tasks, cleanup_jobs/,
      ],
      [{ active: true }, /"schedule" is required/],
      [{ schedule: 'push_jobs', active: 'maybe' }, /"active" must be true or false/],
      [{ schedule: 'push_jobs' }, /"active" must be true or false/],
      [[1, 2], /must be a JSON object/],
      [null, /must be a JSON object/],
    ];
    for (const [body, message] of cases) {
      await assert.rejects(setSchedule(ctx, body), (err: unknown) => {
        assert.ok(isEngineError(err, 'VALIDATION_FAILED'), String(err));
        assert.equal(err.status, 400);
        assert.match(err.message, message);
        return true;
      });
    }
    // "true"/"false" strings are accepted.
    assert.deepEqual(await setSchedule(ctx, { schedule: 'push_jobs', active: 'false' }), {
      result: 'ok',
      schedules: ['queue_scheduled_jobs', 'recover_stalled_tasks', 'cleanup_jobs'],
    });
    assert.deepEqual((await setSchedule(ctx, { schedule: 'push_jobs', active: 'true' })).schedules.length, 4);
  });

  void it('switching queue_scheduled_jobs off stops moving due jobs, survives a restart, and on starts it again', async () => {
    const off = await setSchedule(ctx, { schedule: 'queue_scheduled_jobs', active: false });
    assert.deepEqual(off.schedules, ['push_jobs', 'recover_stalled_tasks', 'cleanup_jobs']);
    const withHeartbeat = {
      handlers: heartbeat.handlers,
      timing: { ...heartbeat.timing, queue_scheduled_jobs: { firstInSeconds: 0.2 } },
    };
    const first = await startService(withHeartbeat);
    const job = await insertJob(s.db, { queue_state: 'scheduled', run_at: ago(1_000) });
    await notify(s.db, CHANNELS.scheduler, job);
    await passTime(1_500);
    assert.equal(await state(job), 'scheduled');
    const listed = (await listSchedules(ctx)).schedules.queue_scheduled_jobs;
    assert.equal(listed.active, false);
    assert.equal(listed.next_run_at, null);

    await first.stop();
    await startService(withHeartbeat);
    await passTime(1_200);
    assert.equal(await state(job), 'scheduled', 'still off after a restart');

    await setSchedule(ctx, { schedule: 'queue_scheduled_jobs', active: 'true' });
    await advanceUntil(clock, async () => (await state(job)) === 'queued', {
      stepMs: 50,
      timeoutMs: 3_000,
      what: 'queued after switching on',
    });
    await advanceUntil(
      clock,
      async () => (await listSchedules(ctx)).schedules.queue_scheduled_jobs.last_run_at !== null,
      {
        stepMs: 50,
        timeoutMs: 3_000,
        what: 'a sweep ran',
      },
    );
    const on = (await listSchedules(ctx)).schedules.queue_scheduled_jobs;
    assert.equal(on.active, true);
    assert.ok(on.next_run_at && Date.parse(on.next_run_at) > Date.parse(on.last_run_at!));
  });

  void it('runs a schedule on its interval, stops it when switched off and restarts it when switched on', async () => {
    let runs = 0;
    await startService({
      handlers: {
        ...heartbeat.handlers,
        push_jobs: () => {
          runs++;
          return Promise.resolve(0);
        },
      },
      timing: { ...heartbeat.timing, push_jobs: { everySeconds: 0.3, firstInSeconds: 0.1 } },
    });
    await advanceUntil(clock, () => runs >= 3, { stepMs: 100, timeoutMs: 4_000, what: 'three runs' });
    const listed = (await listSchedules(ctx)).schedules.push_jobs;
    assert.ok(listed.last_run_at && listed.next_run_at);
    await setSchedule(ctx, { schedule: 'push_jobs', active: false });
    await passTime(300); // a run in progress may finish
    const frozen = runs;
    await passTime(1_000);
    assert.equal(runs, frozen, 'no runs while off');
    await setSchedule(ctx, { schedule: 'push_jobs', active: true });
    await advanceUntil(clock, () => runs >= frozen + 2, {
      stepMs: 100,
      timeoutMs: 3_000,
      what: 'runs again',
    });
  });

  void it('a schedule_interval change re-plans the next sweep at once (no wait for the old interval)', async () => {
    const lastRun = async () => (await listSchedules(ctx)).schedules.queue_scheduled_jobs.last_run_at;
    const before = await lastRun();
    await startService({ timing: { queue_scheduled_jobs: { firstInSeconds: 0.1 } } });
    await advanceUntil(clock, async () => (await lastRun()) !== before, { stepMs: 50, what: 'first sweep' });
    const t1 = (await lastRun())!;
    const planned = (await listSchedules(ctx)).schedules.queue_scheduled_jobs.next_run_at!;
    assert.ok(Date.parse(planned) - Date.parse(t1) >= 59_000, 'next sweep planned a minute later');
    try {
      // As POST /settings does: store the value and notify the scheduler.
      await putSetting(s.db, 'schedule_interval', 1);
      await notify(s.db, CHANNELS.scheduler, 'queue_scheduled_jobs');
      // 50 ms of clock time per poll: the old plan (a minute on) must not be waited for.
      await advanceUntil(clock, async () => (await lastRun()) !== t1, {
        stepMs: 50,
        timeoutMs: 4_000,
        what: 'second sweep',
      });
      const t2 = (await lastRun())!;
      await advanceUntil(clock, async () => (await lastRun()) !== t2, {
        stepMs: 50,
        timeoutMs: 4_000,
        what: 'third sweep',
      });
      const t3 = (await lastRun())!;
      const gap = Date.parse(t3) - Date.parse(t2);
      assert.ok(gap >= 900 && gap < 3_000, `sweeps ${gap} ms apart with schedule_interval 1`);
    } finally {
      await putSetting(s.db, 'schedule_interval', 60);
    }
  });

  void it('cleanup deletes old completed and broken jobs with their rows, in batches, and keeps persist and recent jobs', async () => {
    await putSetting(s.db, 'retention_days', 10);
    try {
      const old = ago(20 * DAY);
      const oldCompleted: number[] = [];
      for (let i = 0; i < 5; i++)
        oldCompleted.push(await insertJob(s.db, { queue_state: 'completed', finished_at: old }));
      const oldBroken = await insertJob(s.db, { queue_state: 'broken', finished_at: old });
      const oldPersist = await insertJob(s.db, { queue_state: 'completed', finished_at: old, persist: true });
      const recent = await insertJob(s.db, {
        queue_state: 'completed',
        finished_at: ago(5 * DAY),
      });
      const oldScheduled = await insertJob(s.db, { queue_state: 'scheduled', run_at: old });
      const victim = oldCompleted[0]!;
      const { rows: t } = await s.db.query<{ id: number }>(
        `INSERT INTO tasks (job_id, name, position, state) VALUES ($1, 'a', 0, 'succeeded') RETURNING id`,
        [victim],
      );
      await s.db.query(
        `INSERT INTO attempts (task_id, job_id, number, state) VALUES ($1, $2, 1, 'succeeded')`,
        [t[0]!.id, victim],
      );
      await s.db.query(`INSERT INTO logs (job_id, progname, message) VALUES ($1, 'api', 'x')`, [victim]);
      await insertDelivery(s.db, { job_id: victim, target_url: 'http://127.0.0.1:9/x', state: 'delivered' });

      const res = await cleanupJobs(ctx, { batchSize: 2 });
      assert.ok(res.jobs >= 6, `deleted ${res.jobs}`);
      const { rows } = await s.db.query<{ id: number }>(
        'SELECT id FROM jobs WHERE id = ANY($1::bigint[]) ORDER BY id',
        [[...oldCompleted, oldBroken, oldPersist, recent, oldScheduled]],
      );
      assert.deepEqual(
        rows.map((r) => r.id),
        [oldPersist, recent, oldScheduled],
      );
      for (const table of ['tasks', 'attempts', 'logs', 'callback_deliveries']) {
        const { rows: left } = await s.db.query<{ n: number }>(
          `SELECT count(*) AS n FROM ${table} WHERE job_id = $1`,
          [victim],
        );
        assert.equal(left[0]!.n, 0, `${table} rows of the deleted job are gone`);
      }
    } finally {
      await putSetting(s.db, 'retention_days', 30);
    }
  });

  it('cleanup_jobs with a retention longer than any Date deletes nothing instead of failing (QA)', async () => {
    const DAY = 86_400_000;
    const old = await insertJob(s.db, {
      queue_state: 'completed',
      finished_at: ago(400 * DAY),
    });
    try {
      // POST /settings accepts this (no upper bound): the cut-off used to be an Invalid Date.
      await putSetting(s.db, 'retention_days', 1_000_000_000_000);
      const res = await cleanupJobs(ctx);
      assert.equal(res.jobs, 0);
      const { rows } = await s.db.query('SELECT id FROM jobs WHERE id = $1', [old]);
      assert.equal(rows.length, 1);
    } finally {
      await putSetting(s.db, 'retention_days', 30);
    }
  });

  void it('the cleanup_jobs schedule runs the cleanup', async () => {
    const gone = await insertJob(s.db, {
      queue_state: 'completed',
      finished_at: ago(40 * DAY),
    });
    await startService({
      handlers: { cleanup_jobs: cleanupJobs },
      timing: { cleanup_jobs: { firstInSeconds: 0.1 } },
    });
    await advanceUntil(clock, async () => (await state(gone)) === undefined, {
      stepMs: 50,
      timeoutMs: 3_000,
      what: 'cleanup ran',
    });
  });
});
