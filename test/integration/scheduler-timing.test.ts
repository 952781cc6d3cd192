import assert from 'node:assert/strict';
import { after, afterEach, before, it } from 'node:test';
import { ManualClock } from '../../src/engine/clock.js';
import {
  createSchedulerService,
  type SchedulerService,
} from '../../src/engine/scheduler/scheduler-service.js';
import { CHANNELS, notify } from '../../src/engine/signals.js';
import { advanceUntil } from '../helpers/advance-until.js';
import { insertJob, jobLogs, testContext } from '../helpers/factories.js';
import { startReceiver, type Receiver } from '../helpers/http-receiver.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const noop = () => Promise.resolve(0);

async function jobRow(s: TestStore, id: number) {
  const { rows } = await s.db.query<{ queue_state: string; queued_at: Date | null; updated_at: Date }>(
    'SELECT queue_state, queued_at, updated_at FROM jobs WHERE id = $1',
    [id],
  );
  return rows[0]!;
}

forEachStore('scheduler timing', (kind) => {
  let s: TestStore;
  let rx: Receiver;
  let service: SchedulerService | null = null;
  // Time is the scheduler's own clock, moved by the test; only I/O (queries, notifications, the
  // semaphore server) is waited for in real time.
  let clock = new ManualClock();
  const startService = async () => {
    clock = new ManualClock();
    service = createSchedulerService(testContext(s.db, { clock }), {
      handlers: { push_jobs: noop, recover_stalled_tasks: noop, cleanup_jobs: noop },
    });
    await service.start();
    await waitFor(() => service!.isLeader, { what: 'leadership' });
    return service;
  };

  before(async () => {
    s = await createTestStore(kind);
    rx = await startReceiver((req, n) => {
      if (req.path === '/sem/later') return { status: n === 0 ? 503 : 200 };
      if (req.path === '/sem/redirect') return { status: 302, headers: { location: '/sem/redirect-target' } };
      if (req.path === '/sem/closed') return { status: 503 };
      return { status: 200 };
    });
  });
  afterEach(async () => {
    await service?.stop();
    service = null;
  });
  after(async () => {
    await rx.close();
    await s.dispose();
  });

  void it('a job with run_at 3 s ahead leaves scheduled within 1 s after its run_at (timer, not the 60 s sweep)', async () => {
    await startService();
    const runAt = new Date(clock.now().getTime() + 3_000);
    const plain = await insertJob(s.db, { queue_state: 'scheduled', run_at: runAt });
    const gated = await insertJob(s.db, {
      queue_state: 'scheduled',
      run_at: runAt,
      semaphore_url: `${rx.url}/sem/closed`,
    });
    await notify(s.db, CHANNELS.scheduler, plain);
    await notify(s.db, CHANNELS.scheduler, gated);
    await clock.advance(2_000);
    assert.equal((await jobRow(s, plain)).queue_state, 'scheduled', 'not before its run_at');
    // The clock then stands at run_at (the sweep would come only at 5 s): the run_at timer, or the
    // notification's re-read if it comes later, moves the job.
    await clock.set(runAt);
    await advanceUntil(clock, async () => (await jobRow(s, plain)).queue_state !== 'scheduled', {
      timeoutMs: 4_000,
      what: 'job due',
    });
    const row = await jobRow(s, plain);
    assert.equal(row.queue_state, 'queued');
    assert.ok(row.queued_at && row.queued_at.getTime() >= runAt.getTime());
    const late = row.queued_at.getTime() - runAt.getTime();
    assert.ok(late < 1_000, `moved ${late} ms after run_at`);
    assert.equal((await jobRow(s, gated)).queue_state, 'pending', 'a job with a semaphore goes to pending');
    const logs = await jobLogs(s.db, plain);
    assert.equal(logs.length, 1);
    assert.equal(logs[0]!.progname, 'scheduler');
    assert.match(logs[0]!.message, /run_at .* reached: job queued/);
    await s.db.query(`UPDATE jobs SET queue_state = 'broken' WHERE id = $1`, [gated]);
  });

  void it('a semaphore answering 503 then 200 moves the job pending → queued; a 3xx counts as go, unfollowed', async () => {
    await startService();
    const t0 = clock.now().getTime();
    const later = await insertJob(s.db, {
      queue_state: 'pending',
      run_at: new Date(t0 - 1_000),
      semaphore_url: `${rx.url}/sem/later?token=secret`,
    });
    const redirected = await insertJob(s.db, {
      queue_state: 'pending',
      run_at: new Date(t0 - 1_000),
      semaphore_url: `${rx.url}/sem/redirect`,
    });
    await notify(s.db, CHANNELS.scheduler, later);
    // The clock stands still at t0 until both jobs were checked once.
    await advanceUntil(clock, async () => (await jobRow(s, redirected)).queue_state === 'queued', {
      what: 'redirected queued',
    });
    assert.equal(rx.on('/sem/redirect-target').length, 0, 'the redirect is not followed');
    await advanceUntil(clock, () => rx.on('/sem/later').length >= 1, { what: 'first check' });
    // The notification of a job that was already checked (as a submission's can arrive after a
    // pass saw the job) does not bring its re-check forward: only a change of the row does.
    await notify(s.db, CHANNELS.scheduler, later);
    // Read the state first: if still only the 503 had been answered afterwards, the job must have been pending.
    const stateAfterFirst = (await jobRow(s, later)).queue_state;
    if (rx.on('/sem/later').length === 1) assert.equal(stateAfterFirst, 'pending');
    // Up to 100 ms of clock time per poll from t0 (the first check): the re-check comes with the
    // backoff's first step.
    const queued = await advanceUntil(
      clock,
      async () => {
        const row = await jobRow(s, later);
        return row.queue_state === 'queued' ? row : null;
      },
      { stepMs: 100, timeoutMs: 12_000, what: 'semaphore open' },
    );
    const hits = rx.on('/sem/later');
    assert.equal(hits.length, 2);
    assert.equal(hits[0]!.method, 'GET');
    const gap = queued.queued_at!.getTime() - t0;
    assert.ok(gap >= 4_500 && gap < 10_000, `re-checked after ${gap} ms`);
    const logs = (await jobLogs(s.db, later)).map((l) => l.message);
    assert.equal(logs.length, 2, JSON.stringify(logs));
    assert.match(
      logs[0]!,
      /semaphore http:\/\/127\.0\.0\.1:\d+\/sem\/later\?… answered HTTP 503: job stays pending/,
    );
    assert.doesNotMatch(logs.join('\n'), /secret/, 'query tokens stay out of the log');
    assert.match(logs[1]!, /answered HTTP 200: job queued/);
  });
});
