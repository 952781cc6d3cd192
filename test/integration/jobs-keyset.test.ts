/**
 * Keyset paging of `GET /jobs` (`after_id`) on both stores: walking a listing of 250 jobs by
 * pages of 40, each page continuing after the last job of the one before, gives exactly the
 * sequence (and the positions) of one big page, in every order the API accepts, both ways, with
 * filters; the jobs have ties in every sort column, top_of_queue jobs and queued jobs without a
 * queued_at, so every range of the admission order is crossed.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { insertJob, type JobFields } from '../helpers/factories.js';
import { listJobs } from '../../src/engine/jobs/service.js';
import { buildListQuery, parseListQuery } from '../../src/engine/jobs/list.js';
import type { JobRecord } from '../../src/engine/jobs/records.js';
import { ADMIN, createJobsContext, DEMO, type JobsTestContext, rejects, setJob } from './jobs-helpers.js';

const JOBS = 250;
const PAGE = 40;
const STATES: NonNullable<JobFields['queue_state']>[] = [
  'queued',
  'queued',
  'queued',
  'started',
  'completed',
  'paused',
  'scheduled',
];

/** The rows of a listing by id, with their positions. */
const idsAndPositions = (rows: JobRecord[]) => rows.map((r) => `${r.id}@${r.position}`);

