/**
 * A claim whose answer is lost with the connection (the statement, or the result transaction
 * holding a hand-off claim, committed on the server, and the socket closed before the answer came
 * back): the worker finds the tasks that claim took and runs them as claimed, once, long before
 * stall recovery (30 s) would have handed them on. The loss is played by a wrapper of the real
 * store's executor that lets the statement or the transaction commit and then throws the error
 * `pg` gives for a socket closed under a query.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { Executor, Queryable } from '../../src/store/executor.js';
import { queryNameOf } from '../../src/store/queries/define-query.js';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';

const isClaim = (sql: string): boolean => (queryNameOf(sql) ?? '').startsWith('claim-ready-tasks');

/** A claim's rows took tasks (a claim that took nothing answers one row with `task_id` null). */
const tookTasks = (rows: unknown[]): boolean =>
  rows.some(
    (r) =>
      (r as { task_id?: unknown }).task_id !== null && (r as { task_id?: unknown }).task_id !== undefined,
  );

const connectionLost = (): Error => new Error('Connection terminated unexpectedly');

/**
 * Wraps `db`: the first claim pass (`where: 'pass'`) or the first transaction with a hand-off claim
 * (`where: 'handoff'`) that takes tasks runs and commits, then fails as a lost connection would.
 */
function losingOneAnswer(db: Executor, where: 'pass' | 'handoff'): { db: Executor; lost: () => boolean } {
  let lost = false;
  const wrapped: Executor = Object.create(db) as Executor;
  Object.assign(wrapped, {
    kind: db.kind,
    query: async (sql: string, params?: readonly unknown[]) => {
      const result = await db.query(sql, params);
      if (where === 'pass' && !lost && isClaim(sql) && tookTasks(result.rows)) {
        lost = true;
        throw connectionLost();
      }
      return result;
    },
    exec: (sql: string) => db.exec(sql),
    transaction: async <T>(fn: (tx: Queryable) => Promise<T>) => {
      let claimedHere = false;
      const result = await db.transaction((tx) =>
        fn({
          query: async <R>(sql: string, params?: readonly unknown[]) => {
            const r = await tx.query<R>(sql, params);
            if (isClaim(sql) && tookTasks(r.rows)) claimedHere = true;
            return r;
          },
          exec: (sql) => tx.exec(sql),
        }),
      );
      if (where === 'handoff' && !lost && claimedHere) {
        lost = true;
        throw connectionLost();
      }
      return result;
    },
    listen: db.listen.bind(db),
    tryLock: db.tryLock.bind(db),
    close: db.close.bind(db),
  });
  return { db: wrapped, lost: () => lost };
}

const workflows = {
  // Two steps: the first one's result transaction claims the second (a hand-off claim; the first
  // runs long enough for the passes of the job's admission to be over, so none holds the slots).
  pair: {
    tasks: [
      { name: 'first', run: 'sleep', with: { seconds: 0.3 } },
      { name: 'second', run: 'sleep', with: { seconds: 0 }, needs: ['first'] },
    ],
  },
};

forEachStore('workers: a claim whose answer was lost', (kind) => {
  let store: TestStore;
  const engines: TestEngine[] = [];
  before(async () => {
    store = await createTestStore(kind);
  });
  after(async () => {
    for (const te of engines) await te.stop();
    await store?.dispose();
  });

  for (const where of ['pass', 'handoff'] as const)
    it(`runs the tasks of a ${where === 'pass' ? 'claim pass' : 'hand-off claim'} that committed unanswered, each once`, async () => {
      const losing = losingOneAnswer(store.db, where);
      const te = await startTestEngine(
        { ...store, db: losing.db },
        { workflows, concurrency: 2, settings: { max_jobs: 10 } },
      );
      engines.push(te);
      try {
        const id = await te.submit('pair');
        // Stall recovery would take 30 s (stall_timeout) and count a second attempt.
        await te.waitForState(id, 'completed', 10_000);
        assert.ok(losing.lost(), 'a claim answer was lost');
        const tasks = await te.tasks(id);
        assert.deepEqual(
          tasks.map((t) => [t.name, t.state, t.attempts]),
          [
            ['first', 'succeeded', 1],
            ['second', 'succeeded', 1],
          ],
        );
        for (const name of ['first', 'second'])
          assert.deepEqual(
            (await te.attempts(id, name)).map((a) => a.state),
            ['succeeded'],
            `attempts of ${name}`,
          );
        const started = (await te.logs(id)).filter((l) => / started/.test(l.message)).map((l) => l.message);
        assert.deepEqual(
          started.filter((m) => m.startsWith('Task ')),
          ["Task 'first' started", "Task 'second' started"],
        );
      } finally {
        // Stopped here even when it fails: a running engine would claim the next test's tasks.
        await te.stop();
      }
    });
});
