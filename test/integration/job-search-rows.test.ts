/**
 * The `job_search` side table holds a row only for a job with something to search (a
 * `content_id`, or parameters other than `{}`), and the `search` filter answers as if every job
 * had one: a job without a row is found by every other filter, by the terms found inside `{}`,
 * and by no other term. On both stores.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { listJobs, submitJob } from '../../src/engine/jobs/service.js';
import { retryJob } from '../../src/engine/jobs/retry.js';
import { countListedJobs } from '../../src/engine/status/stats.js';
import { createJobsContext, DEMO, type JobsTestContext, REQUEST, setJob } from './jobs-helpers.js';

const ids = (rows: { id: number }[]) => rows.map((r) => r.id);

forEachStore('jobs: search rows only for jobs with something to search', (kind) => {
  let s: TestStore;
  let t: JobsTestContext;
  /** `jobs_fanout` with parameters `{}`: no content_id, nothing to search. */
  let bare: number;
  /** `jobs_hello` with a content_id. */
  let named: number;
  /** `jobs_fanout` with a parameter but no content_id. */
  let moded: number;

  const searchRows = async () =>
    (
      await s.db.query<{ job_id: number; content_id: string | null; parameters_text: string }>(
        'SELECT job_id, content_id, parameters_text FROM job_search ORDER BY job_id',
      )
    ).rows;

  before(async () => {
    s = await createTestStore(kind);
    t = await createJobsContext(s.db);
    const submit = async (workflow: string, parameters: Record<string, unknown>) => {
      const { id } = await submitJob(t.ctx, DEMO, { job: { workflow }, parameters }, REQUEST);
      t.clock.advance(1000);
      return id;
    };
    bare = await submit('jobs_fanout', {});
    named = await submit('jobs_hello', { content_id: 'Movie-42' });
    moded = await submit('jobs_fanout', { mode: 'slow' });
  });
  after(async () => {
    await t.cleanup();
    await s.dispose();
  });

  it('writes no search row for a job with parameters {} and no content_id, and one for the others', async () => {
    const rows = await searchRows();
    assert.deepEqual(
      rows.map((r) => r.job_id),
      [named, moded],
    );
    assert.equal(rows[0]!.content_id, 'Movie-42');
    assert.match(rows[0]!.parameters_text, /Movie-42/);
    assert.deepEqual(rows[1], { job_id: moded, content_id: null, parameters_text: '{"mode": "slow"}' });
  });

  it('finds the job with a content_id by search, and never the one with nothing to search', async () => {
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: 'movie-42' })), [named]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: 'Movie' })), [named]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: 'slow' })), [moded]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: 'mode' })), [moded]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: 'jobs_fanout' })), []);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: '"' })), [moded, named]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: '{"' })), [moded, named]);
    assert.deepEqual(await countListedJobs(t.ctx, DEMO, { search: 'Movie' }), { count: 1, capped: false });
  });

  it('matches the terms found inside "{}" on every job, as the text "{}" of a search row did', async () => {
    // Every job's parameters are an object, so `{` and `}` are in every text; `{}` only in the bare one.
    for (const term of ['{', '}'])
      assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: term })), [moded, named, bare], term);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: '{}' })), [bare]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: '{} ' })), []);
    assert.deepEqual(await countListedJobs(t.ctx, DEMO, { search: '{}' }), { count: 1, capped: false });
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: '{}', state: '0' })), [bare]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: '{}', state: '2' })), []);
  });

  it('lists the job without a search row under every other filter', async () => {
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, {})), [moded, named, bare]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { state: '0', order_by: 'position', asc: '1' })), [
      bare,
      named,
      moded,
    ]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { job_ids: String(bare) })), [bare]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { order_by: 'workflow', asc: '1' })), [
      bare,
      moded,
      named,
    ]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { persist: '0', failed: '0' })), [moded, named, bare]);
  });

  // Runs last: it changes the bare job.
  it('gives a bare job a search row when a retry adds parameters, found by them', async () => {
    await setJob(s.db, bare, { queue_state: 'broken', finished_at: t.clock.now() });
    await retryJob(t.ctx, DEMO, String(bare), { parameters: { mode: 'fast' } });
    assert.deepEqual(
      (await searchRows()).find((r) => r.job_id === bare),
      { job_id: bare, content_id: null, parameters_text: '{"mode": "fast"}' },
    );
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: 'fast' })), [bare]);
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: '{}' })), []);
    // A job that is already searchable keeps one row, following its parameters.
    await setJob(s.db, moded, { queue_state: 'broken', finished_at: t.clock.now() });
    await retryJob(t.ctx, DEMO, String(moded), { parameters: { mode: 'fast', count: 3 } });
    assert.deepEqual(
      (await searchRows()).find((r) => r.job_id === moded),
      { job_id: moded, content_id: null, parameters_text: '{"mode": "fast", "count": 3}' },
    );
    assert.deepEqual(ids(await listJobs(t.ctx, DEMO, { search: 'slow' })), []);
  });
});
