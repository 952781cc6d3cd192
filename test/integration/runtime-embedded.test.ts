/**
 * Embedded mode (PGlite): an engine that starts on a database whose previous owner died recovers
 * the attempts it left running at once, without waiting for `stall_timeout`. PGlite only, on
 * purpose: this start-up recovery exists in embedded mode only (one process owns an embedded
 * database; on PostgreSQL other engine processes may still be alive and are left to the stall check).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { startTestEngine, testConfig, type TestEngine } from '../helpers/engine.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { createTestStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

void describe('runtime: embedded start-up recovery [pglite]', () => {
  let store: TestStore;
  let previous: TestEngine;
  let next: Engine | null = null;
  const catalog = createFixtureCatalog({
    long: { tasks: [{ name: 'long', run: 'sleep', with: { seconds: 1.5 }, retry_limit: 1, retry_delay: 0 }] },
  });

  before(async () => {
    store = await createTestStore('pglite');
    // stall_timeout is long: only the start-up recovery can explain a quick retry.
    previous = await startTestEngine(store, { catalog, settings: { max_jobs: 2, stall_timeout: 3600 } });
  });
  after(async () => {
    await next?.stop();
    await previous?.stop();
    await store?.dispose();
  });

  it('recovers attempts left running by the previous process as soon as it starts, and finishes the job', async () => {
    const id = await previous.submit('long');
    await waitFor(async () => (await previous.tasks(id))[0]!.state === 'running', {
      what: 'the task to run',
    });
    const [first] = await previous.attempts(id, 'long');
    // The previous process "dies": its worker row is left as it was, its attempt `running`. A new
    // engine on the same embedded database takes over.
    next = await createEngine(testConfig({ workflowsDir: catalog.dir }), {
      db: store.db,
      catalog,
      logger: pino({ level: 'silent' }),
    });
    const t0 = Date.now();
    await next.start();
    const recovered = (await previous.attempts(id, 'long'))[0]!;
    assert.equal(recovered.id, first!.id);
    assert.equal(recovered.state, 'stalled');
    assert.match(recovered.error!, /is gone/);
    assert.ok(Date.now() - t0 < 3_000);
    const old = await store.db.query<{ stopped_at: Date | null }>(
      `SELECT stopped_at FROM workers WHERE id = $1`,
      [previous.engine.workerId],
    );
    assert.ok(old.rows[0]!.stopped_at, "the previous process's worker row is marked stopped");
    const row = await previous.waitForState(id, 'completed', 10_000);
    assert.equal(row.failed, false);
    assert.deepEqual(
      (await previous.attempts(id, 'long')).map((a) => a.state),
      ['stalled', 'succeeded'],
    );
  });
});
