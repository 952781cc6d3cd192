/**
 * `npm start` in production shape (PostgreSQL): it runs the compiled engine from `dist/`, and a
 * SIGTERM to the `npm` process — what a supervisor or `docker stop` sends — stops the engine
 * itself (no orphan keeps serving) and marks its `workers` row stopped.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { ROOT, cleanEnv } from '../helpers/cli.js';
import { trackRunning } from '../helpers/leak-guard.js';
import { createTestStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

void describe('npm start', { skip: !process.env.TEST_DATABASE_URL && 'TEST_DATABASE_URL is not set' }, () => {
  let store: TestStore;
  before(async () => {
    store = await createTestStore('postgres');
  });
  after(() => store.dispose());

  void test('runs dist/ and stops the engine and its workers row on SIGTERM to npm', async () => {
    // The build `npm ci` runs (the `prepare` script), done here so the test runs today's code.
    const build = spawn('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
    assert.equal(await new Promise((r) => build.once('exit', r)), 0, 'npm run build');

    const npm = spawn('npm', ['start', '--silent'], {
      cwd: ROOT,
      env: cleanEnv({ DATABASE_URL: store.databaseUrl!, TASK_ENGINE_PORT: '0' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const untrack = trackRunning(
      'child process',
      `npm start (pid ${npm.pid})`,
      () => {
        npm.kill('SIGKILL');
      },
      npm.pid,
    );
    let out = '';
    npm.stdout.on('data', (d: Buffer) => (out += d.toString()));
    npm.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => npm.once('exit', (code) => r(code)));
    let enginePid = 0;
    try {
      await waitFor(() => /listening on http/.test(out), {
        timeoutMs: 90_000,
        what: `npm start to listen: ${out}`,
      });
      const { rows } = await store.db.query<{ pid: number }>(
        'SELECT pid FROM workers WHERE stopped_at IS NULL',
      );
      assert.equal(rows.length, 1);
      enginePid = rows[0]!.pid;
      const tree = spawn('ps', ['-o', 'args=', '-p', String(enginePid)]);
      let args = '';
      tree.stdout.on('data', (d: Buffer) => (args += d.toString()));
      await new Promise((r) => tree.once('exit', r));
      assert.match(args, /dist\/cli\/main\.js serve/, 'the engine runs the compiled code');
      assert.doesNotMatch(args, /tsx/);

      npm.kill('SIGTERM');
      assert.equal(await exited, 0, out);
      await waitFor(() => !alive(enginePid), { timeoutMs: 20_000, what: 'the engine process to be gone' });
      const stopped = await store.db.query(
        'SELECT 1 FROM workers WHERE pid = $1 AND stopped_at IS NOT NULL',
        [enginePid],
      );
      assert.equal(stopped.rowCount, 1, 'its workers row is marked stopped');
    } finally {
      if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGKILL');
      if (enginePid && alive(enginePid)) process.kill(enginePid, 'SIGKILL');
      await exited;
      untrack();
    }
  });
});
