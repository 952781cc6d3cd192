/**
 * `run_at` without a zone is UTC whatever the process time zone (SPEC section 4): this file runs
 * in America/New_York (set before anything else loads) and checks the stored instant.
 */
import './tz-new-york.js';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { forEachStore } from '../helpers/stores.js';
import { createApiHarness, json, type ApiHarness } from './harness.js';

forEachStore('API run_at in a process on New York time', (kind) => {
  let h: ApiHarness;
  before(async () => {
    h = await createApiHarness(kind);
  });
  after(() => h.close());

  void test('the process really is on New York time', () => {
    assert.equal(new Date(Date.UTC(2030, 0, 1, 12)).getTimezoneOffset(), 300);
  });

  void test('run_at "2030-01-01T10:00:00.000" is stored and answered as 10:00 UTC, and the job is scheduled', async () => {
    const res = await h.call(h.acme, 'POST', '/job', {
      job: { workflow: 'greet', run_at: '2030-01-01T10:00:00.000' },
      parameters: { content_id: 'tz' },
    });
    assert.equal(res.statusCode, 200, res.body);
    const { id } = json<{ id: number }>(res);
    const job = json(await h.call(h.acme, 'GET', `/jobs/${id}`));
    assert.equal(job.run_at, '2030-01-01T10:00:00.000Z');
    assert.equal(job.queue_state, 'scheduled');
    const stored = await h.store.db.query<{ utc: string }>(
      `SELECT to_char(run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS utc FROM jobs WHERE id = $1`,
      [id],
    );
    assert.equal(stored.rows[0]!.utc, '2030-01-01 10:00:00');
  });

  void test('an explicit offset is honoured', async () => {
    const { id } = json<{ id: number }>(
      await h.call(h.acme, 'POST', '/job', {
        job: { workflow: 'greet', run_at: '2030-01-01T10:00:00.000+02:00' },
        parameters: { content_id: 'tz2' },
      }),
    );
    assert.equal(json(await h.call(h.acme, 'GET', `/jobs/${id}`)).run_at, '2030-01-01T08:00:00.000Z');
  });

  void test('PATCH run_at without a zone is UTC too', async () => {
    const { id } = json<{ id: number }>(
      await h.call(h.acme, 'POST', '/job', {
        job: { workflow: 'greet', run_at: '2031-01-01T00:00:00.000' },
        parameters: { content_id: 'tz3' },
      }),
    );
    const res = await h.call(h.acme, 'PATCH', `/jobs/${id}`, { run_at: '2032-06-01T23:30:00.000' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(json(await h.call(h.acme, 'GET', `/jobs/${id}`)).run_at, '2032-06-01T23:30:00.000Z');
  });
});
