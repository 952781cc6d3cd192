/**
 * Programs started by tasks do not outlive an engine process killed with SIGKILL: the next engine
 * process on the host (at start), or the next stalled-attempt recovery, kills them before the
 * attempt is retried, so two copies never run at once. Real engine processes on PostgreSQL, on
 * purpose: several processes share the database, and an embedded one belongs to one process.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Engine } from '../../src/engine/engine.js';
import { recoverStalledAttempts } from '../../src/engine/maintenance/recover-stalled.js';
import { configureChildRegistry, readProcessStat } from '../../src/process/child-registry.js';
import { createIdleEngine, engineProcessSpawner, submitAs, writeSettings } from '../helpers/engine.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const hasPostgres = storeKinds().includes('postgres');
const hasProc = readProcessStat(process.pid) !== null;

/**
 * The task's program: writes its pid (and, on the first attempt, the pid of a `sleep` it starts in
 * its process group) to `<dir>/<job>-<attempt>.pids`, then on the first attempt waits for the
 * sleep; a later attempt ends at once.
 */
const SCRIPT = [
  'out="$1/$TASK_ENGINE_JOB_ID-$TASK_ENGINE_ATTEMPT.pids"',
  'if [ "$TASK_ENGINE_ATTEMPT" = 1 ]; then',
  '  sleep 60 & echo "$$ $!" > "$out.tmp"; mv "$out.tmp" "$out"; wait',
  'else',
  '  echo "$$" > "$out"',
  'fi',
].join('\n');

function alive(pid: number): boolean {
  const stat = readProcessStat(pid);
  return stat !== null && stat.state !== 'Z' && stat.state !== 'X';
}

void describe(
  'child processes of a killed engine process [postgres]',
  { skip: !hasPostgres ? 'needs TEST_DATABASE_URL' : !hasProc ? 'needs /proc (Linux)' : false },
  () => {
    let store: TestStore;
    let local: Engine;
    let root: string;
    let pidsDir: string;
    let registryDir: string;
    const { spawn, killAll } = engineProcessSpawner(() => ({
      databaseUrl: store.databaseUrl!,
      workflowsDir: catalog.dir,
      env: { TE_HEARTBEAT_MS: '500', TMPDIR: root },
    }));
    const strays: number[] = [];
    let catalog: ReturnType<typeof createFixtureCatalog>;

    before(async () => {
      root = mkdtempSync(path.join(tmpdir(), 'te-orphans-'));
      pidsDir = path.join(root, 'pids');
      // The engine processes get TMPDIR=root, so their registry is this folder.
      registryDir = path.join(root, `task-engine-children-${process.getuid!()}`);
      configureChildRegistry({ dir: registryDir });
      catalog = createFixtureCatalog({
        orphan: {
          tasks: [
            {
              name: 'work',
              run: 'exec',
              with: { command: 'sh', args: ['-c', SCRIPT, 'sh', pidsDir] },
              retry_limit: 2,
              retry_delay: 0,
            },
          ],
        },
      });
      mkdirSync(pidsDir);
      store = await createTestStore('postgres');
      // Not started: submits jobs and runs recovery passes, as an API node would.
      local = await createIdleEngine(store, catalog);
      await writeSettings(store.db, { max_jobs: 5, stall_timeout: 2 });
    });
    after(async () => {
      await killAll();
      for (const pid of strays)
        for (const target of [-pid, pid])
          try {
            process.kill(target, 'SIGKILL');
          } catch {
            // gone
          }
      configureChildRegistry({ dir: undefined });
      await store?.dispose();
      rmSync(root, { recursive: true, force: true });
    });

    /** Waits for the first attempt of job `id` to report its pids: [program, sleep]. */
    const firstAttemptPids = async (id: number): Promise<number[]> => {
      const file = path.join(pidsDir, `${id}-1.pids`);
      const pids = await waitFor(
        () => (existsSync(file) ? readFileSync(file, 'utf8').trim().split(' ').map(Number) : null),
        { timeoutMs: 15_000, what: `job ${id}'s program to start` },
      );
      strays.push(...pids);
      return pids;
    };

    const finishes = async (id: number): Promise<void> => {
      await waitFor(async () => (await recoverStalledAttempts(local.ctx)) > 0, {
        timeoutMs: 15_000,
        intervalMs: 250,
        what: 'the killed attempt to be recovered',
      });
      await waitFor(
        async () =>
          (await store.db.query<{ s: string }>(`SELECT queue_state AS s FROM jobs WHERE id = $1`, [id]))
            .rows[0]!.s === 'completed',
        { timeoutMs: 15_000, what: `job ${id} to complete` },
      );
      const attempts = await store.db.query<{ state: string }>(
        `SELECT state FROM attempts WHERE job_id = $1 ORDER BY number`,
        [id],
      );
      assert.deepEqual(
        attempts.rows.map((r) => r.state),
        ['stalled', 'succeeded'],
      );
      assert.ok(existsSync(path.join(pidsDir, `${id}-2.pids`)), 'the retried attempt ran the program');
    };

    it('an engine process starting on the host kills the program a killed engine process left running, before it runs anything', async () => {
      const a = await spawn();
      const id = await submitAs(local, 'orphan');
      const [program, sleep] = await firstAttemptPids(id);
      assert.ok(alive(program!) && alive(sleep!));
      // The engine records the child right after spawn() returns, but the program may run (and
      // write its pids) before the engine process is scheduled again: wait for the record.
      const record = `e${a.pid}-c${program}.json`;
      await waitFor(() => existsSync(registryDir) && readdirSync(registryDir).includes(record), {
        timeoutMs: 5_000,
        intervalMs: 10,
        what: 'the engine process to record its child',
      });
      assert.deepEqual(readdirSync(registryDir), [record]);

      await a.kill();
      // Real time on purpose: the processes are other OS processes, and this proves they go on
      // living for a while after their engine was killed (no event can say "still alive").
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(alive(program!) && alive(sleep!), 'the program and its child outlive the killed engine');

      // start() reaps before it recovers or claims anything, and it has returned by `ready`.
      const b = await spawn();
      assert.ok(!alive(program!), 'the orphaned program is gone once the new engine process is ready');
      assert.ok(!alive(sleep!), 'and so is the process it started');
      assert.deepEqual(readdirSync(registryDir), [], 'the record is gone');
      await finishes(id);
      assert.equal(await b.stop(), 0);
    });

    it('the stalled-attempt recovery kills the program of a killed engine process before retrying its attempt', async () => {
      const c = await spawn();
      const id = await submitAs(local, 'orphan');
      const [program, sleep] = await firstAttemptPids(id);
      await c.kill();
      // Real time on purpose: the processes are other OS processes, and this proves they go on
      // living for a while after their engine was killed (no event can say "still alive").
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(alive(program!) && alive(sleep!), 'the program and its child outlive the killed engine');
      // No engine process runs now; the recovery pass of this process (same host, same registry)
      // reaps before it looks at attempts, whether or not the attempt counts as stalled yet.
      await recoverStalledAttempts(local.ctx);
      // The pass sends SIGKILL and waits up to REAP_WAIT_MS; on a loaded machine the processes
      // may take a moment more to be gone. Nothing else ends them this soon (they sleep 60 s).
      await waitFor(() => !alive(program!) && !alive(sleep!), {
        timeoutMs: 10_000,
        intervalMs: 20,
        what: 'the program and its child, killed by the first recovery pass',
      });
      assert.deepEqual(readdirSync(registryDir), []);
      const d = await spawn();
      await finishes(id);
      assert.equal(await d.stop(), 0);
    });
  },
);
