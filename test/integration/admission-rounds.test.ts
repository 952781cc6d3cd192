/**
 * One admission pass on both stores, called directly (no controller): the bounded read of each
 * client's queue heads, read again past concurrency keys that the pass itself filled.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { admitJobs } from '../../src/engine/controller/admission.js';
import type { Engine } from '../../src/engine/engine.js';
import { createIdleEngine, submitAs, writeSettings } from '../helpers/engine.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { FAIR_WORKFLOWS } from './fair-helpers.js';

forEachStore('admission pass: reads past keys it fills', (kind) => {
  let store: TestStore;
  let engine: Engine;
  before(async () => {
    store = await createTestStore(kind);
    engine = await createIdleEngine(store, createFixtureCatalog(FAIR_WORKFLOWS));
  });
  after(() => store?.dispose());

  const states = async (ids: number[]) =>
    (
      await store.db.query<{ id: number; queue_state: string }>(
        'SELECT id, queue_state FROM jobs WHERE id = ANY($1::bigint[]) ORDER BY id',
        [ids],
      )
    ).rows.map((r) => r.queue_state);

  it('a pass fills every slot although the first heads read all share one limit-1 key', async () => {
    await writeSettings(store.db, { max_jobs: 4 });
    const keyed: number[] = [];
    for (let i = 0; i < 6; i++)
      keyed.push(await submitAs(engine, 'keyed', { content_id: 'one', seconds: 60 }));
    const plain: number[] = [];
    for (let i = 0; i < 3; i++) plain.push(await submitAs(engine, 'hold', { seconds: 60 }));
    assert.equal(await admitJobs(engine.ctx), 4);
    assert.deepEqual(await states(keyed), ['started', 'queued', 'queued', 'queued', 'queued', 'queued']);
    assert.deepEqual(await states(plain), ['started', 'started', 'started']);
    // Nothing more may start: the slots are full.
    assert.equal(await admitJobs(engine.ctx), 0);
  });
});
