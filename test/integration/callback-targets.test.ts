/**
 * The claim statement builds `start` callbacks in SQL (callbackTargetsSql); every other event
 * uses callbackTargets in TypeScript. Both must pick the same targets in the same order.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { callbackTargets } from '../../src/engine/callbacks/bodies.js';
import { callbackTargetsSql } from '../../src/engine/callbacks/enqueue.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';

const CASES: Record<string, unknown>[] = [
  {},
  { rest_endpoints: null },
  { rest_endpoints: 'http://a.example/x' },
  { rest_endpoints: { url: 'http://a.example/x' } },
  { rest_endpoints: [] },
  { rest_endpoints: ['http://a.example/1', 'https://b.example/2'] },
  { rest_endpoints: ['https://b.example/2', 'http://a.example/1', 'https://b.example/2'] },
  {
    rest_endpoints: [
      'HTTP://UPPER.example/',
      'ftp://no.example/',
      'no-scheme.example',
      ' http://space.example/',
    ],
  },
  {
    rest_endpoints: [1, null, true, { u: 'http://x.example/' }, ['http://y.example/'], 'http://ok.example/'],
  },
  { rest_endpoints: ['http://a.example/?q=1&r=ü', "http://a.example/it's", 'http://a.example/?q=1&r=ü'] },
];

forEachStore('callback targets in SQL and TypeScript', (kind) => {
  let store: TestStore;
  before(async () => {
    store = await createTestStore(kind);
  });
  after(() => store.dispose());

  it('choose the same targets in the same order for every shape of rest_endpoints', async () => {
    for (const parameters of CASES) {
      const { rows } = await store.db.query<{ url: string }>(
        `SELECT url FROM ${callbackTargetsSql('$1::jsonb')} AS t ORDER BY n`,
        [JSON.stringify(parameters)],
      );
      assert.deepEqual(
        rows.map((r) => r.url),
        callbackTargets(parameters),
        `rest_endpoints ${JSON.stringify(parameters.rest_endpoints)}`,
      );
    }
  });
});
