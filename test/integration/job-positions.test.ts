/**
 * `position` computed from index range counts (src/engine/jobs/positions.ts) equals the former
 * ranking (a `row_number()` over every job of the state) on the same data, on both stores: every
 * job alone, pages of many sizes, the `GET /jobs` filters, `/dashboard` and `GET /jobs/<id>`, for
 * admins and for a client that sees only its own jobs. The data covers what the admission order
 * depends on: `top_of_queue`, priorities, `queued_at` ties (down to the microsecond, finer than a
 * JavaScript Date), a missing `queued_at`, and ids; plus the live states listed by id.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { getJob, listJobs } from '../../src/engine/jobs/service.js';
import {
  computePositions,
  type JobRecord,
  type PositionMethod,
  setPositionMethod,
  type Viewer,
} from '../../src/engine/jobs/records.js';
import { compareListKeys, segmentBoxes, type ListKey } from '../../src/engine/jobs/positions.js';
import { getDashboard } from '../../src/engine/status/dashboard.js';
import { ACME, ADMIN, createJobsContext, DEMO, type JobsTestContext } from './jobs-helpers.js';

/** Runs `fn` with `position` computed by `method`, then goes back to the engine's way. */
async function withMethod<T>(method: PositionMethod, fn: () => Promise<T>): Promise<T> {
  setPositionMethod(method);
  try {
    return await fn();
  } finally {
    setPositionMethod('ranges');
  }
}

