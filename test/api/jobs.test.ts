/**
 * The job routes end to end through HTTP (`app.inject()`) on both stores: every reply's shape field
 * by field, and every bad input answered 4xx JSON saying what is accepted, with nothing written.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { forEachStore } from '../helpers/stores.js';
import { createApiHarness, json, type ApiHarness, type TestClient } from './harness.js';

const ISO_MS_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const JOB_FIELDS = [
  'client',
  'created_at',
  'failed',
  'finished_at',
  'id',
  'idempotency_key',
  'parameters',
  'persist',
  'position',
  'priority',
  'queue_state',
  'rerun_by',
  'rerun_of',
  'retried_at',
  'run',
  'run_at',
  'semaphore_url',
  'started_at',
  'top_of_queue',
  'updated_at',
  'workflow',
];

/** Row counts of every table a request could write. */
async function snapshot(h: ApiHarness): Promise<string> {
  const { rows } = await h.store.db.query(
    `SELECT (SELECT count(*) FROM jobs)::int AS jobs, (SELECT count(*) FROM tasks)::int AS tasks,
            (SELECT count(*) FROM logs)::int AS logs, (SELECT count(*) FROM settings)::int AS settings,
            (SELECT max(updated_at) FROM jobs) AS jobs_updated`,
  );
  return JSON.stringify(rows[0]);
}

/** Asserts a 4xx JSON error whose message matches `message`, and that nothing was written. */
async function refusedBody(
  h: ApiHarness,
  status: number,
  message: RegExp,
  send: () => Promise<LightMyRequestResponse>,
): Promise<{ error: string; id?: number }> {
  const before = await snapshot(h);
  const res = await send();
  assert.equal(res.statusCode, status, res.body);
  const body = json<{ error: string; id?: number }>(res);
  assert.equal(typeof body.error, 'string');
  assert.match(body.error, message);
  assert.equal(await snapshot(h), before, 'nothing was written');
  return body;
}

/** {@link refusedBody} for tests that need no reply body. */
async function refused(
  h: ApiHarness,
  status: number,
  message: RegExp,
  send: () => Promise<LightMyRequestResponse>,
): Promise<void> {
  await refusedBody(h, status, message, send);
}

