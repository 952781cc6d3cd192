/* eslint-disable @typescript-eslint/no-explicit-any -- stored rows are read loosely in assertions */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { getJob, getJobLogs, patchJob, rerunJob, submitJob } from '../../src/engine/jobs/service.js';
import { appendLog } from '../../src/engine/jobs/job-log.js';
import { CHANNELS } from '../../src/engine/signals.js';
import { isEngineError } from '../../src/errors/catalogue.js';
import { waitFor } from '../helpers/wait-for.js';
import {
  ACME,
  ADMIN,
  count,
  createJobsContext,
  DEMO,
  jobRow,
  type JobsTestContext,
  REQUEST,
  setJob,
  taskRows,
  rejects,
} from './jobs-helpers.js';

const CALLBACK = 'http://127.0.0.1:9/callback';

forEachStore('jobs: patch, pause, break, resume, rerun', (kind) => {
  let s: TestStore;
  let t: JobsTestContext;
  const notes: Record<string, string[]> = {};
  const unlisten: (() => Promise<void>)[] = [];

  before(async () => {
    s = await createTestStore(kind);
    t = await createJobsContext(s.db);
    for (const ch of [CHANNELS.admission, CHANNELS.scheduler, CHANNELS.cancel, CHANNELS.jobEnded]) {
      notes[ch] = [];
      unlisten.push(await s.db.listen(ch, (p) => notes[ch]!.push(p)));
    }
  });
  after(async () => {
    for (const u of unlisten) await u();
    await t.cleanup();
    await s.dispose();
  });

  const submit = async (job: Record<string, unknown> = {}, viewer = DEMO): Promise<number> =>
    (
      await submitJob(
        t.ctx,
        viewer,
        {
          job: { workflow: 'jobs_hello', ...job },
          parameters: { content_id: 'cid-1', rest_endpoints: [CALLBACK], custom_data: { ref: 7 } },
        },
        REQUEST,
      )
    ).id;

  /** A started job: task 1 succeeded, task 2 running with a running attempt, task 3 waiting. */
  const startedJob = async (): Promise<{ id: number; attemptId: number }> => {
    const id = await submit();
    await setJob(s.db, id, { queue_state: 'started', started_at: t.clock.now() });
    const [t1, t2] = await taskRows(s.db, id);
    await s.db.query(
      `UPDATE tasks SET state = 'succeeded', attempts = 1, finished_at = now() WHERE id = $1`,
      [t1!.id],
    );
    const { rows } = await s.db.query<{ id: number }>(
      `INSERT INTO attempts (task_id, job_id, number, worker_id) VALUES ($1, $2, 1, 'w1') RETURNING id`,
      [t2!.id, id],
    );
    await s.db.query(
      `UPDATE tasks SET state = 'running', attempts = 1, current_attempt_id = $2 WHERE id = $1`,
      [t2!.id, rows[0]!.id],
    );
    return { id, attemptId: rows[0]!.id };
  };

  /** Everything a refused change must leave untouched. */
  const snapshot = async (id: number) => ({
    job: await jobRow(s.db, id),
    tasks: await taskRows(s.db, id),
    logs: await count(s.db, 'logs', 'job_id = $1', [id]),
    deliveries: await count(s.db, 'callback_deliveries', 'job_id = $1', [id]),
  });

  it('changes priority (numeric string), top_of_queue and persist, logs each, and re-orders a queued job at once', async () => {
    const id = await submit();
    t.clock.advance(1000);
    notes[CHANNELS.admission]!.length = 0;
    const reply = await patchJob(t.ctx, DEMO, String(id), {
      client: 'demo-client',
      priority: '2',
      top_of_queue: true,
      persist: true,
    });
    assert.deepEqual(reply, { id, result: 'Performed updates: priority, top_of_queue, persist' });
    const row = await jobRow(s.db, id);
    assert.equal(row.priority, 2);
    assert.equal(row.top_of_queue, true);
    assert.equal(row.persist, true);
    assert.equal(row.updated_at.getTime(), t.clock.now().getTime());
    const messages = (await getJobLogs(t.ctx, DEMO, String(id), { showAll: false })).map((l) => l.message);
    for (const m of [
      'priority changed from 5 to 2',
      'top_of_queue changed from false to true',
      'persist changed from false to true',
    ])
      assert.equal(messages.includes(m), true, m);
    await waitFor(() => notes[CHANNELS.admission]!.length > 0, { what: 'admission wake-up' });
  });

  it('refuses bad PATCH bodies with a 400 naming the problem, and changes nothing', async () => {
    const id = await submit();
    const before = await snapshot(id);
    const cases: [unknown, string[]][] = [
      [null, ['JSON object']],
      [{}, ['nothing to update', 'accepted fields']],
      [{ client: 'demo-client' }, ['nothing to update']],
      [{ colour: 'red', workflow: 'x' }, ['"colour"', '"workflow"', 'accepted']],
      [{ client: 'acme', priority: 1 }, ['does not match']],
      [{ priority: 0 }, ['priority', '1 to 10']],
      [{ priority: 'urgent' }, ['priority']],
      [{ persist: 'maybe' }, ['persist']],
      [{ top_of_queue: 2 }, ['top_of_queue']],
      [{ queue_state: 'started' }, ['queue_state', 'paused, broken, queued']],
      [{ queue_state: 'paused', run_at: '2031-01-01T00:00:00' }, ['cannot be combined']],
      [{ run_at: '2030-02-30T00:00:00' }, ['run_at', 'day 30']],
      [{ run_at: 'now' }, ['run_at']],
      [{ semaphore_url: 'gopher://x' }, ['semaphore_url', 'http']],
      [{ sempahore_url: 'nope' }, ['sempahore_url']],
      [{ semaphore_url: 'http://a/b', sempahore_url: 'http://a/b' }, ['not both']],
    ];
    for (const [body, parts] of cases) {
      await assert.rejects(patchJob(t.ctx, DEMO, String(id), body), (err: unknown) => {
        assert.ok(isEngineError(err, 'VALIDATION_FAILED'), String(err));
        assert.equal(err.jobId, id);
        for (const p of parts)
          assert.equal(err.message.includes(p), true, `"${err.message}" should mention "${p}"`);
        return true;
      });
    }
    assert.deepEqual(await snapshot(id), before);
  });

  it('answers 404 for unknown or other clients’ jobs and 400 for a bad id, on every job call', async () => {
    const id = await submit({}, ACME);
    await rejects(getJob(t.ctx, DEMO, String(id)), 'JOB_NOT_FOUND', `job ${id} not found`);
    await rejects(patchJob(t.ctx, DEMO, String(id), { priority: 1 }), 'JOB_NOT_FOUND');
    await rejects(rerunJob(t.ctx, DEMO, String(id)), 'JOB_NOT_FOUND');
    await rejects(getJobLogs(t.ctx, DEMO, String(id), { showAll: true }), 'JOB_NOT_FOUND');
    await rejects(getJob(t.ctx, DEMO, '999999'), 'JOB_NOT_FOUND');
    for (const bad of ['abc', '-1', '0', '1.5', '', '99999999999999999999'])
      await rejects(getJob(t.ctx, DEMO, bad), 'VALIDATION_FAILED', 'positive whole number');
    assert.equal((await getJob(t.ctx, ADMIN, String(id))).client, 'acme');
    assert.equal((await jobRow(s.db, id)).priority, 5);
  });

  it('returns the job with its tasks in order', async () => {
    const { id } = await startedJob();
    const job = await getJob(t.ctx, DEMO, String(id));
    assert.equal(job.queue_state, 'started');
    assert.deepEqual(
      job.tasks.map((x) => [x.name, x.state, x.attempts, x.queue, x.error]),
      [
        ['hello', 'succeeded', 1, 'work', null],
        ['wait', 'running', 1, 'work', null],
        ['report', 'waiting', 0, 'work', null],
      ],
    );
    assert.equal(typeof job.tasks[0]!.id, 'number');
    assert.match(job.tasks[0]!.finished_at!, /Z$/);
  });

  it('pauses a started job: its running attempt goes on, admission is woken; pausing again is a 409 that changes nothing', async () => {
    const { id, attemptId } = await startedJob();
    notes[CHANNELS.admission]!.length = 0;
    const reply = await patchJob(t.ctx, DEMO, String(id), { queue_state: 'paused' });
    assert.equal(reply.result, 'Performed updates: queue_state');
    assert.equal((await jobRow(s.db, id)).queue_state, 'paused');
    const { rows } = await s.db.query<{ state: string }>('SELECT state FROM attempts WHERE id = $1', [
      attemptId,
    ]);
    assert.equal(rows[0]!.state, 'running');
    assert.deepEqual(
      (await taskRows(s.db, id)).map((x) => x.state),
      ['succeeded', 'running', 'waiting'],
    );
    await waitFor(() => notes[CHANNELS.admission]!.length > 0, { what: 'admission wake-up' });
    const before = await snapshot(id);
    await rejects(
      patchJob(t.ctx, DEMO, String(id), { queue_state: 'paused' }),
      'STATE_CONFLICT',
      `job ${id} is paused`,
    );
    assert.deepEqual(await snapshot(id), before);
  });

  it('resumes a paused job: queued again with queued_at now; finished and ready tasks stay as they are', async () => {
    const { id } = await startedJob();
    await patchJob(t.ctx, DEMO, String(id), { queue_state: 'paused' });
    await s.db.query(`UPDATE tasks SET state = 'ready' WHERE job_id = $1 AND name = 'report'`, [id]);
    t.clock.advance(5000);
    notes[CHANNELS.admission]!.length = 0;
    await patchJob(t.ctx, DEMO, String(id), { queue_state: 'queued' });
    const row = await jobRow(s.db, id);
    assert.equal(row.queue_state, 'queued');
    assert.equal(row.queued_at.getTime(), t.clock.now().getTime());
    assert.deepEqual(
      (await taskRows(s.db, id)).map((x) => x.state),
      ['succeeded', 'running', 'ready'],
    );
    await waitFor(() => notes[CHANNELS.admission]!.length > 0, { what: 'admission wake-up' });
  });

  it('refuses pause, resume and reschedule where the state forbids it (409), changing nothing', async () => {
    const done = await submit();
    await setJob(s.db, done, { queue_state: 'completed', finished_at: t.clock.now() });
    const queued = await submit();
    const started = (await startedJob()).id;
    const cases: [number, Record<string, unknown>, string[]][] = [
      [done, { queue_state: 'paused' }, [`job ${done} is completed`, 'can be paused']],
      [done, { queue_state: 'broken' }, ['is completed', 'can be broken']],
      [done, { queue_state: 'queued' }, ['is completed']],
      [done, { priority: 1, persist: true }, ['is completed', 'priority']],
      [done, { run_at: '2031-01-01T00:00:00' }, ['is completed', 'rescheduled']],
      [queued, { queue_state: 'queued' }, [`job ${queued} is queued`, 'pending, scheduled or paused']],
      [started, { queue_state: 'queued' }, ['is started']],
      [started, { run_at: '2031-01-01T00:00:00' }, ['is started', 'rescheduled']],
      [started, { semaphore_url: 'http://127.0.0.1:9/s' }, ['is started']],
    ];
    for (const [id, body, parts] of cases) {
      const before = await snapshot(id);
      await rejects(patchJob(t.ctx, DEMO, String(id), body), 'STATE_CONFLICT', ...parts);
      assert.deepEqual(await snapshot(id), before, JSON.stringify(body));
    }
    // persist alone is allowed on an ended job (it steers the clean-up).
    await patchJob(t.ctx, DEMO, String(done), { persist: true });
    assert.equal((await jobRow(s.db, done)).persist, true);
  });

  it('reschedules with run_at: future → scheduled, past → queued, past with a semaphore → pending', async () => {
    const id = await submit();
    notes[CHANNELS.scheduler]!.length = 0;
    await patchJob(t.ctx, DEMO, String(id), { run_at: '2031-05-01T08:00:00' });
    let row = await jobRow(s.db, id);
    assert.equal(row.queue_state, 'scheduled');
    assert.equal(row.run_at.toISOString(), '2031-05-01T08:00:00.000Z');
    await waitFor(() => notes[CHANNELS.scheduler]!.includes(String(id)), { what: 'scheduler wake-up' });
    const logs = (await getJobLogs(t.ctx, DEMO, String(id), { showAll: false })).map((l) => l.message);
    assert.equal(logs.includes('queue_state changed from queued to scheduled'), true);
    assert.equal(logs.includes('Job will run at: "2031-05-01T08:00:00.000Z"'), true);

    t.clock.advance(1000);
    await patchJob(t.ctx, DEMO, String(id), { run_at: '2020-01-01T00:00:00Z' });
    row = await jobRow(s.db, id);
    assert.equal(row.queue_state, 'queued');
    assert.equal(row.queued_at.getTime(), t.clock.now().getTime());

    await patchJob(t.ctx, DEMO, String(id), {
      run_at: '2031-05-01T08:00:00',
      sempahore_url: 'http://127.0.0.1:9/go',
    });
    row = await jobRow(s.db, id);
    assert.equal(row.queue_state, 'scheduled');
    assert.equal(row.semaphore_url, 'http://127.0.0.1:9/go');
    const reply = await patchJob(t.ctx, DEMO, String(id), { run_at: '2021-01-01T00:00:00' });
    assert.equal(reply.result, 'Performed updates: run_at');
    assert.equal((await jobRow(s.db, id)).queue_state, 'pending');
    // Clearing the semaphore of a pending job queues it.
    await patchJob(t.ctx, DEMO, String(id), { semaphore_url: null });
    row = await jobRow(s.db, id);
    assert.equal(row.queue_state, 'queued');
    assert.equal(row.semaphore_url, null);
  });

  it('forces a scheduled or pending job due now with queue_state queued', async () => {
    const sch = await submit({ run_at: '2031-01-01T00:00:00', semaphore_url: 'http://127.0.0.1:9/s' });
    assert.equal((await jobRow(s.db, sch)).queue_state, 'scheduled');
    await patchJob(t.ctx, DEMO, String(sch), { queue_state: 'queued' });
    let row = await jobRow(s.db, sch);
    assert.equal(row.queue_state, 'queued');
    assert.equal(row.run_at.getTime(), t.clock.now().getTime());
    assert.equal(row.queued_at.getTime(), t.clock.now().getTime());
    const pen = await submit({ semaphore_url: 'http://127.0.0.1:9/s' });
    assert.equal((await jobRow(s.db, pen)).queue_state, 'pending');
    await patchJob(t.ctx, DEMO, String(pen), { queue_state: 'queued' });
    row = await jobRow(s.db, pen);
    assert.equal(row.queue_state, 'queued');
    assert.equal(row.semaphore_url, 'http://127.0.0.1:9/s');
  });

  it('breaks a started job: attempts cancelled, unfinished tasks failed, job-end callback (failed) enqueued, workers told', async () => {
    const { id, attemptId } = await startedJob();
    t.clock.advance(1000);
    for (const ch of Object.keys(notes)) notes[ch]!.length = 0;
    await patchJob(t.ctx, DEMO, String(id), { queue_state: 'broken' });
    const row = await jobRow(s.db, id);
    assert.equal(row.queue_state, 'broken');
    assert.equal(row.finished_at.getTime(), t.clock.now().getTime());
    assert.equal(row.failed, false);
    assert.deepEqual(
      (await taskRows(s.db, id)).map((x) => [x.state, x.error]),
      [
        ['succeeded', null],
        ['failed', 'job broken'],
        ['failed', 'job broken'],
      ],
    );
    const { rows: att } = await s.db.query<{ state: string }>('SELECT state FROM attempts WHERE id = $1', [
      attemptId,
    ]);
    assert.equal(att[0]!.state, 'cancelled');
    const { rows: cb } = await s.db.query<{ kind: string; event: string; target_url: string; body: any }>(
      'SELECT kind, event, target_url, body FROM callback_deliveries WHERE job_id = $1',
      [id],
    );
    assert.equal(cb.length, 1);
    assert.equal(cb[0]!.kind, 'job');
    assert.equal(cb[0]!.event, 'failed');
    assert.equal(cb[0]!.target_url, CALLBACK);
    assert.deepEqual(cb[0]!.body, {
      job_id: id,
      status: 'failed',
      workflow: 'jobs_hello',
      content_id: 'cid-1',
      custom_data: { ref: 7 },
      time: t.clock.now().toISOString(),
      client: 'demo-client',
    });
    await waitFor(() => notes[CHANNELS.cancel]!.includes(String(id)), { what: 'cancel notification' });
    await waitFor(() => notes[CHANNELS.admission]!.length > 0, { what: 'admission wake-up' });
    await waitFor(() => notes[CHANNELS.jobEnded]!.includes(String(id)), { what: 'job ended notification' });
    const before = await snapshot(id);
    await rejects(
      patchJob(t.ctx, DEMO, String(id), { queue_state: 'broken' }),
      'STATE_CONFLICT',
      'is broken',
    );
    assert.deepEqual(await snapshot(id), before);
  });

  it('breaks a queued job without a job-end callback (it never started)', async () => {
    const id = await submit();
    await patchJob(t.ctx, DEMO, String(id), { queue_state: 'broken' });
    assert.equal((await jobRow(s.db, id)).queue_state, 'broken');
    assert.equal(await count(s.db, 'callback_deliveries', 'job_id = $1', [id]), 0);
    assert.deepEqual(
      (await taskRows(s.db, id)).map((x) => x.state),
      ['failed', 'failed', 'failed'],
    );
  });

  it('reruns a completed job from its stored definition: new queued job, original broken', async () => {
    const id = await submit({ priority: 3, persist: true });
    await setJob(s.db, id, { queue_state: 'completed', finished_at: new Date('2030-01-01T00:00:00Z') });
    // The stored definition differs from the catalog's: the rerun uses the stored one.
    const stored = (await jobRow(s.db, id)).definition;
    stored.tasks = [stored.tasks[0]];
    await s.db.query('UPDATE jobs SET definition = $2::jsonb WHERE id = $1', [id, JSON.stringify(stored)]);
    const reply = await rerunJob(t.ctx, DEMO, String(id));
    assert.equal(reply.result, 'accepted');
    assert.notEqual(reply.id, id);
    const fresh = await jobRow(s.db, reply.id);
    const orig = await jobRow(s.db, id);
    assert.equal(fresh.queue_state, 'queued');
    assert.equal(fresh.rerun_of, id);
    assert.equal(fresh.workflow, 'jobs_hello');
    assert.equal(fresh.priority, 3);
    assert.equal(fresh.persist, true);
    assert.deepEqual(fresh.parameters, orig.parameters);
    assert.deepEqual(fresh.resolved_parameters, orig.resolved_parameters);
    assert.deepEqual(fresh.definition, stored);
    assert.equal(fresh.started_at, null);
    assert.equal(fresh.finished_at, null);
    assert.deepEqual(
      (await taskRows(s.db, reply.id)).map((x) => [x.name, x.state]),
      [['hello', 'waiting']],
    );
    assert.equal(orig.queue_state, 'broken');
    assert.equal(orig.finished_at.toISOString(), '2030-01-01T00:00:00.000Z');
    assert.equal(await count(s.db, 'callback_deliveries', 'job_id = $1', [id]), 0);
    const logs = (await getJobLogs(t.ctx, DEMO, String(id), { showAll: false })).map((l) => l.message);
    assert.equal(logs.at(-1), `Job broken (was completed): superseded by rerun as job ${reply.id}`);
  });

  it('reruns a started job by breaking it, and a broken job stays broken', async () => {
    const { id, attemptId } = await startedJob();
    const first = await rerunJob(t.ctx, DEMO, String(id));
    assert.equal((await jobRow(s.db, id)).queue_state, 'broken');
    const { rows } = await s.db.query<{ state: string }>('SELECT state FROM attempts WHERE id = $1', [
      attemptId,
    ]);
    assert.equal(rows[0]!.state, 'cancelled');
    assert.equal(await count(s.db, 'callback_deliveries', "job_id = $1 AND kind = 'job'", [id]), 1);
    assert.equal((await jobRow(s.db, first.id)).queue_state, 'queued');
    const second = await rerunJob(t.ctx, DEMO, String(id));
    assert.notEqual(second.id, first.id);
    assert.equal((await jobRow(s.db, id)).queue_state, 'broken');
    assert.equal((await jobRow(s.db, second.id)).rerun_of, id);
    // Still one job-end callback for the original.
    assert.equal(await count(s.db, 'callback_deliveries', "job_id = $1 AND kind = 'job'", [id]), 1);
  });

  it('shows hidden (DEBUG) log entries only with showAll, with severity descriptions', async () => {
    const id = await submit();
    await appendLog(s.db, {
      jobId: id,
      progname: 'worker',
      severity: 0,
      message: 'debug detail',
      taskId: 5,
      now: t.clock.now(),
    });
    await appendLog(s.db, {
      jobId: id,
      progname: 'worker',
      severity: 3,
      message: 'an error',
      now: t.clock.now(),
    });
    const shown = await getJobLogs(t.ctx, DEMO, String(id), { showAll: false });
    const all = await getJobLogs(t.ctx, DEMO, String(id), { showAll: true });
    assert.equal(all.length, shown.length + 1);
    assert.equal(
      shown.some((l) => l.message === 'debug detail'),
      false,
    );
    const debug = all.find((l) => l.message === 'debug detail')!;
    assert.deepEqual(
      [debug.severity, debug.severity_description, debug.visible, debug.task_id],
      [0, 'DEBUG', false, 5],
    );
    assert.equal(shown.at(-1)!.severity_description, 'ERROR');
    assert.deepEqual(Object.keys(shown[0]!).sort(), [
      'created_at',
      'id',
      'job_id',
      'message',
      'progname',
      'severity',
      'severity_description',
      'task_id',
      'updated_at',
      'visible',
    ]);
    for (let i = 1; i < all.length; i++) assert.ok(all[i]!.id > all[i - 1]!.id, 'entries in order');
  });
});
