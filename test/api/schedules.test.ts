/**
 * User schedules through HTTP on both stores: POST /schedules and its validation, GET /schedules
 * beside the maintenance schedules, PUT /scheduler, DELETE /schedules/<name>, and who may do what.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { fireCronSchedule } from '../../src/engine/scheduler/cron-runner.js';
import { forEachStore } from '../helpers/stores.js';
import { createApiHarness, json, type ApiHarness } from './harness.js';

const MAINTENANCE = ['cleanup_jobs', 'push_jobs', 'queue_scheduled_jobs', 'recover_stalled_tasks'];

forEachStore('API user schedules', (kind) => {
  let h: ApiHarness;
  before(async () => {
    h = await createApiHarness(kind);
  });
  after(() => h.close());

  const nightly = {
    name: 'acme-nightly',
    cron: '30 2 * * *',
    timezone: 'Europe/London',
    workflow: 'greet',
    parameters: { content_id: 'nightly' },
    priority: '3',
    overlap: 'skip',
    catch_up: 'all',
  };
  const schedules = async (as: ApiHarness['acme']) =>
    json<{ result: string; schedules: Record<string, Record<string, unknown>> }>(
      await h.call(as, 'GET', '/schedules'),
    ).schedules;

  void test('POST /schedules adds a schedule (201) that GET /schedules lists beside the maintenance ones', async () => {
    const res = await h.call(h.acme, 'POST', '/schedules', nightly);
    assert.equal(res.statusCode, 201, res.body);
    const body = json<{ result: string; name: string; schedule: Record<string, unknown> }>(res);
    assert.equal(body.result, 'ok');
    assert.equal(body.name, 'acme-nightly');
    const listed = (await schedules(h.acme))['acme-nightly']!;
    assert.deepEqual(listed, body.schedule);
    assert.deepEqual(
      Object.fromEntries(Object.entries(listed).filter(([k]) => k !== 'next_run_at' && k !== 'description')),
      {
        class: 'SubmitWorkflow',
        cron: '30 2 * * *',
        timezone: 'Europe/London',
        queue: 'scheduler',
        active: true,
        last_run_at: null,
        workflow: 'greet',
        parameters: { content_id: 'nightly' },
        priority: 3,
        overlap: 'skip',
        catch_up: 'all',
        client: 'acme',
      },
    );
    assert.match(String(listed.description), /greet/);
    // The next slot is 02:30 London time, whatever the offset is that day.
    const next = new Date(String(listed.next_run_at));
    assert.ok(next.getTime() > Date.now());
    const london = new Intl.DateTimeFormat('en-GB', {
      timeZone: 'Europe/London',
      hour: '2-digit',
      minute: '2-digit',
    }).format(next);
    assert.equal(london, '02:30');
    // Defaults: UTC, overlap skip, catch_up latest, priority 5; a description is kept.
    const minimal = await h.call(h.acme, 'POST', '/schedules', {
      name: 'acme-minimal',
      cron: '*/10 * * * * *',
      workflow: 'private',
      description: 'every ten seconds',
    });
    assert.equal(minimal.statusCode, 201, minimal.body);
    const m = json<{ schedule: Record<string, unknown> }>(minimal).schedule;
    assert.equal(m.timezone, 'UTC');
    assert.equal(m.overlap, 'skip');
    assert.equal(m.catch_up, 'latest');
    assert.equal(m.priority, 5);
    assert.equal(m.description, 'every ten seconds');
  });

  void test('a client sees its own schedules and the maintenance ones; an admin sees all', async () => {
    assert.deepEqual(Object.keys(await schedules(h.other)).sort(), MAINTENANCE);
    assert.deepEqual(Object.keys(await schedules(h.acme)).sort(), [
      'acme-minimal',
      'acme-nightly',
      ...MAINTENANCE,
    ]);
    assert.ok('acme-nightly' in (await schedules(h.root)));
  });

  for (const [label, body, status, message] of [
    [
      'a bad cron expression',
      { cron: '61 * * * *' },
      400,
      /^cron "61 \* \* \* \*" is not accepted \(.*minute/,
    ],
    ['a cron of 4 fields', { cron: '* * * *' }, 400, /^cron "\* \* \* \*" is not accepted.*5 fields/],
    ['a cron that never fires', { cron: '0 0 30 2 *' }, 400, /^cron "0 0 30 2 \*" never fires/],
    [
      'an unknown time zone',
      { timezone: 'Mars/Olympus_Mons' },
      400,
      /^timezone "Mars\/Olympus_Mons" is not an IANA time zone/,
    ],
    [
      'an unknown workflow',
      { workflow: 'nope' },
      400,
      /^workflow "nope" does not exist for client "acme"; available: greet, private/,
    ],
    [
      'parameters the workflow refuses',
      { parameters: {} },
      400,
      /^parameters are not valid for workflow "greet": parameters\.content_id is required/,
    ],
    ['an unknown field', { colour: 'blue' }, 400, /has the unknown field "colour"/],
    [
      'a maintenance schedule name',
      { name: 'push_jobs' },
      400,
      /^name "push_jobs" is a maintenance schedule/,
    ],
    ['a bad name', { name: 'Bad Name' }, 400, /body\.name must match/],
    ['a bad overlap', { overlap: 'sometimes' }, 400, /body\.overlap must be one of "skip", "allow"/],
    ['a bad catch_up', { catch_up: 'some' }, 400, /body\.catch_up must be one of "none", "latest", "all"/],
    ['priority 11', { priority: 11 }, 400, /^priority must be a whole number from 1 to 10/],
    ['parameters that are not an object', { parameters: [1] }, 400, /body\.parameters must be object/],
    ['no cron', { cron: undefined }, 400, /must have the field "cron"/],
    ['another client in the body', { client: 'other' }, 400, /client/],
    ['a name in use', { name: 'acme-nightly' }, 409, /^schedule "acme-nightly" already exists/],
  ] as const) {
    void test(`POST /schedules refuses ${label} with a ${status} naming it, and stores nothing`, async () => {
      const before = await h.store.db.query('SELECT count(*)::int AS n FROM cron_schedules');
      const res = await h.call(h.acme, 'POST', '/schedules', { ...nightly, name: 'acme-x', ...body });
      assert.equal(res.statusCode, status, res.body);
      assert.match(json<{ error: string }>(res).error, message);
      const after = await h.store.db.query('SELECT count(*)::int AS n FROM cron_schedules');
      assert.deepEqual(after.rows, before.rows);
    });
  }

  void test("a client cannot schedule another client's workflow", async () => {
    const res = await h.call(h.other, 'POST', '/schedules', {
      ...nightly,
      name: 'other-x',
      workflow: 'private',
    });
    assert.equal(res.statusCode, 400);
    assert.match(json<{ error: string }>(res).error, /workflow "private" does not exist for client "other"/);
  });

  void test('PUT /scheduler (admin) switches a user schedule; the answer lists every active schedule', async () => {
    const off = await h.call(h.root, 'PUT', '/scheduler', { schedule: 'acme-nightly', active: false });
    assert.equal(off.statusCode, 200, off.body);
    const names = json<{ schedules: string[] }>(off).schedules;
    assert.ok(!names.includes('acme-nightly'));
    assert.ok(names.includes('acme-minimal') && names.includes('push_jobs'));
    const listed = (await schedules(h.acme))['acme-nightly']!;
    assert.equal(listed.active, false);
    assert.equal(listed.next_run_at, null);
    const on = await h.call(h.root, 'PUT', '/scheduler', { schedule: 'acme-nightly', active: true });
    assert.ok(json<{ schedules: string[] }>(on).schedules.includes('acme-nightly'));
    assert.notEqual((await schedules(h.acme))['acme-nightly']!.next_run_at, null);
    const unknown = await h.call(h.root, 'PUT', '/scheduler', { schedule: 'nope', active: true });
    assert.equal(unknown.statusCode, 400);
    assert.match(
      json<{ error: string }>(unknown).error,
      /unknown schedule "nope"; known schedules: .*acme-nightly/,
    );
    // A maintenance schedule is still switched as before.
    const push = await h.call(h.root, 'PUT', '/scheduler', { schedule: 'push_jobs', active: false });
    assert.ok(!json<{ schedules: string[] }>(push).schedules.includes('push_jobs'));
    assert.ok(json<{ schedules: string[] }>(push).schedules.includes('acme-nightly'));
    await h.call(h.root, 'PUT', '/scheduler', { schedule: 'push_jobs', active: true });
    assert.equal(
      (await h.call(h.acme, 'PUT', '/scheduler', { schedule: 'acme-nightly', active: false })).statusCode,
      403,
    );
  });

  void test('DELETE /schedules/<name>: the owner or an admin; another client gets 404; maintenance schedules 400', async () => {
    const foreign = await h.call(h.other, 'DELETE', '/schedules/acme-nightly');
    assert.equal(foreign.statusCode, 404);
    assert.match(json<{ error: string }>(foreign).error, /schedule "acme-nightly" not found/);
    const maintenance = await h.call(h.root, 'DELETE', '/schedules/push_jobs');
    assert.equal(maintenance.statusCode, 400);
    assert.match(json<{ error: string }>(maintenance).error, /maintenance schedule.*PUT \/scheduler/);
    const own = await h.call(h.acme, 'DELETE', '/schedules/acme-nightly');
    assert.equal(own.statusCode, 200);
    assert.deepEqual(json(own), { result: 'ok', deleted: 'acme-nightly' });
    assert.equal((await h.call(h.acme, 'DELETE', '/schedules/acme-nightly')).statusCode, 404);
    assert.equal((await h.call(h.root, 'DELETE', '/schedules/acme-minimal')).statusCode, 200);
    assert.deepEqual(Object.keys(await schedules(h.root)).sort(), MAINTENANCE);
  });
  void test('storage: a schedule naming object storage the client lacks is a 400 like POST /job; one whose storage went away breaks its job at the firing, with the reason in the job log', async () => {
    const params = {
      content_id: 'stored',
      source_storage: 'S3',
      rest_endpoints: ['http://127.0.0.1:9/cb'],
    };
    const direct = await h.call(h.acme, 'POST', '/job', { job: { workflow: 'greet' }, parameters: params });
    assert.equal(direct.statusCode, 400, direct.body);
    const missing = /parameters\.source_storage is s3, but client acme has no s3 storage configured/;
    assert.match(json<{ error: string }>(direct).error, missing);
    const every = { name: 'acme-stored', cron: '* * * * * *', workflow: 'greet', parameters: params };
    const refused = await h.call(h.acme, 'POST', '/schedules', every);
    assert.equal(refused.statusCode, 400, refused.body);
    assert.equal(json<{ error: string }>(refused).error, json<{ error: string }>(direct).error);
    assert.ok(!('acme-stored' in (await schedules(h.root))));

    const s3 = {
      endpoint: 'http://127.0.0.1:9',
      region: 'us-east-1',
      bucket: 'media',
      access_key_id: 'AKIDEXAMPLE',
      secret_access_key: 'secret-example-0123456789',
      force_path_style: true,
    };
    const put = await h.call(h.root, 'PUT', '/clients/acme/storage/s3', s3);
    assert.equal(put.statusCode, 200, put.body);
    const made = await h.call(h.acme, 'POST', '/schedules', every);
    assert.equal(made.statusCode, 201, made.body);
    // The storage is removed after the schedule was made: the next firing finds out.
    assert.equal((await h.call(h.root, 'DELETE', '/clients/acme/storage/s3')).statusCode, 200);
    await new Promise((r) => setTimeout(r, 1_100));
    const firing = await fireCronSchedule(h.engine.ctx, pino({ level: 'silent' }), 'acme-stored');
    assert.equal(firing?.submitted.length, 1, JSON.stringify(firing));
    const id = firing.submitted[0]!.id;
    const job = json<{ queue_state: string; schedule: string }>(await h.call(h.acme, 'GET', `/jobs/${id}`));
    assert.equal(job.queue_state, 'broken');
    assert.equal(job.schedule, 'acme-stored');
    const logs = json<{ message: string }[]>(await h.call(h.acme, 'GET', `/logs/${id}?show_all=1`))
      .map((l) => l.message)
      .join('\n');
    assert.match(logs, /submitted by schedule acme-stored/);
    assert.match(
      logs,
      /Job broken \(was \w+\): storage check failed: parameters\.source_storage is s3, but client acme has no s3 storage configured/,
    );
    // The job-end callback (status failed) is queued for the job's rest_endpoints.
    const { rows } = await h.store.db.query<{ event: string; target_url: string; body: { status: string } }>(
      `SELECT event, target_url, body FROM callback_deliveries WHERE job_id = $1 AND kind = 'job'`,
      [id],
    );
    assert.deepEqual(
      rows.map((r) => [r.event, r.target_url, r.body.status]),
      [['failed', 'http://127.0.0.1:9/cb', 'failed']],
    );
    assert.equal((await h.call(h.acme, 'DELETE', '/schedules/acme-stored')).statusCode, 200);
  });
});
