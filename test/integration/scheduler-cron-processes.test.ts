/**
 * A cron schedule across real engine processes on one PostgreSQL database: a schedule every
 * second for 30 s with two scheduler engines, the leader killed (-9) in the middle, makes
 * exactly one job per slot and misses none (catch_up all). PostgreSQL only: an embedded database
 * belongs to one process.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createCronSchedule } from '../../src/engine/scheduler/cron-schedules.js';
import { spawnEngineProcess, type EngineProcess } from '../helpers/engine.js';
import { testContext } from '../helpers/factories.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const hasPostgres = storeKinds().includes('postgres');
const LEADER_LINE = 'this process is now the scheduler leader';

void describe(
  'scheduler: a cron schedule across engine processes [postgres]',
  { skip: hasPostgres ? false : 'needs TEST_DATABASE_URL' },
  () => {
    let store: TestStore;
    const procs: EngineProcess[] = [];
    const catalog = createFixtureCatalog({
      tick: { tasks: [{ name: 'tick', run: 'sleep', with: { seconds: 0 } }] },
    });

    before(async () => {
      store = await createTestStore('postgres');
    });
    after(async () => {
      for (const p of procs) await p.kill();
      await store?.dispose();
    });

    const spawn = async (): Promise<EngineProcess> => {
      const p = await spawnEngineProcess({
        databaseUrl: store.databaseUrl!,
        workflowsDir: catalog.dir,
        roles: ['scheduler'],
        env: { TASK_ENGINE_LOG_LEVEL: 'info' },
      });
      procs.push(p);
      return p;
    };

    void it('every second for 30 s, two engines, the leader killed in the middle: one job per slot, none missed', async () => {
      const [a, b] = await Promise.all([spawn(), spawn()]);
      const leaderOf = () => [a, b].find((p) => p.output().includes(LEADER_LINE));
      const first = await waitFor(leaderOf, { what: 'a scheduler leader', timeoutMs: 10_000 });
      const ctx = testContext(store.db, { catalog });
      await createCronSchedule(
        ctx,
        { client: 'ops', admin: true },
        { name: 'every-second', cron: '* * * * * *', workflow: 'tick', overlap: 'allow', catch_up: 'all' },
      );
      const slots = async () =>
        (
          await store.db.query<{ scheduled_for: Date; n: number }>(
            `SELECT scheduled_for, count(*)::int AS n FROM jobs WHERE schedule = 'every-second'
             GROUP BY scheduled_for ORDER BY scheduled_for`,
          )
        ).rows;
      await waitFor(async () => (await slots()).length >= 15, { what: '15 slots', timeoutMs: 30_000 });
      await first.kill();
      const killedAt = Date.now();
      const second = first === a ? b : a;
      await waitFor(() => second.output().includes(LEADER_LINE), {
        what: 'the other engine to lead',
        timeoutMs: 15_000,
      });
      const takeoverMs = Date.now() - killedAt;
      await waitFor(async () => (await slots()).length >= 30, { what: '30 slots', timeoutMs: 35_000 });
      await second.stop();

      const rows = await slots();
      assert.ok(rows.length >= 30, `${rows.length} slots`);
      for (const r of rows) assert.equal(r.n, 1, `one job for slot ${r.scheduled_for.toISOString()}`);
      // Every second from the first slot to the last has its job: the new leader caught up the
      // slots that passed while no engine led.
      const times = rows.map((r) => r.scheduled_for.getTime());
      for (let i = 1; i < times.length; i++)
        assert.equal(
          times[i]! - times[i - 1]!,
          1_000,
          `no gap after ${new Date(times[i - 1]!).toISOString()}`,
        );
      assert.ok(times.at(-1)! > killedAt, 'the engine that took over went on submitting after the kill');
      // Each job's first log entry names the schedule and its slot.
      const { rows: logs } = await store.db.query<{ scheduled_for: Date; message: string }>(
        `SELECT j.scheduled_for, (SELECT l.message FROM logs l WHERE l.job_id = j.id ORDER BY l.id LIMIT 1) AS message
         FROM jobs j WHERE j.schedule = 'every-second'`,
      );
      for (const l of logs)
        assert.equal(
          l.message,
          `submitted by schedule every-second for slot ${l.scheduled_for.toISOString()}`,
        );
      // How late each job was submitted after its slot (the slots caught up after the kill included).
      const { rows: lateness } = await store.db.query<{ ms: number }>(
        `SELECT (extract(epoch FROM created_at - scheduled_for) * 1000)::int AS ms
         FROM jobs WHERE schedule = 'every-second' ORDER BY ms`,
      );
      const ms = lateness.map((r) => r.ms);
      process.stderr.write(
        `cron across processes: ${rows.length} slots, takeover in ${takeoverMs} ms, ` +
          `submitted after the slot: median ${ms[Math.floor(ms.length / 2)]} ms, max ${ms.at(-1)} ms\n`,
      );
    });
  },
);
