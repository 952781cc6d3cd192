import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { getJob, getJobLogs, listJobs, submitJob } from '../../src/engine/jobs/service.js';
import type { Executor } from '../../src/store/executor.js';
import { CHANNELS } from '../../src/engine/signals.js';
import { waitFor } from '../helpers/wait-for.js';
import {
  ACME,
  count,
  createJobsContext,
  DEMO,
  jobRow,
  type JobsTestContext,
  REQUEST,
  taskRows,
  rejects,
} from './jobs-helpers.js';

const hello = (parameters: unknown = { content_id: 'abc-123' }, job: Record<string, unknown> = {}) => ({
  job: { workflow: 'jobs_hello', ...job },
  parameters,
});

forEachStore('jobs: submission', (kind) => {
  let s: TestStore;
  let t: JobsTestContext;
  before(async () => {
    s = await createTestStore(kind);
    t = await createJobsContext(s.db);
  });
  after(async () => {
    await t.cleanup();
    await s.dispose();
  });

  it('queues a job now: parameters as submitted, defaults resolved, definition frozen, tasks waiting with needs', async () => {
    const { id } = await submitJob(t.ctx, DEMO, hello({ content_id: 'abc-123' }), REQUEST);
    assert.equal(typeof id, 'number');
    const row = await jobRow(s.db, id);
    assert.equal(row.queue_state, 'queued');
    assert.equal(row.client, 'demo-client');
    assert.equal(row.priority, 5);
    assert.deepEqual(row.parameters, { content_id: 'abc-123' });
    assert.deepEqual(row.resolved_parameters, { content_id: 'abc-123', seconds: 1, label: 'abc-123-label' });
    assert.equal(row.content_id, 'abc-123');
    assert.equal(row.definition.name, 'jobs_hello');
    assert.equal(row.definition_source, 'common');
    assert.equal(row.queued_at.getTime(), t.clock.now().getTime());
    assert.equal(row.run_at.getTime(), t.clock.now().getTime());
    const tasks = await taskRows(s.db, id);
    assert.deepEqual(
      tasks.map((x) => [x.name, x.state, x.queue, x.needs, x.position]),
      [
        ['hello', 'waiting', 'work', [], 0],
        ['wait', 'waiting', 'work', ['hello'], 1],
        ['report', 'waiting', 'work', ['wait'], 2],
      ],
    );
  });

  it('resolves needs given in the file ([] and fan-in) and task queues', async () => {
    const { id } = await submitJob(t.ctx, DEMO, { job: { workflow: 'jobs_fanout' } }, REQUEST);
    const tasks = await taskRows(s.db, id);
    assert.deepEqual(
      tasks.map((x) => [x.name, x.queue, x.needs]),
      [
        ['left', 'work', []],
        ['right', 'jobs_media', []],
        ['join', 'work', ['left', 'right']],
      ],
    );
    assert.deepEqual((await jobRow(s.db, id)).parameters, {});
    assert.equal((await jobRow(s.db, id)).content_id, null);
  });

  it("uses the client's own definition and says so in the log", async () => {
    const { id } = await submitJob(t.ctx, ACME, hello({}), { ...REQUEST, headers: {} });
    const row = await jobRow(s.db, id);
    assert.equal(row.definition_source, 'client');
    assert.deepEqual(
      (await taskRows(s.db, id)).map((x) => x.name),
      ['only'],
    );
    const logs = await getJobLogs(t.ctx, ACME, String(id), { showAll: false });
    assert.equal(logs[1]!.message, 'Using client definitions.');
  });

  it('writes the submission log entry with every key-like header masked but its last 4 characters', async () => {
    const body = { client: 'demo-client', ...hello({ content_id: 'x1' }) };
    const headers = {
      'api-key': 'a'.repeat(28) + '3e2d',
      'x-api-key': 'b'.repeat(28) + '9f9f',
      'x-auth-key': 'c'.repeat(12) + '1234',
      authorization: 'Bearer ' + 'd'.repeat(20) + 'wxyz',
      'user-agent': 'RestSharp/106.3.1.0',
    };
    const { id } = await submitJob(t.ctx, DEMO, body, { path: '/job', remoteAddr: '99.80.104.160', headers });
    const logs = await getJobLogs(t.ctx, DEMO, String(id), { showAll: true });
    const first = logs[0]!;
    assert.equal(first.progname, 'api');
    assert.equal(first.severity, 1);
    assert.equal(first.severity_description, 'INFO');
    assert.equal(first.task_id, 0);
    assert.equal(first.visible, true);
    const msg = JSON.parse(first.message) as {
      path: string;
      remote_addr: string;
      payload: string;
      parameters: unknown;
      headers: Record<string, string>;
    };
    assert.equal(msg.path, 'POST /job');
    assert.equal(msg.remote_addr, '99.80.104.160');
    assert.equal(msg.payload, 'job_created');
    assert.deepEqual(msg.parameters, body);
    assert.equal(msg.headers['api-key'], '*'.repeat(28) + '3e2d');
    assert.equal(msg.headers['x-api-key'], '*'.repeat(28) + '9f9f');
    assert.equal(msg.headers['x-auth-key'], '*'.repeat(12) + '1234');
    assert.equal(msg.headers.authorization, '*'.repeat(27) + 'wxyz');
    assert.equal(msg.headers['user-agent'], 'RestSharp/106.3.1.0');
    assert.ok(!first.message.includes('aaaa'), 'no key material in the log');
    assert.equal(logs[1]!.message, 'No client definitions. Using common definitions.');
  });

  it('schedules a job with a future run_at, read as UTC without a zone, and logs when it will run', async () => {
    const got: string[] = [];
    const unlisten = await s.db.listen(CHANNELS.scheduler, (p) => got.push(p));
    const { id } = await submitJob(
      t.ctx,
      DEMO,
      hello(undefined, { run_at: '2030-06-19T17:00:30.000' }),
      REQUEST,
    );
    const row = await jobRow(s.db, id);
    assert.equal(row.queue_state, 'scheduled');
    assert.equal(row.run_at.toISOString(), '2030-06-19T17:00:30.000Z');
    assert.equal(row.queued_at, null);
    const { rows } = await s.db.query<{ t: string }>(
      `SELECT to_char(run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS t FROM jobs WHERE id = $1`,
      [id],
    );
    assert.equal(rows[0]!.t, '2030-06-19 17:00:30.000');
    const logs = await getJobLogs(t.ctx, DEMO, String(id), { showAll: false });
    assert.equal(logs.at(-1)!.message, 'Job will run at: "2030-06-19T17:00:30.000Z"');
    await waitFor(() => got.includes(String(id)), { what: 'scheduler notification' });
    await unlisten();
    const rec = await getJob(t.ctx, DEMO, String(id));
    assert.equal(rec.run_at, '2030-06-19T17:00:30.000Z');
  });

  it('honours an explicit offset in run_at, and a past run_at with a semaphore is pending', async () => {
    const a = await submitJob(
      t.ctx,
      DEMO,
      hello(undefined, { run_at: '2030-06-19T19:00:30+02:00' }),
      REQUEST,
    );
    assert.equal((await jobRow(s.db, a.id)).run_at.toISOString(), '2030-06-19T17:00:30.000Z');
    const b = await submitJob(
      t.ctx,
      DEMO,
      hello(undefined, { run_at: '2020-01-01T00:00:00Z', semaphore_url: 'http://127.0.0.1:9/go' }),
      REQUEST,
    );
    const row = await jobRow(s.db, b.id);
    assert.equal(row.queue_state, 'pending');
    assert.equal(row.semaphore_url, 'http://127.0.0.1:9/go');
    const c = await submitJob(
      t.ctx,
      DEMO,
      hello(undefined, { semaphore_url: 'https://example.com/ready' }),
      REQUEST,
    );
    assert.equal((await jobRow(s.db, c.id)).queue_state, 'pending');
  });

  it('parses run_at the same whatever the process time zone', () => {
    const script = fileURLToPath(new URL('../../src/engine/jobs/time.ts', import.meta.url));
    for (const tz of ['America/New_York', 'Asia/Kolkata', 'UTC']) {
      const res = spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          '--input-type=module',
          '-e',
          `const m = await import(${JSON.stringify(script)}); console.log(m.parseTimestampIn('run_at', '2030-06-19T17:00:30.123').toISOString());`,
        ],
        { env: { ...process.env, TZ: tz }, encoding: 'utf8' },
      );
      assert.equal(res.stdout.trim(), '2030-06-19T17:00:30.123Z', `TZ=${tz}: ${res.stderr}`);
    }
  });

  it('accepts a numeric string priority and stores a number; persist and top_of_queue are kept', async () => {
    const { id } = await submitJob(
      t.ctx,
      DEMO,
      hello(undefined, { priority: '2', persist: true, top_of_queue: true }),
      REQUEST,
    );
    const row = await jobRow(s.db, id);
    assert.equal(row.priority, 2);
    assert.equal(row.persist, true);
    assert.equal(row.top_of_queue, true);
  });

  it('refuses every bad body with a 400 that says what is accepted, and writes nothing', async () => {
    const before = await count(s.db, 'jobs');
    const cases: [unknown, string, string[]][] = [
      [null, 'VALIDATION_FAILED', ['JSON object']],
      [[1], 'VALIDATION_FAILED', ['JSON object']],
      [{}, 'VALIDATION_FAILED', ['job must be an object']],
      [{ job: 'x' }, 'VALIDATION_FAILED', ['job must be an object']],
      [{ job: {} }, 'VALIDATION_FAILED', ['job.workflow']],
      [
        { job: { workflow: 'jobs_hello', colour: 1, size: 2 } },
        'VALIDATION_FAILED',
        ['"colour"', '"size"', 'accepted'],
      ],
      [hello(undefined, { priority: 0 }), 'VALIDATION_FAILED', ['job.priority', '1 to 10']],
      [hello(undefined, { priority: 11 }), 'VALIDATION_FAILED', ['job.priority']],
      [hello(undefined, { priority: '2.5' }), 'VALIDATION_FAILED', ['job.priority']],
      [hello(undefined, { priority: 'high' }), 'VALIDATION_FAILED', ['job.priority']],
      [hello(undefined, { run_at: '2030-02-30T10:00:00' }), 'VALIDATION_FAILED', ['job.run_at', 'day 30']],
      [hello(undefined, { run_at: 'tomorrow' }), 'VALIDATION_FAILED', ['job.run_at', 'yyyy-MM-ddTHH:mm:ss']],
      [hello(undefined, { run_at: '2030-01-01 10:00:00' }), 'VALIDATION_FAILED', ['job.run_at']],
      [hello(undefined, { run_at: '2030-01-01T24:00:00' }), 'VALIDATION_FAILED', ['hour 24']],
      [hello(undefined, { run_at: 1893456000 }), 'VALIDATION_FAILED', ['job.run_at must be a string']],
      [hello(undefined, { semaphore_url: 'ftp://x/y' }), 'VALIDATION_FAILED', ['job.semaphore_url', 'http']],
      [hello(undefined, { semaphore_url: 'not a url' }), 'VALIDATION_FAILED', ['job.semaphore_url']],
      [hello(undefined, { persist: 'yes' }), 'VALIDATION_FAILED', ['job.persist', 'true or false']],
      [
        { job: { workflow: 'jobs_hello' }, parameters: [1] },
        'VALIDATION_FAILED',
        ['parameters must be an object'],
      ],
      [{ client: 'acme', ...hello() }, 'VALIDATION_FAILED', ['does not match', 'demo-client']],
      [{ job: { workflow: 'nope' } }, 'UNKNOWN_WORKFLOW', ['"nope"', 'available: jobs_fanout, jobs_hello']],
      [hello({}), 'VALIDATION_FAILED', ['content_id']],
      [hello({ content_id: 5, seconds: 'x' }), 'VALIDATION_FAILED', ['content_id', 'seconds']],
      [
        { job: { workflow: 'jobs_fanout' }, parameters: { count: 9, mode: 'x' } },
        'VALIDATION_FAILED',
        ['count', 'mode'],
      ],
    ];
    for (const [body, code, parts] of cases)
      await rejects(submitJob(t.ctx, DEMO, body, REQUEST), code, ...parts);
    assert.equal(await count(s.db, 'jobs'), before);
  });

  it('leaves nothing half-written when a statement of the submission fails', async () => {
    const jobs = await count(s.db, 'jobs');
    const tasks = await count(s.db, 'tasks');
    const logs = await count(s.db, 'logs');
    // A definition that bypassed the loader with two tasks of one name: the second task insert fails.
    const resolved = t.ctx.catalog.resolve('demo-client', 'jobs_hello')!;
    const broken = structuredClone(resolved);
    broken.definition.tasks.push({ ...broken.definition.tasks[0]! });
    const ctx = { ...t.ctx, catalog: { ...t.ctx.catalog, resolve: () => broken } };
    await assert.rejects(submitJob(ctx, DEMO, hello(), REQUEST));
    assert.equal(await count(s.db, 'jobs'), jobs);
    assert.equal(await count(s.db, 'tasks'), tasks);
    assert.equal(await count(s.db, 'logs'), logs);
  });

  it('writes submissions that arrive together with few statements, each whole, and one that fails fails alone', async () => {
    // The same database through an executor that counts statements (a writer of its own).
    let statements = 0;
    const db: Executor = {
      ...s.db,
      query: (sql, params) => {
        statements++;
        return s.db.query(sql, params);
      },
    };
    const ctx = { ...t.ctx, db };
    const submitMany = (n: number, bad = -1) =>
      Promise.allSettled(
        Array.from({ length: n }, (_, i) => {
          if (i !== bad) return submitJob(ctx, DEMO, hello({ content_id: `batch-${n}-${i}-x` }), REQUEST);
          // Two tasks of one name: the database refuses this submission.
          const broken = structuredClone(t.ctx.catalog.resolve('demo-client', 'jobs_hello')!);
          broken.definition.tasks.push({ ...broken.definition.tasks[0]! });
          return submitJob(
            { ...ctx, catalog: { ...ctx.catalog, resolve: () => broken } },
            DEMO,
            hello({ content_id: `batch-${n}-${i}-x` }),
            REQUEST,
          );
        }),
      );
    const assertWhole = async (id: number, contentId: string) => {
      assert.equal((await jobRow(s.db, id)).content_id, contentId);
      assert.deepEqual(
        (await taskRows(s.db, id)).map((x) => [x.name, x.position]),
        [
          ['hello', 0],
          ['wait', 1],
          ['report', 2],
        ],
      );
      const logs = await getJobLogs(t.ctx, DEMO, String(id), { showAll: true });
      assert.deepEqual(
        logs.map((l) =>
          l.message.startsWith('{')
            ? (JSON.parse(l.message) as { parameters: { parameters: unknown } }).parameters.parameters
            : l.message,
        ),
        [{ content_id: contentId }, 'No client definitions. Using common definitions.'],
      );
      assert.deepEqual(
        (await listJobs(t.ctx, DEMO, { search: contentId })).map((j) => j.id),
        [id],
      );
    };

    const together = await submitMany(12);
    assert.ok(statements <= 3, `12 submissions written by ${statements} statements`);
    const ids = together.map((r) => (r.status === 'fulfilled' ? r.value.id : NaN));
    assert.equal(new Set(ids).size, 12);
    for (const [i, id] of ids.entries()) await assertWhole(id, `batch-12-${i}-x`);

    const jobs = await count(s.db, 'jobs');
    const mixed = await submitMany(10, 5);
    assert.equal(mixed[5]!.status, 'rejected');
    assert.equal(await count(s.db, 'jobs'), jobs + 9);
    for (const [i, r] of mixed.entries())
      if (i !== 5)
        await assertWhole((r as PromiseFulfilledResult<{ id: number }>).value.id, `batch-10-${i}-x`);
    assert.equal(await count(s.db, 'jobs', 'content_id = $1', ['batch-10-5-x']), 0);
  });

  it('notifies admission for a queued job', async () => {
    const got: string[] = [];
    const unlisten = await s.db.listen(CHANNELS.admission, (p) => got.push(p));
    await submitJob(t.ctx, DEMO, hello(), REQUEST);
    await waitFor(() => got.length > 0, { what: 'admission notification' });
    await unlisten();
  });
});
