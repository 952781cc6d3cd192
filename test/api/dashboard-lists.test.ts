/**
 * `GET /dashboard` lists paused and pending jobs too, as `paused` and `pending` beside the seed's
 * `started`, `queued` and `scheduled` (whose shape is unchanged), on both stores: each job in the
 * list of its state only, by id, with its position; a client sees its own jobs, an admin every
 * client's or one client's with `?client=`.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { forEachStore } from '../helpers/stores.js';
import { createApiHarness, json, type ApiHarness, type TestClient } from './harness.js';

interface Row {
  id: number;
  client: string;
  queue_state: string;
  position: number;
  parameters?: unknown;
}
type Dashboard = Record<'started' | 'queued' | 'scheduled' | 'paused' | 'pending', Row[]> & {
  max_jobs: number;
  priority_slots: number;
  version: string;
};

forEachStore('GET /dashboard paused and pending', (kind) => {
  let h: ApiHarness;
  before(async () => {
    // The API role only: nothing admits, checks a semaphore or runs a job, so every job stays put.
    h = await createApiHarness(kind);
  });
  after(async () => {
    await h?.close();
  });

  const submit = async (as: TestClient, job: Record<string, unknown> = {}) => {
    const res = await h.call(as, 'POST', '/job', {
      job: { workflow: 'greet', ...job },
      parameters: { content_id: 'dash' },
    });
    assert.equal(res.statusCode, 200, res.body);
    return json<{ id: number }>(res).id;
  };
  const pause = async (as: TestClient, id: number) => {
    const res = await h.call(as, 'PATCH', `/jobs/${id}`, { queue_state: 'paused' });
    assert.equal(res.statusCode, 200, res.body);
  };
  const dashboard = async (as: TestClient, query = '') => {
    const res = await h.call(as, 'GET', `/dashboard${query}`);
    assert.equal(res.statusCode, 200, res.body);
    return json<Dashboard>(res);
  };
  const ids = (rows: Row[]) => rows.map((r) => r.id);

  let queued = 0;
  let paused: number[] = [];
  let pending = 0;
  let scheduled = 0;
  let otherPaused = 0;

  test('paused and pending jobs each in their own list, by id, beside the seed lists', async () => {
    queued = await submit(h.acme);
    paused = [await submit(h.acme), await submit(h.acme, { run_at: '2999-01-01T00:00:00.000' })];
    for (const id of paused) await pause(h.acme, id);
    pending = await submit(h.acme, { semaphore_url: 'http://127.0.0.1:9/ready' });
    scheduled = await submit(h.acme, { run_at: '2999-01-01T00:00:00.000' });
    otherPaused = await submit(h.other);
    await pause(h.other, otherPaused);

    const body = await dashboard(h.acme);
    assert.deepEqual(Object.keys(body), [
      'max_jobs',
      'priority_slots',
      'started',
      'queued',
      'scheduled',
      'version',
      'paused',
      'pending',
    ]);
    assert.deepEqual(ids(body.queued), [queued]);
    assert.deepEqual(ids(body.scheduled), [scheduled]);
    assert.deepEqual(ids(body.paused), paused, 'both of acme’s paused jobs, by id; not other’s');
    assert.deepEqual(ids(body.pending), [pending]);
    assert.deepEqual(body.started, []);
    assert.deepEqual(
      body.paused.map((r) => [r.queue_state, r.client, r.position, 'parameters' in r]),
      [
        ['paused', 'acme', 1, false],
        ['paused', 'acme', 2, false],
      ],
    );
    assert.deepEqual(
      body.pending.map((r) => [r.queue_state, r.position]),
      [['pending', 1]],
    );
  });

  test('an admin sees every client’s paused jobs, or one client’s with ?client=', async () => {
    const all = await dashboard(h.root);
    assert.deepEqual(ids(all.paused), [...paused, otherPaused]);
    assert.deepEqual(
      all.paused.map((r) => r.position),
      [1, 2, 3],
    );
    const onlyOther = await dashboard(h.root, '?client=other');
    assert.deepEqual(ids(onlyOther.paused), [otherPaused]);
    assert.equal(onlyOther.paused[0]!.position, 3, 'the engine-wide rank, as in the other lists');
    assert.deepEqual(onlyOther.pending, []);
  });

  test('a resumed job leaves the paused list for the queued one', async () => {
    const res = await h.call(h.acme, 'PATCH', `/jobs/${paused[0]}`, { queue_state: 'queued' });
    assert.equal(res.statusCode, 200, res.body);
    const body = await dashboard(h.acme);
    assert.deepEqual(ids(body.paused), [paused[1]]);
    assert.deepEqual(ids(body.queued).sort(), [queued, paused[0]].sort());
  });
});
