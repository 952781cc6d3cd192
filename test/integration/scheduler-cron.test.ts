/**
 * User cron schedules on both stores, with the scheduler service on a ManualClock: a job per slot
 * with its first log entry and schedule fields, DST days in Europe/London and America/New_York,
 * the catch-up modes after a 10-minute downtime, overlap skip, the switch, and one job per slot
 * when two firings race.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, it } from 'node:test';
import { ManualClock } from '../../src/engine/clock.js';
import type { EngineContext } from '../../src/engine/context.js';
import { getJob } from '../../src/engine/jobs/service.js';
import {
  createCronRunner,
  fireCronSchedule,
  type CronRunner,
} from '../../src/engine/scheduler/cron-runner.js';
import {
  createCronSchedule,
  listAllSchedules,
  switchAnySchedule,
  type CronScheduleInput,
  type CronScheduleRecord,
} from '../../src/engine/scheduler/cron-schedules.js';
import {
  createSchedulerService,
  type SchedulerService,
} from '../../src/engine/scheduler/scheduler-service.js';
import { advanceUntil } from '../helpers/advance-until.js';
import { testContext } from '../helpers/factories.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const noop = () => Promise.resolve(0);
const MIN = 60_000;
const SIX_HOURS = 6 * 60 * MIN;
const admin = { client: 'ops', admin: true };

forEachStore('scheduler: cron schedules', (kind) => {
  let s: TestStore;
  let ctx: EngineContext;
  let clock: ManualClock;
  let services: SchedulerService[] = [];
  const catalog = createFixtureCatalog({
    report: {
      parameters: {
        type: 'object',
        required: ['region'],
        properties: { region: { type: 'string' }, days: { type: 'integer', default: 7 } },
      },
      tasks: [{ name: 'build', run: 'sleep', with: { seconds: 0 } }],
    },
  });

  const startService = async (): Promise<SchedulerService> => {
    const svc = createSchedulerService(ctx, {
      handlers: {
        queue_scheduled_jobs: noop,
        push_jobs: noop,
        recover_stalled_tasks: noop,
        cleanup_jobs: noop,
      },
    });
    services.push(svc);
    await svc.start();
    await waitFor(() => svc.isLeader, { what: 'leadership' });
    return svc;
  };
  /**
   * The cron runner alone, as the leader runs it: for days of clock time, which the other
   * scheduler loops (semaphores every 5 s …) would fill with thousands of timer turns.
   */
  const startRunner = async (): Promise<CronRunner> => {
    const runner = createCronRunner(ctx, ctx.logger, { isLeader: () => true });
    runners.push(runner);
    await runner.start();
    return runner;
  };
  let runners: CronRunner[] = [];
  const stopServices = async () => {
    for (const svc of services) await svc.stop();
    for (const r of runners) await r.stop();
    services = [];
    runners = [];
  };
  let n = 0;
  const create = async (input: Partial<CronScheduleInput> = {}) => {
    const name = input.name ?? `s${++n}`;
    await createCronSchedule(ctx, admin, {
      cron: '* * * * *',
      workflow: 'report',
      parameters: { region: 'eu' },
      overlap: 'allow',
      ...input,
      name,
    });
    return name;
  };
  const jobsOf = async (name: string) =>
    (
      await s.db.query<{ id: number; scheduled_for: Date; queue_state: string }>(
        'SELECT id, scheduled_for, queue_state FROM jobs WHERE schedule = $1 ORDER BY scheduled_for',
        [name],
      )
    ).rows;
  const slotsOf = async (name: string) => (await jobsOf(name)).map((j) => j.scheduled_for.toISOString());
  const record = async (name: string) =>
    (await listAllSchedules(ctx, admin)).schedules[name] as CronScheduleRecord;
  /** Moves the clock on to `to` in steps of `stepMs`, letting the runner handle each step's due slots. */
  const runUntil = async (to: Date, stepMs = 1_000) => {
    while (clock.now().getTime() < to.getTime()) {
      await clock.advance(Math.min(stepMs, to.getTime() - clock.now().getTime()));
      await advanceUntil(clock, async () => !(await due()), { what: 'the cron pass' });
    }
  };
  const due = async () =>
    (
      await s.db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM cron_schedules WHERE active AND next_run_at <= $1',
        [clock.now()],
      )
    ).rows[0]!.n > 0;

  before(async () => {
    s = await createTestStore(kind);
  });
  afterEach(async () => {
    await stopServices();
    await s.db.query('DELETE FROM cron_schedules');
  });
  after(async () => {
    await s.dispose();
  });
  const useClock = (start: string) => {
    clock = new ManualClock(new Date(start));
    ctx = testContext(s.db, { clock, catalog });
  };

  void it('submits one job per slot as the schedule client, logged and stamped with the schedule and slot', async () => {
    useClock('2030-01-01T00:00:30Z');
    const name = await create({ priority: 3 });
    assert.equal((await record(name)).next_run_at, '2030-01-01T00:01:00.000Z');
    await startService();
    await runUntil(new Date('2030-01-01T00:03:00Z'));
    assert.deepEqual(await slotsOf(name), [
      '2030-01-01T00:01:00.000Z',
      '2030-01-01T00:02:00.000Z',
      '2030-01-01T00:03:00.000Z',
    ]);
    const [first] = await jobsOf(name);
    const job = await getJob(ctx, admin, String(first!.id));
    assert.equal(job.client, 'ops');
    assert.equal(job.workflow, 'report');
    assert.equal(job.priority, 3);
    assert.equal(job.queue_state, 'queued');
    assert.deepEqual(job.parameters, { region: 'eu' });
    assert.equal(job.schedule, name);
    assert.equal(job.scheduled_for, '2030-01-01T00:01:00.000Z');
    const { rows: logs } = await s.db.query<{ message: string }>(
      'SELECT message FROM logs WHERE job_id = $1 ORDER BY id',
      [first!.id],
    );
    assert.equal(logs[0]!.message, `submitted by schedule ${name} for slot 2030-01-01T00:01:00.000Z`);
    const rec = await record(name);
    assert.equal(rec.last_run_at, '2030-01-01T00:03:00.000Z');
    assert.equal(rec.next_run_at, '2030-01-01T00:04:00.000Z');
  });

  void it('America/New_York: a 02:30 job runs once on the spring-forward day (at 03:00) and a 01:30 job once on the fall-back day', async () => {
    useClock('2026-03-07T12:00:00Z');
    const spring = await create({ cron: '30 2 * * *', timezone: 'America/New_York', catch_up: 'all' });
    await startRunner();
    // Through the spring-forward night in 10-minute steps between 01:00 and 04:00 local time.
    await runUntil(new Date('2026-03-08T06:00:00Z'), SIX_HOURS);
    await runUntil(new Date('2026-03-08T09:00:00Z'), 10 * MIN);
    await runUntil(new Date('2026-03-09T12:00:00Z'), SIX_HOURS);
    assert.deepEqual(await slotsOf(spring), ['2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z']);
    await stopServices();

    useClock('2026-10-31T12:00:00Z');
    const fall = await create({ cron: '30 1 * * *', timezone: 'America/New_York', catch_up: 'all' });
    await startRunner();
    await runUntil(new Date('2026-11-01T05:00:00Z'), SIX_HOURS);
    await runUntil(new Date('2026-11-01T08:00:00Z'), 10 * MIN); // both 01:xx hours (EDT, then EST)
    await runUntil(new Date('2026-11-02T12:00:00Z'), SIX_HOURS);
    assert.deepEqual(await slotsOf(fall), ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
  });

  void it('Europe/London: a 01:30 job runs once on the spring-forward day (at 02:00 BST) and once on the fall-back day', async () => {
    useClock('2026-03-28T12:00:00Z');
    const spring = await create({ cron: '30 1 * * *', timezone: 'Europe/London', catch_up: 'all' });
    await startRunner();
    await runUntil(new Date('2026-03-29T00:00:00Z'), SIX_HOURS);
    await runUntil(new Date('2026-03-29T03:00:00Z'), 10 * MIN);
    await runUntil(new Date('2026-03-30T12:00:00Z'), SIX_HOURS);
    assert.deepEqual(await slotsOf(spring), ['2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']);
    await stopServices();

    useClock('2026-10-24T12:00:00Z');
    const fall = await create({ cron: '30 1 * * *', timezone: 'Europe/London', catch_up: 'all' });
    await startRunner();
    await runUntil(new Date('2026-10-25T00:00:00Z'), SIX_HOURS);
    await runUntil(new Date('2026-10-25T03:00:00Z'), 10 * MIN); // both 01:xx hours (BST, then GMT)
    await runUntil(new Date('2026-10-26T12:00:00Z'), SIX_HOURS);
    assert.deepEqual(await slotsOf(fall), ['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
  });

  void it('after a 10-minute downtime catch_up all runs every missed slot, latest the most recent, none none of them', async () => {
    useClock('2030-01-01T00:00:30Z');
    const all = await create({ name: 'every-all', catch_up: 'all' });
    const latest = await create({ name: 'every-latest', catch_up: 'latest' });
    const none = await create({ name: 'every-none', catch_up: 'none' });
    await startService();
    await runUntil(new Date('2030-01-01T00:01:30Z'));
    for (const name of [all, latest, none])
      assert.deepEqual(await slotsOf(name), ['2030-01-01T00:01:00.000Z']);

    await stopServices(); // no engine runs the schedules for 10 minutes
    await clock.advance(10 * MIN);
    await startService(); // the new leader looks at once
    const missed = Array.from(
      { length: 10 },
      (_, i) => `2030-01-01T00:${String(i + 2).padStart(2, '0')}:00.000Z`,
    );
    await waitFor(async () => (await slotsOf(all)).length === 11, { what: 'the catch-up of every-all' });
    await waitFor(async () => (await slotsOf(latest)).length === 2, { what: 'the catch-up of every-latest' });
    assert.deepEqual(await slotsOf(all), ['2030-01-01T00:01:00.000Z', ...missed]);
    assert.deepEqual(await slotsOf(latest), ['2030-01-01T00:01:00.000Z', '2030-01-01T00:11:00.000Z']);
    assert.deepEqual(await slotsOf(none), ['2030-01-01T00:01:00.000Z']);
    // Each goes on with the next slot.
    await runUntil(new Date('2030-01-01T00:12:00Z'));
    assert.equal((await slotsOf(all)).at(-1), '2030-01-01T00:12:00.000Z');
    assert.equal((await slotsOf(latest)).at(-1), '2030-01-01T00:12:00.000Z');
    assert.deepEqual(await slotsOf(none), ['2030-01-01T00:01:00.000Z', '2030-01-01T00:12:00.000Z']);
  });

  void it('overlap skip starts no run while the previous one is unfinished; allow does', async () => {
    useClock('2030-01-01T00:00:30Z');
    const skip = await create({ name: 'skip', overlap: 'skip' });
    const allow = await create({ name: 'allow', overlap: 'allow' });
    await startService();
    // No controller runs: the first jobs stay queued, unfinished.
    await runUntil(new Date('2030-01-01T00:03:00Z'));
    assert.deepEqual(await slotsOf(skip), ['2030-01-01T00:01:00.000Z']);
    assert.equal((await slotsOf(allow)).length, 3);
    // The previous run ends: the next slot runs again.
    await s.db.query("UPDATE jobs SET queue_state = 'completed', finished_at = $2 WHERE schedule = $1", [
      skip,
      clock.now(),
    ]);
    await runUntil(new Date('2030-01-01T00:04:00Z'));
    assert.deepEqual(await slotsOf(skip), ['2030-01-01T00:01:00.000Z', '2030-01-01T00:04:00.000Z']);
  });

  void it('PUT /scheduler switches a user schedule off and on; nothing missed while off is caught up', async () => {
    useClock('2030-01-01T00:00:30Z');
    const name = await create({ name: 'switched', catch_up: 'all' });
    await startService();
    await runUntil(new Date('2030-01-01T00:01:00Z'));
    const off = await switchAnySchedule(ctx, { schedule: name, active: false });
    assert.ok(!off.schedules.includes(name));
    assert.ok(off.schedules.includes('push_jobs'));
    assert.equal((await record(name)).active, false);
    assert.equal((await record(name)).next_run_at, null);
    await runUntil(new Date('2030-01-01T00:05:30Z'), 30_000);
    assert.deepEqual(await slotsOf(name), ['2030-01-01T00:01:00.000Z']);
    const on = await switchAnySchedule(ctx, { schedule: name, active: 'true' });
    assert.ok(on.schedules.includes(name));
    assert.equal((await record(name)).next_run_at, '2030-01-01T00:06:00.000Z');
    await runUntil(new Date('2030-01-01T00:06:00Z'));
    assert.deepEqual(await slotsOf(name), ['2030-01-01T00:01:00.000Z', '2030-01-01T00:06:00.000Z']);
    await assert.rejects(
      switchAnySchedule(ctx, { schedule: 'nope', active: true }),
      /unknown schedule "nope"; known schedules: queue_scheduled_jobs, .*switched/,
    );
  });

  void it('two firings of one slot at once submit one job', async () => {
    useClock('2030-01-01T00:00:30Z');
    const name = await create({ name: 'raced', cron: '* * * * * *', catch_up: 'all' });
    await clock.advance(5_000); // slots :31 … :35 due, no service running
    const log = ctx.logger;
    const [a, b] = await Promise.all([fireCronSchedule(ctx, log, name), fireCronSchedule(ctx, log, name)]);
    const fired = [a, b].filter((f) => f !== null && f.submitted.length > 0);
    assert.equal(fired.length, 1, 'one of the two firings submitted');
    assert.deepEqual(await slotsOf(name), [
      '2030-01-01T00:00:31.000Z',
      '2030-01-01T00:00:32.000Z',
      '2030-01-01T00:00:33.000Z',
      '2030-01-01T00:00:34.000Z',
      '2030-01-01T00:00:35.000Z',
    ]);
    // A job stamped for a slot that already has one cannot be written.
    const [j1, j2] = await jobsOf(name);
    await assert.rejects(
      s.db.query('UPDATE jobs SET scheduled_for = $1 WHERE id = $2', [j1!.scheduled_for, j2!.id]),
      /jobs_schedule_slot_idx|duplicate key/,
    );
  });
});