forEachStore('jobs: keyset paging with after_id', (kind) => {
  let s: TestStore;
  let t: JobsTestContext;

  before(async () => {
    s = await createTestStore(kind);
    t = await createJobsContext(s.db);
    const base = Date.parse('2030-01-01T00:00:00.000Z');
    for (let i = 0; i < JOBS; i++) {
      const state = STATES[i % STATES.length]!;
      await insertJob(s.db, {
        client: i % 3 === 0 ? 'demo-client' : 'acme',
        workflow: ['alpha', 'beta', 'gamma'][i % 3 === 0 ? 0 : (i * 7) % 3]!,
        queue_state: state,
        priority: 1 + ((i * 7) % 4) * 3, // 1, 4, 7, 10: many ties
        // Many queued jobs share a queued_at (ties broken by id); every 23rd has none.
        queued_at: state !== 'queued' ? null : i % 23 === 5 ? null : new Date(base + ((i * 11) % 9) * 1000),
        run_at: new Date(base + ((i * 5) % 13) * 60_000),
        persist: i % 4 === 0,
        failed: state === 'completed' && i % 2 === 0,
        parameters: i % 5 === 0 ? { content_id: `movie-${i}` } : {},
      });
    }
    // Ties in created_at and updated_at (ids break them), microseconds included, and a few
    // top_of_queue jobs in every priority.
    await s.db.query(
      `UPDATE jobs SET created_at = $1::timestamptz + (id % 17) * interval '1.000123 second',
                       updated_at = $1::timestamptz + (id % 11) * interval '1 minute' + interval '7 microseconds',
                       top_of_queue = (id % 9 = 4)`,
      [new Date(base)],
    );
  });
  after(async () => {
    await t.cleanup();
    await s.dispose();
  });

  /** Walks `query` by pages of PAGE with after_id, and compares it with one page of everything. */
  async function walk(query: Record<string, string>, viewer = ADMIN): Promise<number> {
    const whole = await listJobs(t.ctx, viewer, { ...query, limit: '1000' });
    const walked: JobRecord[] = [];
    let last: number | null = null;
    for (let pages = 0; pages <= JOBS / PAGE + 1; pages++) {
      const page = await listJobs(t.ctx, viewer, {
        ...query,
        limit: String(PAGE),
        ...(last === null ? {} : { after_id: String(last) }),
      });
      walked.push(...page);
      if (page.length < PAGE) break;
      last = page.at(-1)!.id;
    }
    assert.deepEqual(idsAndPositions(walked), idsAndPositions(whole), JSON.stringify(query));
    return whole.length;
  }

  it('walks every order_by both ways to the same sequence and positions as one big page', async () => {
    for (const order_by of [
      'id',
      'created_at',
      'updated_at',
      'priority',
      'run_at',
      'client',
      'workflow',
      'queue_state',
      'position',
    ])
      for (const asc of ['1', '0']) assert.equal(await walk({ order_by, asc }), JOBS, `${order_by} ${asc}`);
    assert.equal(await walk({}), JOBS);
  });

  it('walks the queue in admission order both ways, across top_of_queue jobs and jobs without a queued_at', async () => {
    const queued = await listJobs(t.ctx, ADMIN, {
      state: '0',
      order_by: 'position',
      asc: '1',
      limit: '1000',
    });
    assert.ok(queued.length > 100, `${queued.length} queued`);
    assert.deepEqual(
      queued.map((r) => r.position),
      queued.map((_, i) => i + 1),
      'positions 1, 2, 3, … in admission order',
    );
    const { rows } = await s.db.query<{ top: number; untimed: number; untimed_top: number }>(
      `SELECT count(*) FILTER (WHERE top_of_queue)::int AS top, count(*) FILTER (WHERE queued_at IS NULL)::int AS untimed,
              count(*) FILTER (WHERE queued_at IS NULL AND top_of_queue)::int AS untimed_top
         FROM jobs WHERE queue_state = 'queued'`,
    );
    assert.ok(rows[0]!.top > 5 && rows[0]!.untimed > 3 && rows[0]!.untimed_top >= 1, JSON.stringify(rows[0]));
    for (const asc of ['1', '0']) {
      await walk({ state: '0', order_by: 'position', asc });
      await walk({ state: '0', order_by: 'position', asc, client: 'acme' });
      await walk({ state: '0', order_by: 'priority', asc });
      await walk({ state: '6', order_by: 'position', asc });
    }
    // An anchor in every place of the order: each page continues right after it.
    for (const asc of ['1', '0']) {
      const all = await listJobs(t.ctx, ADMIN, { state: '0', order_by: 'position', asc, limit: '1000' });
      for (let i = 0; i < all.length; i++) {
        const next = await listJobs(t.ctx, ADMIN, {
          state: '0',
          order_by: 'position',
          asc,
          limit: '3',
          after_id: String(all[i]!.id),
        });
        assert.deepEqual(
          next.map((r) => r.id),
          all.slice(i + 1, i + 4).map((r) => r.id),
          `after ${all[i]!.id} (#${i + 1}, asc ${asc})`,
        );
      }
    }
  });

  it('walks with filters: client, state, failed, persist, search, job_ids, a time window, a non-admin', async () => {
    const cases: Record<string, string>[] = [
      { client: 'acme', order_by: 'workflow', asc: '1' },
      { state: '2', failed: '1' },
      { persist: '1', order_by: 'run_at' },
      { search: 'movie', order_by: 'updated_at', asc: '1' },
      { job_ids: Array.from({ length: 120 }, (_, i) => 2 * i + 1).join(','), order_by: 'client' },
      { from: '2030-01-01T00:00:03.000', to: '2030-01-01T00:00:12.000' },
      { from: '2030-01-01T00:00:03.000', asc: '1' },
    ];
    // Most of them span several pages; the failed ones fit in one.
    for (const q of cases) assert.ok((await walk(q)) > (q.failed ? 0 : PAGE), JSON.stringify(q));
    assert.ok((await walk({}, DEMO)) > PAGE);
    assert.ok((await walk({ state: '0', order_by: 'position', asc: '1' }, DEMO)) > 0);
  });

  it('reads a keyset page along the order, with the anchor as a bound, never with OFFSET', () => {
    const anchor = {
      id: 120,
      client: 'acme',
      workflow: 'beta',
      queue_state: 'queued',
      priority: 4,
      top_of_queue: true,
      queued_at: '2030-01-01T00:00:03.000000Z',
      created_at: '2030-01-01T00:00:03.000123Z',
      updated_at: '2030-01-01T00:04:00.000007Z',
      run_at: '2030-01-01T00:05:00.000000Z',
    };
    const sqlOf = (q: Record<string, string>) => buildListQuery(parseListQuery(ADMIN, q), anchor);
    const byPriority = sqlOf({ order_by: 'priority', asc: '1' });
    assert.match(byPriority.sql, /\(j\.priority, j\.id\) > \(\$\d+::int, \$\d+::bigint\)/);
    assert.doesNotMatch(byPriority.sql, /OFFSET/);
    assert.ok(byPriority.params.includes(4) && byPriority.params.includes(120));
    const queue = sqlOf({ state: '0', order_by: 'position', asc: '1' });
    assert.match(queue.sql, /\(j\.priority, j\.queued_at, j\.id\) > /);
    assert.match(queue.sql, /UNION ALL/);
    assert.ok(queue.params.includes('2030-01-01T00:00:03.000000Z'), 'microseconds travel as text');
    assert.doesNotMatch(queue.sql, /2030|acme/);
  });

  it('continues after an anchor that has left the filters, at the place its sort keys give', async () => {
    const q = { state: '0', order_by: 'position', asc: '1' };
    const all = await listJobs(t.ctx, ADMIN, { ...q, limit: '1000' });
    const anchor = all[PAGE - 1]!;
    // The anchor is admitted between two page reads: it is no longer queued.
    await setJob(s.db, anchor.id, { queue_state: 'started' });
    const next = await listJobs(t.ctx, ADMIN, { ...q, limit: String(PAGE), after_id: String(anchor.id) });
    assert.deepEqual(
      next.map((r) => r.id),
      all.slice(PAGE, 2 * PAGE).map((r) => r.id),
    );
    // Every job after it moved one place up.
    assert.deepEqual(
      next.map((r) => r.position),
      all.slice(PAGE, 2 * PAGE).map((r) => r.position - 1),
    );
    await setJob(s.db, anchor.id, { queue_state: 'queued' });
  });

  it('refuses a bad after_id with a 400 saying what is accepted', async () => {
    const theirs = (await listJobs(t.ctx, ADMIN, { client: 'acme', limit: '1' }))[0]!.id;
    const cases: [Record<string, unknown>, string[]][] = [
      [{ after_id: 'abc' }, ['after_id', 'whole number from 1']],
      [{ after_id: '0' }, ['after_id', 'whole number from 1']],
      [{ after_id: '-3' }, ['after_id']],
      [{ after_id: '1.5' }, ['after_id']],
      [{ after_id: '99999999' }, ['after_id 99999999 is not a job of client "demo-client"']],
      [{ after_id: String(theirs) }, [`after_id ${theirs} is not a job of client "demo-client"`]],
      [{ after_id: '3', offset: '40' }, ['after_id and offset cannot be combined']],
      [{ after_id: ['3', '4'] }, ['after_id was given 2 times']],
    ];
    for (const [query, parts] of cases)
      await rejects(listJobs(t.ctx, DEMO, query), 'VALIDATION_FAILED', ...parts);
    await rejects(
      listJobs(t.ctx, ADMIN, { after_id: '99999999' }),
      'VALIDATION_FAILED',
      'not a job that exists',
    );
    // offset=0 is no offset; an admin may anchor on any client's job.
    assert.equal((await listJobs(t.ctx, ADMIN, { after_id: String(theirs), offset: '0' })).length, 10);
  });
});
