/**
 * The engine's pooled PostgreSQL connections start with JIT off (src/store/pg-executor.ts
 * `connectionOptions`), unless the connection string names its own `options`. A generic plan
 * whose cost estimate crosses `jit_above_cost` would otherwise compile on every execution.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connectionOptions, createPgExecutor } from '../../src/store/pg-executor.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';

void test('connectionOptions: JIT off unless the connection string sets options', () => {
  assert.equal(connectionOptions('postgres://u@127.0.0.1:5432/db'), '-c jit=off');
  assert.equal(connectionOptions('postgres://u@127.0.0.1/db?sslmode=disable'), '-c jit=off');
  assert.equal(connectionOptions('postgres://u@127.0.0.1/db?options=-c%20jit%3Don'), undefined);
  assert.equal(connectionOptions('postgres://u@127.0.0.1/db?a=1&options=x'), undefined);
  assert.equal(connectionOptions('host=127.0.0.1 dbname=db options=x'), undefined);
});

void describe(
  'pooled connections and JIT [postgres]',
  { skip: storeKinds().includes('postgres') ? false : 'needs TEST_DATABASE_URL' },
  () => {
    let store: TestStore;
    before(async () => {
      store = await createTestStore('postgres');
    });
    after(async () => {
      await store.dispose();
    });

    void test('the pool runs its statements with jit = off', async () => {
      const executor = createPgExecutor({ connectionString: store.databaseUrl ?? '' });
      try {
        // Several at once, so more than one pooled connection answers.
        const rows = await Promise.all(
          Array.from({ length: 4 }, () => executor.query<{ jit: string }>('SHOW jit')),
        );
        for (const r of rows) assert.equal(r.rows[0]?.jit, 'off');
      } finally {
        await executor.close();
      }
    });

    void test('options in the connection string win', async () => {
      const u = new URL(store.databaseUrl ?? '');
      u.searchParams.set('options', '-c jit=on');
      const executor = createPgExecutor({ connectionString: u.toString() });
      try {
        const r = await executor.query<{ jit: string }>('SHOW jit');
        assert.equal(r.rows[0]?.jit, 'on');
      } finally {
        await executor.close();
      }
    });
  },
);
