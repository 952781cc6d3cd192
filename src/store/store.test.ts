import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { createTestStore, forEachStore, type TestStore } from '../../test/helpers/stores.js';
import { migrate, readMigrations } from './migrate.js';

forEachStore('store', (kind) => {
  let s: TestStore;
  before(async () => {
    s = await createTestStore(kind);
  });
  after(async () => {
    await s.dispose();
  });

  it('migrates once: a second run applies nothing', async () => {
    assert.deepEqual(await migrate(s.db), []);
    const { rows } = await s.db.query<{ version: number }>('SELECT version FROM schema_migrations');
    const expected = (await readMigrations()).map((m) => m.version);
    assert.ok(expected.length >= 1);
    assert.deepEqual(
      rows.map((r) => r.version),
      expected,
    );
  });

  it('returns int8 as numbers and timestamptz as Dates', async () => {
    const { rows } = await s.db.query<{ n: number; t: Date }>('SELECT count(*) AS n, now() AS t FROM jobs');
    assert.equal(rows[0]!.n, 0);
    assert.ok(rows[0]!.t instanceof Date);
  });

  it('rolls back a failed transaction and keeps the connection usable', async () => {
    await assert.rejects(
      s.db.transaction(async (tx) => {
        await tx.query("INSERT INTO settings (name, value) VALUES ('x', '1')");
        await tx.query('SELECT * FROM no_such_table');
      }),
    );
    const { rows } = await s.db.query("SELECT * FROM settings WHERE name = 'x'");
    assert.equal(rows.length, 0);
  });

  it('delivers NOTIFY to listeners after commit', async () => {
    const got: string[] = [];
    const unlisten = await s.db.listen('te_test', (p) => got.push(p));
    await s.db.transaction(async (tx) => {
      await tx.query("SELECT pg_notify('te_test', $1)", ['hello']);
    });
    const deadline = Date.now() + 2000;
    while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await unlisten();
    assert.deepEqual(got, ['hello']);
  });
});
