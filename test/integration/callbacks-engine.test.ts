/**
 * Callbacks through a running engine (controller + worker roles, which include the dispatcher):
 * a dead or hanging endpoint never holds a task or the job, and the job-end callback is sent once.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { startReceiver, type Receiver } from '../helpers/http-receiver.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

forEachStore('callbacks through the engine', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let rx: Receiver;
  let deadUrl: string;

  before(async () => {
    store = await createTestStore(kind);
    rx = await startReceiver((req) => (req.path === '/hang' ? { hang: true } : { status: 200 }));
    // A port that was just free: nothing listens there (connection refused).
    const gone = await startReceiver();
    deadUrl = `${gone.url}/dead`;
    await gone.close();
    te = await startTestEngine(store, {
      workflows: {
        two: {
          parameters: { type: 'object', properties: { rest_endpoints: { type: 'array' } } },
          tasks: [
            { name: 'first', run: 'sleep', with: { seconds: 0 } },
            { name: 'second', run: 'sleep', with: { seconds: 0 } },
          ],
          outputs: { message: 'done' },
        },
      },
    });
  });
  after(async () => {
    await te?.stop();
    await rx?.close();
    await store?.dispose();
  });

  void it('a hanging and a dead endpoint delay neither the job nor the healthy endpoint; job end sent once', async () => {
    const t0 = Date.now();
    const id = await te.submit('two', {
      rest_endpoints: [`${rx.url}/hang`, deadUrl, `${rx.url}/ok`],
    });
    await te.waitForState(id, 'completed', 5_000);
    assert.ok(Date.now() - t0 < 5_000);
    await waitFor(() => rx.on('/ok').some((r) => (JSON.parse(r.raw) as { status?: string }).status), {
      timeoutMs: 5_000,
      what: 'job-end callback at the healthy endpoint',
    });
    const ok = rx.on('/ok').map((r) => JSON.parse(r.raw) as Record<string, unknown>);
    assert.deepEqual(
      ok.map((b) => b.status ?? `${String(b.task_name)}:${String(b.event)}`),
      ['first:start', 'first:complete', 'second:start', 'second:complete', 'completed'],
    );
    assert.equal(ok[4]!.message, 'done');
    // The hanging endpoint got only the first callback so far (the rest wait behind it, in order).
    assert.equal(rx.on('/hang').length, 1);
    const { rows } = await store.db.query<{ target_url: string; state: string; n: number }>(
      `SELECT target_url, state, count(*)::int AS n FROM callback_deliveries WHERE job_id = $1 AND kind = 'job'
       GROUP BY target_url, state ORDER BY target_url`,
      [id],
    );
    assert.equal(rows.length, 3, 'one job-end delivery per target');
    assert.ok(rows.every((r) => r.n === 1));
    const logs = await te.logs(id);
    assert.ok(
      logs.some(
        (l) => l.progname === 'callback' && /\/dead attempt 1 of 6 failed: ECONNREFUSED/.test(l.message),
      ),
      JSON.stringify(logs.filter((l) => l.progname === 'callback').map((l) => l.message)),
    );
  });
});
