import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LOCK_KEYS } from '../../src/store/executor.js';
import {
  createSchedulerService,
  type SchedulerService,
} from '../../src/engine/scheduler/scheduler-service.js';
import { testContext } from '../helpers/factories.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const noop = async () => 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Leader election needs a real server: PGlite is one process, always its own leader (tested
// implicitly by every other scheduler suite).
const kinds = storeKinds().filter((k) => k === 'postgres');
if (kinds.length === 0)
  process.stderr.write('note: scheduler leader election runs only with TEST_DATABASE_URL\n');

for (const kind of kinds) {
  void describe(`scheduler leader election [${kind}]`, () => {
    let s: TestStore;
    before(async () => {
      s = await createTestStore(kind);
    });
    after(async () => {
      await s.dispose();
    });

    const make = (runs: { n: number }): SchedulerService =>
      createSchedulerService(testContext(s.db), {
        leaderRetryMs: 300,
        handlers: {
          queue_scheduled_jobs: noop,
          recover_stalled_tasks: noop,
          cleanup_jobs: noop,
          push_jobs: async () => {
            runs.n++;
            return 0;
          },
        },
        timing: { push_jobs: { everySeconds: 0.2, firstInSeconds: 0.05 } },
      });

    void it('only the leader runs a schedule; another takes over when it stops or loses its lock connection', async () => {
      const runsA = { n: 0 };
      const runsB = { n: 0 };
      const a = make(runsA);
      const b = make(runsB);
      const c = make({ n: 0 });
      try {
        await a.start();
        await b.start();
        await waitFor(() => a.isLeader || b.isLeader, { what: 'a leader' });
        await sleep(1_200);
        const [leader, follower, leaderRuns, followerRuns] = a.isLeader
          ? [a, b, runsA, runsB]
          : [b, a, runsB, runsA];
        assert.equal(a.isLeader && b.isLeader, false, 'never two leaders');
        assert.ok(leaderRuns.n >= 3, `the leader ran push_jobs ${leaderRuns.n} times`);
        assert.equal(followerRuns.n, 0, 'the follower ran nothing');

        const t0 = Date.now();
        await leader.stop();
        const frozen = leaderRuns.n;
        await waitFor(() => follower.isLeader, { timeoutMs: 5_000, what: 'takeover' });
        assert.ok(Date.now() - t0 < 3_000, `took over in ${Date.now() - t0} ms`);
        await waitFor(() => followerRuns.n >= 2, { timeoutMs: 3_000, what: 'new leader runs the schedule' });
        assert.equal(leaderRuns.n, frozen, 'the stopped leader runs nothing more');

        // The leader's lock connection dies (e.g. a network cut): it must step down, and the lock
        // goes to whoever asks next.
        await c.start();
        await sleep(500);
        assert.equal(c.isLeader, false);
        const { rows } = await s.db.query<{ ok: boolean }>(
          `SELECT pg_terminate_backend(pid) AS ok FROM pg_locks
           WHERE locktype = 'advisory' AND objid = $1 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
          [LOCK_KEYS.schedulerLeader],
        );
        assert.equal(rows.length, 1);
        await waitFor(() => !follower.isLeader || c.isLeader, { timeoutMs: 3_000, what: 'step down' });
        await waitFor(() => follower.isLeader !== c.isLeader, {
          timeoutMs: 5_000,
          what: 'a new single leader',
        });
        await sleep(700);
        assert.notEqual(follower.isLeader, c.isLeader, 'exactly one leader');
      } finally {
        await a.stop();
        await b.stop();
        await c.stop();
      }
    });
  });
}
