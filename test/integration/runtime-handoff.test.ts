/**
 * The hand-off claim (docs/architecture.md "Workers"): the transaction that records a task's
 * result claims the pool's next work, so a sequential job moves one transaction per step, with no
 * claim pass of its own; and with `handoffClaims: false` every step costs passes again. The
 * statements are counted on a wrapper of the store's executor, by their query name.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import type { Executor, Queryable } from '../../src/store/executor.js';
import { queryNameOf } from '../../src/store/queries/define-query.js';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';

/** Claim statements and transactions run through the wrapped executor since the last `reset`. */
interface Counts {
  claimsInTransactions: number;
  claimPasses: number;
  transactions: number;
}

/** Wraps `db` so claim statements (inside and outside transactions) and transactions are counted. */
function countingExecutor(db: Executor): { db: Executor; counts: Counts; reset(): void } {
  const counts: Counts = { claimsInTransactions: 0, claimPasses: 0, transactions: 0 };
  const isClaim = (sql: string): boolean => (queryNameOf(sql) ?? '').startsWith('claim-ready-tasks');
  const wrapped: Executor = Object.create(db) as Executor;
  Object.assign(wrapped, {
    kind: db.kind,
    query: (sql: string, params?: readonly unknown[]) => {
      if (isClaim(sql)) counts.claimPasses++;
      return db.query(sql, params);
    },
    exec: (sql: string) => db.exec(sql),
    transaction: <T>(fn: (tx: Queryable) => Promise<T>) =>
      db.transaction((tx) => {
        counts.transactions++;
        return fn({
          query: (sql, params) => {
            if (isClaim(sql)) counts.claimsInTransactions++;
            return tx.query(sql, params);
          },
          exec: (sql) => tx.exec(sql),
        });
      }),
    listen: db.listen.bind(db),
    tryLock: db.tryLock.bind(db),
    close: db.close.bind(db),
  });
  return {
    db: wrapped,
    counts,
    reset() {
      counts.claimsInTransactions = counts.claimPasses = counts.transactions = 0;
    },
  };
}

const STEPS = 8;
const workflows = {
  chain: {
    tasks: Array.from({ length: STEPS }, (_, i) => ({
      name: `t${i + 1}`,
      run: 'sleep',
      with: { seconds: 0 },
      ...(i > 0 ? { needs: [`t${i}`] } : {}),
    })),
  },
  one: { tasks: [{ name: 'only', run: 'sleep', with: { seconds: 0 } }] },
};

forEachStore('workers: hand-off claims', (kind) => {
  let store: TestStore;
  const engines: TestEngine[] = [];

  before(async () => {
    store = await createTestStore(kind);
  });
  after(async () => {
    for (const te of engines) await te.stop();
    await store?.dispose();
  });

  /** Runs `jobs` chain jobs one at a time on a fresh engine; returns the counts per job. */
  const runChains = async (handoffClaims: boolean, jobs: number): Promise<Counts> => {
    const counting = countingExecutor(store.db);
    const te = await startTestEngine(
      { ...store, db: counting.db },
      { workflows, concurrency: 4, settings: { max_jobs: 10 }, engine: { handoffClaims } },
    );
    engines.push(te);
    // One job first: the engine's start-up passes and the first plans are not counted.
    await te.waitForState(await te.submit('chain'), 'completed');
    counting.reset();
    for (let i = 0; i < jobs; i++) {
      const id = await te.submit('chain');
      await te.waitForState(id, 'completed');
      const tasks = await te.tasks(id);
      assert.deepEqual(
        tasks.map((t) => t.state),
        Array(STEPS).fill('succeeded'),
      );
    }
    await te.stop();
    return {
      claimsInTransactions: counting.counts.claimsInTransactions / jobs,
      claimPasses: counting.counts.claimPasses / jobs,
      transactions: counting.counts.transactions / jobs,
    };
  };

  it('a sequential job claims each next task in the transaction that records the one before', async () => {
    const on = await runChains(true, 3);
    // Each task but the first is claimed by the result write of the task before it; the first by
    // a pass woken by its admission (one pass or two, as wake-ups fall).
    assert.ok(
      on.claimsInTransactions >= STEPS - 1,
      `claims in result transactions per job: ${on.claimsInTransactions}`,
    );
    assert.ok(on.claimPasses <= 3, `claim passes per job: ${on.claimPasses}`);
    const off = await runChains(false, 3);
    // Without it: at least one pass per task (the freed slot's, the notification's), none inside.
    assert.equal(off.claimsInTransactions, 0);
    assert.ok(off.claimPasses >= STEPS, `claim passes per job without hand-off claims: ${off.claimPasses}`);
    // Commits per job: the transactions, and each pass (a statement of its own).
    const commits = (c: Counts): number => c.transactions + c.claimPasses;
    assert.ok(
      commits(on) <= commits(off) - (STEPS - 3),
      `commits per job: ${commits(on)} with hand-off claims, ${commits(off)} without`,
    );
  });

  it('a delayed retry runs when it is due while result writes keep the pool busy, not at the next poll', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'te-handoff-retry-'));
    const te = await startTestEngine(store, {
      workflows: {
        ...workflows,
        // Fails its first attempt (then leaves a marker), so it is retried once after 1 s.
        flaky: {
          tasks: [
            {
              name: 'once',
              run: 'exec',
              with: {
                command: 'sh',
                args: ['-c', 'test -f "$0" || { touch "$0"; exit 1; }', '{{ parameters.marker }}'],
              },
              retry_limit: 1,
              retry_delay: 1,
            },
          ],
        },
        busy: { tasks: [{ name: 'busy', run: 'sleep', with: { seconds: 0.3 } }] },
      },
      // One slot, and a poll far beyond the test's wait: only a wake-up can run the retry in time.
      concurrency: 1,
      settings: { max_jobs: 10 },
      engine: { workerPollIntervalMs: 120_000 },
      start: false,
    });
    engines.push(te);
    try {
      // The failing attempt's result write claims the busy task (the pool is full when the retry
      // is scheduled); the busy task's own result write then finds nothing due yet.
      const flaky = await te.submit('flaky', { marker: path.join(dir, 'marker') });
      const busy = await te.submit('busy');
      await te.engine.start();
      await te.waitForState(busy, 'completed', 10_000);
      await te.waitForState(flaky, 'completed', 10_000);
      const attempts = await te.attempts(flaky, 'once');
      assert.deepEqual(
        attempts.map((a) => a.state),
        ['failed', 'succeeded'],
      );
    } finally {
      await te.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a backlog deeper than the slots drains through the result writes, every job completed', async () => {
    const counting = countingExecutor(store.db);
    const te = await startTestEngine(
      { ...store, db: counting.db },
      { workflows, concurrency: 2, settings: { max_jobs: 100 }, start: false },
    );
    engines.push(te);
    const ids: number[] = [];
    for (let i = 0; i < 30; i++) ids.push(await te.submit('one'));
    await te.engine.start();
    for (const id of ids) await te.waitForState(id, 'completed');
    // Two slots for 30 tasks: after the first pass fills them, result writes claim for the slots
    // they free (a pass takes a slot that came free while another batch was in flight).
    assert.ok(
      counting.counts.claimsInTransactions > 0,
      `claims in result transactions ${counting.counts.claimsInTransactions}, passes ${counting.counts.claimPasses}`,
    );
    await te.stop();
  });
});
