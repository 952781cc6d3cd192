import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/engine/clock.js';
import { LOCK_KEYS, type Executor } from '../../src/store/executor.js';
import {
  createSchedulerService,
  type SchedulerService,
} from '../../src/engine/scheduler/scheduler-service.js';
import { advanceUntil } from '../helpers/advance-until.js';
import { testContext } from '../helpers/factories.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const noop = () => Promise.resolve(0);

/** `db`, counting the leadership attempts (`tryLock` calls) made through it in `attempts.n`. */
function countingAttempts(db: Executor, attempts: { n: number }): Executor {
  return new Proxy(db, {
    get(target, prop) {
      if (prop === 'tryLock')
        return (key: number) => {
          attempts.n++;
          return target.tryLock(key);
        };
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

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

    // Leadership attempts and schedule runs follow this clock; the locks themselves are real I/O
    // on separate connections, waited for with advanceUntil.
    const clock = new ManualClock();
    const make = (runs: { n: number }, attempts: { n: number }): SchedulerService =>
      createSchedulerService(testContext(countingAttempts(s.db, attempts), { clock }), {
        leaderRetryMs: 300,
        handlers: {
          queue_scheduled_jobs: noop,
          recover_stalled_tasks: noop,
          cleanup_jobs: noop,
          push_jobs: () => {
            runs.n++;
            return Promise.resolve(0);
          },
        },
        timing: { push_jobs: { everySeconds: 0.2, firstInSeconds: 0.05 } },
      });

    void it('only the leader runs a schedule; another takes over when it stops or loses its lock connection', async () => {
      const runsA = { n: 0 };
      const runsB = { n: 0 };
      const attemptsA = { n: 0 };
      const attemptsB = { n: 0 };
      const attemptsC = { n: 0 };
      const a = make(runsA, attemptsA);
      const b = make(runsB, attemptsB);
      const c = make({ n: 0 }, attemptsC);
      try {
        await a.start();
        await b.start();
        await waitFor(() => a.isLeader || b.isLeader, { what: 'a leader' });
        const [leader, follower, leaderRuns, followerRuns, followerAttempts] = a.isLeader
          ? [a, b, runsA, runsB, attemptsB]
          : [b, a, runsB, runsA, attemptsA];
        // The leader runs push_jobs every 0.2 s while the follower asks for the lock every 0.3 s.
        await advanceUntil(clock, () => leaderRuns.n >= 3 && followerAttempts.n >= 4, {
          stepMs: 100,
          what: 'three runs and four attempts of the follower',
        });
        assert.equal(a.isLeader && b.isLeader, false, 'never two leaders');
        assert.ok(leaderRuns.n >= 3, `the leader ran push_jobs ${leaderRuns.n} times`);
        assert.equal(followerRuns.n, 0, 'the follower ran nothing');

        const t0 = clock.now().getTime();
        await leader.stop();
        const frozen = leaderRuns.n;
        await advanceUntil(clock, () => follower.isLeader, {
          stepMs: 100,
          timeoutMs: 5_000,
          what: 'takeover',
        });
        const took = clock.now().getTime() - t0;
        assert.ok(took < 3_000, `took over in ${took} ms`);
        await advanceUntil(clock, () => followerRuns.n >= 2, {
          stepMs: 100,
          timeoutMs: 3_000,
          what: 'new leader runs the schedule',
        });
        assert.equal(leaderRuns.n, frozen, 'the stopped leader runs nothing more');

        // The leader's lock connection dies (e.g. a network cut): it must step down, and the lock
        // goes to whoever asks next.
        await c.start();
        await advanceUntil(clock, () => attemptsC.n >= 3, { stepMs: 100, what: 'three attempts of c' });
        assert.equal(c.isLeader, false);
        const { rows } = await s.db.query<{ ok: boolean }>(
          `SELECT pg_terminate_backend(pid) AS ok FROM pg_locks
           WHERE locktype = 'advisory' AND objid = $1 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
          [LOCK_KEYS.schedulerLeader],
        );
        assert.equal(rows.length, 1);
        await advanceUntil(clock, () => !follower.isLeader || c.isLeader, {
          stepMs: 100,
          timeoutMs: 3_000,
          what: 'step down',
        });
        await advanceUntil(clock, () => follower.isLeader !== c.isLeader, {
          stepMs: 100,
          timeoutMs: 5_000,
          what: 'a new single leader',
        });
        // The one left without the lock keeps asking, and keeps being refused.
        const loser = follower.isLeader ? attemptsC : followerAttempts;
        const asked = loser.n;
        await advanceUntil(clock, () => loser.n >= asked + 2, { stepMs: 100, what: 'two more attempts' });
        assert.notEqual(follower.isLeader, c.isLeader, 'exactly one leader');
      } finally {
        await a.stop();
        await b.stop();
        await c.stop();
      }
    });
  });
}