forEachStore('API jobs', (kind) => {
  let h: ApiHarness;
  let jobId: number;
  const submit = (as: TestClient, body: unknown) => h.call(as, 'POST', '/job', body);

  before(async () => {
    h = await createApiHarness(kind);
    const res = await submit(h.acme, {
      client: 'acme',
      job: { workflow: 'greet', priority: '2', persist: true },
      parameters: { content_id: 'abc-1' },
      ignored_top_level: true,
    });
    assert.equal(res.statusCode, 200, res.body);
    jobId = json<{ id: number }>(res).id;
  });
  after(() => h.close());

  void describe('shapes', () => {
    void test('POST /job answers {"id": <number>, "result": "accepted"}', async () => {
      const res = await submit(h.acme, { job: { workflow: 'greet' }, parameters: { content_id: 'shape' } });
      assert.equal(res.statusCode, 200);
      const body = json(res);
      assert.deepEqual(Object.keys(body).sort(), ['id', 'result']);
      assert.equal(typeof body.id, 'number');
      assert.equal(body.result, 'accepted');
    });

    void test('GET /jobs/<id> has the job record and its tasks', async () => {
      const res = await h.call(h.acme, 'GET', `/jobs/${jobId}`);
      assert.equal(res.statusCode, 200);
      const job = json<Record<string, unknown>>(res);
      assert.deepEqual(
        Object.keys(job).sort(),
        [...JOB_FIELDS, 'schedule', 'scheduled_for', 'outputs', 'error', 'waiting', 'tasks'].sort(),
      );
      assert.equal(job.id, jobId);
      assert.equal(job.client, 'acme');
      assert.equal(job.workflow, 'greet');
      assert.equal(job.priority, 2, 'the numeric string "2" is stored as 2');
      assert.equal(job.position, 1);
      assert.equal(job.top_of_queue, false);
      assert.deepEqual(job.parameters, { content_id: 'abc-1' }, 'parameters as submitted, no defaults');
      assert.equal(job.queue_state, 'queued');
      assert.equal(job.failed, false);
      assert.equal(job.persist, true);
      assert.equal(job.started_at, null);
      assert.equal(job.finished_at, null);
      assert.equal(job.semaphore_url, null);
      assert.equal(job.outputs, null, 'no outputs before the job ends');
      assert.equal(job.error, null);
      for (const k of ['created_at', 'updated_at', 'run_at']) assert.match(String(job[k]), ISO_MS_Z, k);
      const tasks = job.tasks as Record<string, unknown>[];
      for (const t of tasks) {
        assert.deepEqual(
          [t.output, t.progress, t.progress_message, t.progress_detail, t.progress_at, t.duration_ms],
          [null, null, null, null, null, null],
          'a task that has not started has no output, progress or duration',
        );
        assert.match(String(t.run_after), ISO_MS_Z);
        assert.match(String(t.created_at), ISO_MS_Z);
      }
      assert.deepEqual(tasks[1]!.needs, ['hello']);
      assert.deepEqual(
        tasks.map((t) => [t.name, t.queue, t.state, t.attempts, t.started_at, t.finished_at, t.error]),
        [
          ['hello', 'work', 'waiting', 0, null, null, null],
          ['wait', 'slow', 'waiting', 0, null, null, null],
        ],
      );
      for (const t of tasks) assert.equal(typeof t.id, 'number');
    });

    void test('GET /jobs lists own jobs, newest first, with the record fields', async () => {
      await submit(h.other, { job: { workflow: 'greet' }, parameters: { content_id: 'not-acme' } });
      const res = await h.call(h.acme, 'GET', '/jobs');
      assert.equal(res.statusCode, 200);
      const rows = json<Record<string, unknown>[]>(res);
      assert.ok(rows.length >= 2);
      for (const r of rows) {
        assert.deepEqual(Object.keys(r).sort(), JOB_FIELDS);
        assert.equal(r.client, 'acme', 'a client sees only its own jobs');
      }
      const ids = rows.map((r) => r.id as number);
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => b - a),
      );
      const admin = json<Record<string, unknown>[]>(await h.call(h.root, 'GET', '/jobs?client=other'));
      assert.ok(admin.length >= 1 && admin.every((r) => r.client === 'other'));
    });

    void test('GET /jobs filters: state, job_ids, limit, asc, search', async () => {
      const rows = json<{ id: number }[]>(
        await h.call(h.acme, 'GET', `/jobs?state=0&job_ids=${jobId}&limit=5&asc=1&search=abc-1`),
      );
      assert.deepEqual(
        rows.map((r) => r.id),
        [jobId],
      );
    });

    void test('PATCH /jobs/<id> answers "Performed updates" and changes the job', async () => {
      const res = await h.call(h.acme, 'PATCH', `/jobs/${jobId}`, {
        client: 'acme',
        priority: '3',
        persist: false,
      });
      assert.equal(res.statusCode, 200);
      const body = json(res);
      assert.equal(body.id, jobId);
      assert.match(String(body.result), /^Performed updates: .*priority/);
      const job = json(await h.call(h.acme, 'GET', `/jobs/${jobId}`));
      assert.equal(job.priority, 3);
      assert.equal(job.persist, false);
    });

    void test('GET /logs/<id> lists entries with the seed fields; the first records the submission', async () => {
      const res = await h.call(h.acme, 'GET', `/logs/${jobId}`);
      assert.equal(res.statusCode, 200);
      const entries = json<Record<string, unknown>[]>(res);
      assert.ok(entries.length >= 1);
      const first = entries[0]!;
      assert.deepEqual(Object.keys(first).sort(), [
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
      assert.equal(first.job_id, jobId);
      assert.equal(first.progname, 'api');
      assert.equal(first.severity, 1);
      assert.equal(first.severity_description, 'INFO');
      assert.equal(first.task_id, 0);
      assert.equal(first.visible, true);
      assert.match(String(first.created_at), ISO_MS_Z);
      const message = JSON.parse(String(first.message)) as {
        path: string;
        headers: Record<string, string>;
        payload: string;
      };
      assert.equal(message.path, 'POST /job');
      assert.equal(message.payload, 'job_created');
      assert.equal(JSON.stringify(message).includes(h.acme.apiKey), false, 'the key is masked');
      const all = await h.call(h.acme, 'GET', `/logs/${jobId}?show_all=1`);
      assert.equal(all.statusCode, 200);
      assert.ok(json<unknown[]>(all).length >= entries.length);
    });

    void test('POST /jobs/<id>/rerun answers the new id and breaks the original', async () => {
      const created = json<{ id: number }>(
        await submit(h.acme, { job: { workflow: 'greet' }, parameters: { content_id: 'rr' } }),
      );
      const res = await h.call(h.acme, 'POST', `/jobs/${created.id}/rerun`);
      assert.equal(res.statusCode, 200);
      const body = json<{ id: number; result: string }>(res);
      assert.equal(body.result, 'accepted');
      assert.equal(typeof body.id, 'number');
      assert.notEqual(body.id, created.id);
      assert.equal(json(await h.call(h.acme, 'GET', `/jobs/${created.id}`)).queue_state, 'broken');
      const copy = json(await h.call(h.acme, 'GET', `/jobs/${body.id}`));
      assert.deepEqual(copy.parameters, { content_id: 'rr' });
      assert.equal(copy.queue_state, 'queued');
    });
  });

  void describe('bad input: 4xx JSON saying what is accepted, nothing written', () => {
    const json415 = { headers: { 'content-type': 'text/plain' } };
    void test('malformed JSON is a 400', () =>
      refused(h, 400, /not valid JSON.*application\/json/, () =>
        h.call(h.acme, 'POST', '/job', '{"job": {"workflow": "greet"', {
          headers: { 'content-type': 'application/json' },
        }),
      ));
    void test('a non-JSON content type is a 415', async () => {
      await refused(h, 415, /text\/plain.*application\/json/, () =>
        h.call(h.acme, 'POST', '/job', 'job=greet', json415),
      );
      await refused(h, 415, /application\/json/, () =>
        h.call(h.acme, 'PATCH', `/jobs/${jobId}`, 'priority=2', {
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        }),
      );
    });
    void test('a body over 1 MiB is a 413', () =>
      refused(h, 413, /1 MiB/, () =>
        submit(h.acme, {
          job: { workflow: 'greet' },
          parameters: { content_id: 'x', pad: 'x'.repeat(1024 * 1024) },
        }),
      ));
    void test('job not an object is a 400', () =>
      refused(h, 400, /job must be an object/, () => submit(h.acme, { job: 'greet' })));
    void test('parameters not an object is a 400', async () => {
      await refused(h, 400, /parameters must be an object/, () =>
        submit(h.acme, { job: { workflow: 'greet' }, parameters: [1] }),
      );
      await refused(h, 400, /parameters must be an object/, () =>
        submit(h.acme, { job: { workflow: 'greet' }, parameters: 'x' }),
      );
    });
    void test('an unknown workflow is a 400 listing the available ones', () =>
      refused(h, 400, /"nope".*available: greet, private/, () =>
        submit(h.acme, { job: { workflow: 'nope' }, parameters: {} }),
      ));
    void test("another client's workflow is unknown to this client", () =>
      refused(h, 400, /"private" does not exist/, () =>
        submit(h.other, { job: { workflow: 'private' }, parameters: {} }),
      ));
    void test('a missing required parameter is named', async () => {
      const body = await refusedBody(h, 400, /content_id/, () =>
        submit(h.acme, { job: { workflow: 'greet' }, parameters: {} }),
      );
      assert.equal(body.id, undefined, 'no job id: nothing was created');
    });
    for (const priority of [0, 11, 2.5, 'abc'])
      void test(`priority ${JSON.stringify(priority)} is a 400 naming 1 to 10`, () =>
        refused(h, 400, /priority.*1 to 10/, () =>
          submit(h.acme, { job: { workflow: 'greet', priority }, parameters: { content_id: 'p' } }),
        ));
    for (const runAt of ['tomorrow', '2030-02-30T00:00:00.000'])
      void test(`run_at ${runAt} is a 400 naming the accepted format`, () =>
        refused(h, 400, /run_at.*accepted: yyyy-MM-ddTHH:mm:ss/, () =>
          submit(h.acme, { job: { workflow: 'greet', run_at: runAt }, parameters: { content_id: 'r' } }),
        ));
    void test('an unknown field inside job is a 400 listing the accepted ones', () =>
      refused(h, 400, /unknown field "colour".*accepted: workflow/, () =>
        submit(h.acme, { job: { workflow: 'greet', colour: 'red' }, parameters: { content_id: 'u' } }),
      ));
    void test('a body client different from the header is a 400', async () => {
      await refused(h, 400, /"client".*does not match the client header/, () =>
        submit(h.acme, { client: 'other', job: { workflow: 'greet' }, parameters: { content_id: 'c' } }),
      );
      await refused(h, 400, /does not match the client header/, () =>
        h.call(h.acme, 'PATCH', `/jobs/${jobId}`, { client: 'root', priority: 1 }),
      );
    });
    void test('GET /jobs/abc is a 400 saying a job id is a positive whole number', () =>
      refused(h, 400, /positive whole number/, () => h.call(h.acme, 'GET', '/jobs/abc')));
    void test('an unknown job id is a 404', () =>
      refused(h, 404, /not found/, () => h.call(h.acme, 'GET', '/jobs/999999')));
    void test('order_by with SQL in it is a 400 listing the columns, and the table survives', async () => {
      await refused(h, 400, /order_by.*accepted: id, created_at/, () =>
        h.call(h.acme, 'GET', `/jobs?order_by=${encodeURIComponent('id;drop table jobs')}`),
      );
      assert.equal(json<unknown[]>(await h.call(h.acme, 'GET', '/jobs')).length > 0, true);
    });
    void test('state=9 is a 400 listing the states', () =>
      refused(h, 400, /state.*0 \(queued\).*6 \(paused\)/, () => h.call(h.acme, 'GET', '/jobs?state=9')));
    for (const limit of ['-1', '100000'])
      void test(`limit=${limit} is a 400 naming 1 to 1000`, () =>
        refused(h, 400, /limit.*1 to 1000/, () => h.call(h.acme, 'GET', `/jobs?limit=${limit}`)));
    for (const [query, message] of [
      ['after_id=abc', /after_id must be a whole number from 1/],
      ['after_id=0', /after_id must be a whole number from 1/],
      ['after_id=999999', /after_id 999999 is not a job of client "acme"/],
      ['after_id=1&offset=10', /after_id and offset cannot be combined/],
    ] as const)
      void test(`GET /jobs?${query} is a 400`, () =>
        refused(h, 400, message, () => h.call(h.acme, 'GET', `/jobs?${query}`)));
    void test("after_id of another client's job is a 400 for a non-admin, as an unknown id", async () => {
      const [theirs] = json<{ id: number }[]>(await h.call(h.root, 'GET', '/jobs?client=other&limit=1'));
      assert.ok(theirs);
      await refused(h, 400, new RegExp(`after_id ${theirs.id} is not a job of client "acme"`), () =>
        h.call(h.acme, 'GET', `/jobs?after_id=${theirs.id}`),
      );
    });
    void test('GET /jobs?after_id= continues right after that job', async () => {
      const all = json<{ id: number }[]>(await h.call(h.acme, 'GET', '/jobs?limit=1000&asc=1'));
      assert.ok(all.length >= 2);
      const res = await h.call(h.acme, 'GET', `/jobs?limit=1000&asc=1&after_id=${all[0]!.id}`);
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(
        json<{ id: number }[]>(res).map((r) => r.id),
        all.slice(1).map((r) => r.id),
      );
    });
    void test('job_ids=1,x is a 400', () =>
      refused(h, 400, /job_ids.*"x"/, () => h.call(h.acme, 'GET', '/jobs?job_ids=1,x')));
    void test('from later than to is a 400', () =>
      refused(h, 400, /from.*after.*to/, () =>
        h.call(h.acme, 'GET', '/jobs?from=2030-01-02T00:00:00.000&to=2030-01-01T00:00:00.000'),
      ));
    void test('show_all=maybe is a 400', () =>
      refused(h, 400, /show_all accepts 1/, () => h.call(h.acme, 'GET', `/logs/${jobId}?show_all=maybe`)));
    void test('PATCH with an unknown field is a 400 listing the accepted fields', async () => {
      const body = await refusedBody(
        h,
        400,
        /unknown field "colour".*accepted: persist, priority, queue_state/,
        () => h.call(h.acme, 'PATCH', `/jobs/${jobId}`, { colour: 'red', priority: 1 }),
      );
      assert.equal(body.id, jobId);
    });
    void test('PATCH queue_state "done" is a 400 listing paused, broken, queued', () =>
      refused(h, 400, /"done".*paused, broken, queued/, () =>
        h.call(h.acme, 'PATCH', `/jobs/${jobId}`, { queue_state: 'done' }),
      ));
    void test("PATCH of another client's job is a 404, and so are its GET, logs and rerun", async () => {
      await refused(h, 404, /not found/, () => h.call(h.other, 'PATCH', `/jobs/${jobId}`, { priority: 1 }));
      await refused(h, 404, /not found/, () => h.call(h.other, 'GET', `/jobs/${jobId}`));
      await refused(h, 404, /not found/, () => h.call(h.other, 'GET', `/logs/${jobId}`));
      await refused(h, 404, /not found/, () => h.call(h.other, 'POST', `/jobs/${jobId}/rerun`));
    });
    void test('a transition the state forbids is a 409', async () => {
      const created = json<{ id: number }>(
        await submit(h.acme, { job: { workflow: 'greet' }, parameters: { content_id: 'b' } }),
      );
      assert.equal(
        (await h.call(h.acme, 'PATCH', `/jobs/${created.id}`, { queue_state: 'broken' })).statusCode,
        200,
      );
      await refused(h, 409, /broken/, () =>
        h.call(h.acme, 'PATCH', `/jobs/${created.id}`, { queue_state: 'paused' }),
      );
    });
  });
});
