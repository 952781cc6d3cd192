import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { getJob, listJobs, submitJob } from '../../src/engine/jobs/service.js';
import { buildListQuery, parseListQuery } from '../../src/engine/jobs/list.js';
import {
  ACME,
  ADMIN,
  createJobsContext,
  DEMO,
  type JobsTestContext,
  REQUEST,
  setJob,
  rejects,
} from './jobs-helpers.js';

const ids = (rows: { id: number }[]) => rows.map((r) => r.id);

forEachStore('jobs: listing', (kind) => {
  let s: TestStore;
  let t: JobsTestContext;
  /** The jobs made in `before`, by label. */
  const j: Record<string, number> = {};

  before(async () => {
    s = await createTestStore(kind);
    t = await createJobsContext(s.db);
    const submit = async (
      label: string,
      viewer = DEMO,
      parameters: Record<string, unknown> = {},
      job = {},
    ) => {
      j[label] = (
        await submitJob(
          t.ctx,
          viewer,
          {
            job: { workflow: 'jobs_hello', ...job },
            parameters: { content_id: `cid-${label}`, ...parameters },
          },
          REQUEST,
        )
      ).id;
      t.clock.advance(1000);
    };
    // demo-client: q1 q2 (queued), st (started), done (completed), fail (completed, failed),
    // br (broken), sch (scheduled), pen (pending), pau (paused); acme: a1 (queued), a2 (completed).
    await submit('q1', DEMO, { note: '100% sure_thing' }, { priority: 7 });
    await submit('q2', DEMO, {}, { priority: 2 });
    await submit('st');
    await submit('done', DEMO, { note: 'Special Edition' }, { persist: true });
    await submit('fail');
    await submit('br');
    await submit('sch', DEMO, {}, { run_at: '2031-01-01T00:00:00' });
    await submit('pen', DEMO, {}, { semaphore_url: 'http://127.0.0.1:9/sem' });
    await submit('pau');
    await submit('a1', ACME);
    await submit('a2', ACME);
    await setJob(s.db, j.st!, { queue_state: 'started', started_at: t.clock.now() });
    await setJob(s.db, j.done!, { queue_state: 'completed', finished_at: t.clock.now() });
    await setJob(s.db, j.fail!, { queue_state: 'completed', failed: true });
    await setJob(s.db, j.br!, { queue_state: 'broken' });
    await setJob(s.db, j.pau!, { queue_state: 'paused' });
    await setJob(s.db, j.a2!, { queue_state: 'completed' });
  });
  after(async () => {
    await t.cleanup();
    await s.dispose();
  });

  it('answers the last 10 jobs, newest first, by default; the admin sees every client', async () => {
    const rows = await listJobs(t.ctx, ADMIN, {});
    assert.equal(rows.length, 10);
    assert.deepEqual(ids(rows), [j.a2, j.a1, j.pau, j.pen, j.sch, j.br, j.fail, j.done, j.st, j.q2]);
    const r = rows.find((x) => x.id === j.sch)!;
    assert.deepEqual(Object.keys(r).sort(), [
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
    ]);
    assert.equal(r.run_at, '2031-01-01T00:00:00.000Z');
    assert.match(r.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('shows a non-admin only its own jobs; the client filter is for admins', async () => {
    const rows = await listJobs(t.ctx, ACME, { limit: '100' });
    assert.deepEqual(ids(rows), [j.a2, j.a1]);
    assert.deepEqual(ids(await listJobs(t.ctx, ACME, { client: 'acme' })), [j.a2, j.a1]);
    await rejects(listJobs(t.ctx, ACME, { client: 'demo-client' }), 'FORBIDDEN', 'admins');
    assert.deepEqual(ids(await listJobs(t.ctx, ADMIN, { client: 'acme' })), [j.a2, j.a1]);
    assert.deepEqual(await listJobs(t.ctx, ADMIN, { client: 'nobody' }), []);
  });

  it('filters by state (number or name), failed and persist', async () => {
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { state: '0' })), [j.q2, j.q1]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { state: '1' })), [j.st]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { state: '2' })), [j.fail, j.done]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { state: '3' })), [j.pen]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { state: '4' })), [j.br]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { state: '5' })), [j.sch]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { state: '6' })), [j.pau]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { state: 'paused' })), [j.pau]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { failed: '1' })), [j.fail]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { failed: 'true', state: '2' })), [j.fail]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { failed: '0', state: '2' })), [j.done]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { failed: 'false', state: '2' })), [j.done]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { persist: '1' })), [j.done]);
    assert.equal((await listJobs(t.ctx, DEMO, { persist: '0', limit: '100' })).length, 8);
  });

  it('filters by created_at with from/to inclusive, honouring UTC without a zone', async () => {
    const all = await listJobs(t.ctx, DEMO, { limit: '100', asc: '1' });
    const second = all[1]!.created_at; // q2
    const fourth = all[3]!.created_at; // done
    const noZone = (iso: string) => iso.replace('Z', '');
    assert.deepEqual(
      ids(await listJobs(t.ctx, DEMO, { from: noZone(second), to: noZone(fourth), asc: '1' })),
      [j.q2, j.st, j.done],
    );
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { from: second, to: second })), [j.q2]);
    // The same instant written with an offset.
    const plusTwo = new Date(Date.parse(second) + 2 * 3600_000).toISOString().replace('Z', '+02:00');
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { from: plusTwo, to: plusTwo })), [j.q2]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { to: second, asc: '1' })), [j.q1, j.q2]);
    // A time window without order_by is in creation order; order_by still wins.
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { to: fourth })), [j.done, j.st, j.q2, j.q1]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { to: fourth, order_by: 'priority', asc: '1' })), [
      j.q2,
      j.st,
      j.done,
      j.q1,
    ]);
  });

  it('filters by job_ids (spaces allowed), and never shows another client through them', async () => {
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { job_ids: `${j.q1}, ${j.st},${j.a1}` })), [j.st, j.q1]);
    assert.deepEqual(ids(await listJobs(t.ctx, ADMIN, { job_ids: `${j.q1},${j.a1}` })), [j.a1, j.q1]);
  });

  it('searches content_id and parameters as a literal, case-insensitive substring', async () => {
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: 'cid-pen' })), [j.pen]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: 'special edition' })), [j.done]);
    // A long term must match whole, not only by the part looked up in the index.
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: 'special editions' })), []);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: '100% sure_thing' })), [j.q1]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: '100% sure_thinG!' })), []);
    // % and _ are literal characters, not wildcards.
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: '100%' })), [j.q1]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: 'cid_q1' })), []);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: 'sure_thing' })), [j.q1]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: '%' })), [j.q1]);
    assert.deepEqual(await listJobs(t.ctx, ACME, { search: 'cid-pen' }), []);
  });

  it('orders by each whitelisted column, both ways, with id breaking ties', async () => {
    const byPriority = await listJobs(t.ctx, DEMO, { order_by: 'priority', asc: '1', limit: '3' });
    assert.deepEqual(ids(byPriority), [j.q2, j.st, j.done]);
    const byPriorityDesc = await listJobs(t.ctx, DEMO, { order_by: 'priority', limit: '2' });
    assert.deepEqual(ids(byPriorityDesc), [j.q1, j.pau]);
    const byRunAt = await listJobs(t.ctx, DEMO, { order_by: 'run_at', limit: '1' });
    assert.deepEqual(ids(byRunAt), [j.sch]);
    const byClient = await listJobs(t.ctx, ADMIN, { order_by: 'client', asc: '1', limit: '2' });
    assert.deepEqual(ids(byClient), [j.a1, j.a2]);
    const byState = await listJobs(t.ctx, DEMO, { order_by: 'queue_state', asc: '1', limit: '100' });
    assert.deepEqual(
      byState.map((r) => r.queue_state),
      ['broken', 'completed', 'completed', 'paused', 'pending', 'queued', 'queued', 'scheduled', 'started'],
    );
    for (const col of ['id', 'created_at', 'updated_at', 'workflow']) {
      const rows = await listJobs(t.ctx, DEMO, { order_by: col, asc: '1', limit: '100' });
      assert.equal(rows.length, 9, col);
    }
  });

  it('pages with limit and offset', async () => {
    const all = ids(await listJobs(t.ctx, ADMIN, { limit: '1000' }));
    assert.equal(all.length, 11);
    assert.deepEqual(ids(await listJobs(t.ctx, ADMIN, { limit: '3', offset: '3' })), all.slice(3, 6));
    assert.deepEqual(await listJobs(t.ctx, ADMIN, { offset: '50' }), []);
  });

  it('gives position: admission order for queued jobs, rank by id for other live states, 1 when ended', async () => {
    const rows = await listJobs(t.ctx, ADMIN, { limit: '100' });
    const pos = (id: number) => rows.find((r) => r.id === id)!.position;
    // q2 has priority 2, q1 priority 7, a1 priority 5: admission order q2, a1, q1.
    assert.equal(pos(j.q2!), 1);
    assert.equal(pos(j.a1!), 2);
    assert.equal(pos(j.q1!), 3);
    assert.equal(pos(j.st!), 1);
    assert.equal(pos(j.done!), 1);
    // top_of_queue jumps the queue.
    await setJob(s.db, j.q1!, { top_of_queue: true });
    assert.equal((await getJob(t.ctx, DEMO, String(j.q1))).position, 1);
    assert.equal((await getJob(t.ctx, DEMO, String(j.q2))).position, 2);
    await setJob(s.db, j.q1!, { top_of_queue: false });
  });

  it('refuses every bad value with a 400 saying what is accepted', async () => {
    const cases: [Record<string, unknown>, string[]][] = [
      [{ asc: '2' }, ['asc', 'true or false']],
      [{ failed: 'maybe' }, ['failed']],
      [{ persist: 'yes' }, ['persist']],
      [{ state: '7' }, ['state', '0 (queued)', '6 (paused)']],
      [{ state: 'done' }, ['state']],
      [{ state: '-1' }, ['state']],
      [{ limit: '0' }, ['limit', '1 to 1000']],
      [{ limit: '1001' }, ['limit', '1 to 1000']],
      [{ limit: 'ten' }, ['limit']],
      [{ limit: '5.5' }, ['limit']],
      [{ offset: '-1' }, ['offset']],
      [{ order_by: 'password' }, ['order_by', 'accepted: id, created_at']],
      [{ order_by: 'id; DROP TABLE jobs' }, ['order_by']],
      [{ from: 'yesterday' }, ['from', 'yyyy-MM-ddTHH:mm:ss']],
      [{ to: '2030-02-30T00:00:00' }, ['to', 'day 30']],
      [{ from: '2030-01-02T00:00:00', to: '2030-01-01T00:00:00' }, ['after']],
      [{ job_ids: '1,x' }, ['job_ids', '"x"']],
      [{ job_ids: '1,-2' }, ['job_ids']],
      [{ job_ids: ',' }, ['job_ids']],
      [{ search: 'x'.repeat(201) }, ['search']],
      [{ status: '2' }, ['unknown query parameter', '"status"', 'accepted']],
      [{ state: ['1', '2'] }, ['given 2 times']],
    ];
    for (const [query, parts] of cases)
      await rejects(listJobs(t.ctx, DEMO, query), 'VALIDATION_FAILED', ...parts);
  });

  it('keeps every request value out of the SQL text', () => {
    const f = parseListQuery(ADMIN, {
      client: "x'; DROP TABLE jobs; --",
      search: "'; DELETE FROM jobs; --",
      state: '1',
      order_by: 'workflow',
      job_ids: '1,2',
      from: '2030-01-01T00:00:00',
    });
    const { sql, params } = buildListQuery(f);
    for (const word of ['DROP', 'DELETE', "'started'", '2030'])
      assert.equal(sql.includes(word), false, `${word} in ${sql}`);
    assert.equal(params.includes("x'; DROP TABLE jobs; --"), true, 'the client travels as a parameter');
    assert.equal(params.includes('started'), true, 'the state travels as a parameter');
    assert.match(sql, /ORDER BY j\.workflow DESC, j\.id DESC/);
  });

  // Runs last: it adds a job the tests above do not expect.
  it('finds a long term whose index prefix would end inside a surrogate pair (an emoji)', async () => {
    // 11 ASCII characters, then an emoji of two UTF-16 units: a prefix of 12 units would keep
    // only the emoji's first half, which no stored text contains.
    const contentId = 'abcdefghijk\u{1F600}-tail';
    const { id } = await submitJob(
      t.ctx,
      DEMO,
      { job: { workflow: 'jobs_hello' }, parameters: { content_id: contentId } },
      REQUEST,
    );
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: contentId })), [id]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: 'abcdefghijk\u{1F600}' })), [id]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: 'bcdefghijk\u{1F600}-ta' })), [id]);
  });
});
