/**
 * A claim whose answer is lost with the connection (the statement, or the result transaction
 * holding a hand-off claim, committed on the server, and the socket closed before the answer came
 * back): the worker finds the tasks that claim took and runs them as claimed, once, long before
 * stall recovery (30 s) would have handed them on. The loss is played by a wrapper of the real
 * store's executor that lets the statement or the transaction commit and then throws the error
 * `pg` gives for a socket closed under a query; in the `late` case the error comes first and the
 * statement commits half a second later (the server still ran it when the client saw the drop),
 * holding back every other claim meanwhile, as its row locks would.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import type { Executor, Queryable } from '../../src/store/executor.js';
import { queryNameOf } from '../../src/store/queries/define-query.js';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';

const isClaim = (sql: string): boolean => (queryNameOf(sql) ?? '').startsWith('claim-ready-tasks');

/** A claim's rows took tasks (a claim that took nothing answers one row with `task_id` null). */
const tookTasks = (rows: unknown[]): boolean =>
  rows.some((r) => {
    const id = (r as { task_id?: unknown }).task_id;
    return id !== null && id !== undefined;
  });

const connectionLost = (): Error => new Error('Connection terminated unexpectedly');

/** Where the one lost answer is played. */
type Where = 'pass' | 'handoff' | 'late';

/**
 * Wraps `db`: the first claim pass (`pass`) or the first transaction with a hand-off claim
 * (`handoff`) that takes tasks runs and commits, then fails as a lost connection would; or
 * (`late`) the first claim pass fails at once and runs 500 ms later, other claims waiting for it.
 */
function losingOneAnswer(
  db: Executor,
  where: Where,
): { db: Executor; arm(): void; lost: () => boolean; lateTook: () => boolean } {
  let armed = false;
  let lost = false;
  let lateTook = false;
  let late: Promise<unknown> | null = null;
  const wrapped: Executor = Object.create(db) as Executor;
  Object.assign(wrapped, {
    kind: db.kind,
    query: async (sql: string, params?: readonly unknown[]) => {
      if (isClaim(sql) && late) await late;
      if (where === 'late' && armed && !lost && isClaim(sql)) {
        lost = true;
        late = new Promise((resolve) => setTimeout(resolve, 500))
          .then(() => db.query(sql, params))
          .then((r) => (lateTook = tookTasks(r.rows)));
        throw connectionLost();
      }
      const result = await db.query(sql, params);
      if (where === 'pass' && armed && !lost && isClaim(sql) && tookTasks(result.rows)) {
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
            if (isClaim(sql) && late) await late;
            const r = await tx.query<R>(sql, params);
            if (isClaim(sql) && tookTasks(r.rows)) claimedHere = true;
            return r;
          },
          exec: (sql) => tx.exec(sql),
        }),
      );
      if (where === 'handoff' && armed && !lost && claimedHere) {
        lost = true;
        throw connectionLost();
      }
      return result;
    },
    listen: db.listen.bind(db),
    tryLock: db.tryLock.bind(db),
    close: db.close.bind(db),
  });
  return {
    db: wrapped,
    arm: () => (armed = true),
    lost: () => lost,
    lateTook: () => lateTook,
  };
}

/** A task that appends its name to the file `parameters.runs`: one line per handler run. */
const appending = (name: string, pause: number) => ({
  name,
  run: 'exec',
  with: { command: 'sh', args: ['-c', `sleep ${pause}; echo ${name} >> "$0"`, '{{ parameters.runs }}'] },
});

const workflows = {
  // Two steps: the first one's result transaction claims the second (a hand-off claim; the first
  // runs long enough for the passes of the job's admission to be over, so none holds the slots).
  pair: { tasks: [appending('first', 0.3), { ...appending('second', 0), needs: ['first'] }] },
};

const cases: Record<Where, string> = {
  pass: 'a claim pass that committed unanswered',
  handoff: 'a hand-off claim that committed unanswered',
  late: 'a claim pass that committed after its connection dropped (found by the second look)',
};

forEachStore('workers: a claim whose answer was lost', (kind) => {
  let store: TestStore;
  let dir: string;
  const engines: TestEngine[] = [];
  before(async () => {
    store = await createTestStore(kind);
    dir = mkdtempSync(path.join(tmpdir(), 'te-lost-claims-'));
  });
  after(async () => {
    for (const te of engines) await te.stop();
    await store?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const where of Object.keys(cases) as Where[])
    it(`runs the tasks of ${cases[where]}, each once`, async () => {
      const losing = losingOneAnswer(store.db, where);
      const te = await startTestEngine(
        { ...store, db: losing.db },
        { workflows, concurrency: 2, settings: { max_jobs: 10 } },
      );
      engines.push(te);
      try {
        const runs = path.join(dir, `${where}.txt`);
        const id = await te.submit('pair', { runs });
        // Before the job's first claim, which a pass makes once admission has made its task ready.
        losing.arm();
        // Stall recovery would take 30 s (stall_timeout) and count a second attempt.
        await te.waitForState(id, 'completed', 10_000);
        assert.ok(losing.lost(), 'a claim answer was lost');
        if (where === 'late') assert.ok(losing.lateTook(), 'the late claim took the first task');
        assert.equal((await te.job(id)).failed, false);
        assert.deepEqual(readFileSync(runs, 'utf8').split('\n'), ['first', 'second', ''], 'handler runs');
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
        const started = (await te.logs(id)).map((l) => l.message).filter((m) => /^Task .* started/.test(m));
        assert.deepEqual(started, ["Task 'first' started", "Task 'second' started"]);
      } finally {
        // Stopped here even when it fails: a running engine would claim the next test's tasks.
        await te.stop();
      }
    });
});
