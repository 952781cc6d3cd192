/**
 * A restart on the embedded data folder while the killed engine is still a zombie: its parent (a
 * supervisor that has not reaped it yet) holds its process-table entry, so `kill(pid, 0)` still
 * succeeds for it. The new `serve` must see that the lock's holder is dead and take the folder
 * over, not refuse with "in use".
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { MAIN, ROOT, cleanEnv, startCli, type CliProcess } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait-for.js';

const dataDir = mkdtempSync(path.join(tmpdir(), 'te-zombie-'));
const env = {
  TASK_ENGINE_DATA_DIR: dataDir,
  TASK_ENGINE_PORT: '0',
  TASK_ENGINE_ADMIN_CLIENT: 'ops',
  TASK_ENGINE_ADMIN_API_KEY: 'zombie-restart-key-0123456789',
};
let supervisor: ChildProcess | null = null;
let restarted: CliProcess | null = null;

/** Stops the restarted engine and the supervisor (which reaps the zombie as it goes). */
async function stopAll(): Promise<void> {
  if (restarted && restarted.child.exitCode === null) {
    restarted.child.kill('SIGTERM');
    await restarted.exited;
  }
  if (supervisor && supervisor.exitCode === null) {
    const gone = new Promise((resolve) => supervisor!.once('exit', resolve));
    supervisor.kill('SIGKILL');
    await gone;
  }
}

after(async () => {
  await stopAll();
  rmSync(dataDir, { recursive: true, force: true });
});

/** The state letter of `/proc/<pid>/stat` (R, S, Z …), or null when the pid is gone. */
function procState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

it(
  'takes over the data folder of an engine killed with -9 and not yet reaped (a zombie)',
  { skip: process.platform !== 'linux' && 'needs /proc' },
  async () => {
    try {
      // A supervisor that forks the engine and never reaps it: the killed engine stays a zombie.
      const perl =
        'local $| = 1; my $pid = fork(); if ($pid == 0) { exec @ARGV; exit 127 } print "CHILD $pid\\n"; sleep 600;';
      supervisor = spawn('perl', ['-e', perl, process.execPath, '--import', 'tsx', MAIN, 'serve'], {
        cwd: ROOT,
        env: cleanEnv(env),
      });
      let out = '';
      supervisor.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      supervisor.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const pid = Number(
        await waitFor(() => /CHILD (\d+)/.exec(out)?.[1], { timeoutMs: 10_000, what: 'the fork' }),
      );
      await waitFor(() => /listening on http/.test(out), {
        timeoutMs: 60_000,
        what: `the first engine listening:\n${out}`,
      });

      process.kill(pid, 'SIGKILL');
      await waitFor(() => procState(pid) === 'Z', {
        timeoutMs: 10_000,
        intervalMs: 20,
        what: 'the engine a zombie',
      });
      assert.doesNotThrow(() => process.kill(pid, 0), 'kill(pid, 0) still succeeds for the zombie');

      restarted = startCli(['serve'], env);
      const url = await Promise.race([
        waitFor(() => /listening on (http:\/\/\S+)/.exec(restarted!.stdout())?.[1], { timeoutMs: 60_000 }),
        restarted.exited.then((code) => {
          throw new Error(`the restart exited with ${code}:\n${restarted!.stdout()}\n${restarted!.stderr()}`);
        }),
      ]);
      const res = await fetch(`${url}/livez`);
      assert.equal(res.status, 200);
      assert.equal(procState(pid), 'Z', 'the old engine was still a zombie while the new one started');
    } finally {
      await stopAll();
    }
  },
);