/** A small deterministic pseudo-random sequence (the same data on every run). */
function lcg(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

const OTHER: Viewer = { client: 'other', admin: false };

forEachStore('jobs: position from index ranges equals the full ranking', (kind) => {
  let s: TestStore;
  let t: JobsTestContext;
  let all: { id: number; queue_state: JobRecord['queue_state'] }[] = [];

  before(async () => {
    s = await createTestStore(kind);
    t = await createJobsContext(s.db);
    const rnd = lcg(42);
    const clients = ['demo-client', 'acme', 'other'];
    const states = [
      'queued',
      'queued',
      'queued',
      'queued',
      'started',
      'scheduled',
      'pending',
      'paused',
      'completed',
      'broken',
    ];
    const values: string[] = [];
    const params: unknown[] = [];
    for (let i = 0; i < 400; i++) {
      const state = states[Math.floor(rnd() * states.length)]!;
      const client = clients[Math.floor(rnd() * clients.length)]!;
      const priority = rnd() < 0.5 ? 5 : 1 + Math.floor(rnd() * 10);
      const top = rnd() < 0.1;
      // Few distinct times, so many ties; microseconds inside one millisecond; some missing.
      const micros = Math.floor(rnd() * 6) * 250;
      const queuedAt =
        state === 'queued' && rnd() < 0.08
          ? null
          : `2030-01-01T00:00:0${Math.floor(rnd() * 3)}.${String(micros).padStart(6, '0')}Z`;
      const runAt = state === 'scheduled' ? '2031-06-01T00:00:00Z' : '2030-01-01T00:00:00Z';
      const n = params.length;
      values.push(
        `($${n + 1}, 'jobs_hello', $${n + 2}::int, $${n + 3}, $${n + 4}::boolean, $${n + 5}::timestamptz, $${n + 6}::timestamptz, '{}'::jsonb)`,
      );
      params.push(client, priority, state, top, queuedAt, runAt);
    }
    await s.db.query(
      `INSERT INTO jobs (client, workflow, priority, queue_state, top_of_queue, queued_at, run_at, definition)
       VALUES ${values.join(', ')}`,
      params,
    );
    // A job queued before its id's neighbours, and two jobs at one instant, in id order reversed.
    all = (
      await s.db.query<{ id: string; queue_state: JobRecord['queue_state'] }>(
        'SELECT id, queue_state FROM jobs ORDER BY id',
      )
    ).rows.map((r) => ({ id: Number(r.id), queue_state: r.queue_state }));
  });
  after(async () => {
    await t.cleanup();
    await s.dispose();
  });

  it('gives every job alone, and every page, the position of the full ranking', async () => {
    const single = async (method: PositionMethod) =>
      withMethod(method, async () => {
        const out: (number | undefined)[] = [];
        for (const r of all) out.push((await computePositions(s.db, [r])).get(r.id));
        return out;
      });
    assert.deepEqual(await single('ranges'), await single('window'));
    const rnd = lcg(7);
    for (const size of [2, 3, 10, 50, 400]) {
      for (let round = 0; round < 4; round++) {
        const page = [...all].sort(() => rnd() - 0.5).slice(0, size);
        const want = await withMethod('window', () => computePositions(s.db, page));
        const got = await computePositions(s.db, page);
        assert.deepEqual(Object.fromEntries(got), Object.fromEntries(want), `a page of ${size}`);
      }
    }
    // Live states get a position; ended ones none (their record says 1).
    const ended = all.filter((r) => r.queue_state === 'completed' || r.queue_state === 'broken');
    assert.ok(ended.length > 0);
    assert.equal((await computePositions(s.db, ended)).size, 0);
  });

  it('counts queued jobs at the microsecond, with a missing queued_at last, then by id', async () => {
    const { rows } = await s.db.query<{ id: string }>(
      `INSERT INTO jobs (client, workflow, priority, queue_state, top_of_queue, queued_at, definition)
       VALUES ('acme', 'jobs_hello', 3, 'queued', true, '2029-01-01T00:00:00.000900Z', '{}'),
              ('acme', 'jobs_hello', 3, 'queued', true, '2029-01-01T00:00:00.000100Z', '{}'),
              ('acme', 'jobs_hello', 3, 'queued', true, NULL, '{}'),
              ('acme', 'jobs_hello', 3, 'queued', true, NULL, '{}'),
              ('acme', 'jobs_hello', 3, 'queued', true, '2029-01-01T00:00:00.000100Z', '{}')
       RETURNING id`,
    );
    const ids = rows.map((r) => Number(r.id));
    const page = ids.map((id) => ({ id, queue_state: 'queued' as const }));
    try {
      const got = await computePositions(s.db, page);
      const want = await withMethod('window', () => computePositions(s.db, page));
      assert.deepEqual(Object.fromEntries(got), Object.fromEntries(want));
      // Among these five: .000100 (2nd), .000100 (5th), .000900 (1st), then the two without a time.
      const order = [...ids].sort((a, b) => got.get(a)! - got.get(b)!);
      assert.deepEqual(order, [ids[1], ids[4], ids[0], ids[2], ids[3]]);
      const first = got.get(ids[1]!)!;
      assert.deepEqual(
        order.map((id) => got.get(id)! - first),
        [0, 1, 2, 3, 4],
        'nothing else sorts between them',
      );
    } finally {
      await s.db.query('DELETE FROM jobs WHERE id = ANY($1::bigint[])', [ids]);
    }
  });

  it('lists the same records both ways, for every filter, as admin and as a client', async () => {
    const queries: Record<string, string>[] = [
      {},
      { limit: '1000' },
      { limit: '37', offset: '11' },
      { asc: '1', limit: '50' },
      { state: 'queued', limit: '1000' },
      { state: 'queued', asc: '1' },
      { state: 'started', limit: '1000' },
      { state: 'scheduled', limit: '1000' },
      { state: 'pending', limit: '1000' },
      { state: 'paused', limit: '1000' },
      { state: 'completed' },
      { order_by: 'priority', limit: '200' },
      { order_by: 'priority', asc: '1', limit: '200' },
      { order_by: 'run_at', limit: '100' },
      { order_by: 'client', limit: '100' },
      { order_by: 'queue_state', limit: '100' },
      {
        job_ids: all
          .filter((_, i) => i % 9 === 0)
          .map((r) => r.id)
          .join(','),
      },
      { persist: '0', limit: '100' },
      { failed: '0', limit: '100' },
    ];
    for (const viewer of [ADMIN, DEMO, ACME, OTHER])
      for (const q of [...queries, ...(viewer.admin ? [{ client: 'acme', limit: '1000' }] : [])]) {
        const want = await withMethod('window', () => listJobs(t.ctx, viewer, q));
        const got = await listJobs(t.ctx, viewer, q);
        assert.deepEqual(got, want, `${viewer.client} ${JSON.stringify(q)}`);
      }
  });

  it('shows the same dashboard both ways, whole or narrowed to a client, and the same job detail', async () => {
    const views: [Viewer, Record<string, unknown>][] = [
      [ADMIN, {}],
      [ADMIN, { client: 'acme' }],
      [ADMIN, { client: 'other' }],
      [DEMO, {}],
      [OTHER, {}],
    ];
    for (const [viewer, q] of views) {
      const want = await withMethod('window', () => getDashboard(t.ctx, viewer, q));
      const got = await getDashboard(t.ctx, viewer, q);
      assert.deepEqual(got, want, `${viewer.client} ${JSON.stringify(q)}`);
      assert.ok(got.queued.length > 0);
    }
    // The narrowed list shows engine-wide positions: acme's queued jobs are not 1, 2, 3 ….
    const narrowed = await getDashboard(t.ctx, ADMIN, { client: 'acme' });
    assert.notDeepEqual(
      narrowed.queued.map((r) => r.position),
      narrowed.queued.map((_, i) => i + 1),
    );
    for (const r of all.filter((_, i) => i % 13 === 0)) {
      const want = await withMethod('window', () => getJob(t.ctx, ADMIN, String(r.id)));
      const got = await getJob(t.ctx, ADMIN, String(r.id));
      assert.equal(got.position, want.position, `job ${r.id}`);
    }
  });
});

describe('positions: the boxes of a segment', () => {
  const key = (
    id: number,
    priority: number,
    top = false,
    q: string | null = '2030-01-01T00:00:00.000000Z',
  ): ListKey => ({
    id,
    state: 'queued',
    top,
    priority,
    q,
  });
  it('orders keys as admission does: top_of_queue, priority, queued_at (missing last), id', () => {
    const keys = [
      key(9, 5, false, null),
      key(1, 5),
      key(2, 1, true),
      key(3, 1),
      key(4, 5, false, '2029-01-01T00:00:00.000000Z'),
      key(0, 5),
    ];
    assert.deepEqual(
      [...keys].sort(compareListKeys).map((k) => k.id),
      [2, 3, 4, 0, 1, 9],
    );
  });
  it('cuts a segment into at most seven boxes, and none for an empty one', () => {
    assert.ok(segmentBoxes(null, key(5, 7)).length <= 4);
    assert.ok(segmentBoxes(key(1, 2, true), key(5, 7)).length <= 7);
    assert.equal(segmentBoxes(key(4, 5), key(5, 5)).length, 1);
    assert.deepEqual(
      segmentBoxes(
        { id: 3, state: 'paused', top: false, priority: 5, q: null },
        { id: 8, state: 'paused', top: false, priority: 5, q: null },
      ).map((b) => [b.idlo, b.idhi]),
      [[3, 8]],
    );
  });
});
