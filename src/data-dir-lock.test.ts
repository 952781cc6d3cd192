import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { acquireDataDirLock, DataDirInUseError, LOCK_FILE_NAME } from './data-dir-lock.js';

/** Start time of `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22). */
function procStart(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
}

function procState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? null;
  } catch {
    return null;
  }
}

/**
 * Starts `sleep 30` whose parent never reaps it: `sh` starts it in the background, prints its
 * pid, then becomes `sleep 60` by exec. Killed, the first sleep stays a zombie until the second ends.
 */
async function unreapedSleeper(): Promise<{ pid: number; parent: ChildProcess }> {
  const parent = spawn('sh', ['-c', 'sleep 30 & echo $!; exec sleep 60'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const pid = await new Promise<number>((resolve, reject) => {
    parent.stdout.once('data', (b: Buffer) => resolve(Number(String(b).trim())));
    parent.once('error', reject);
  });
  return { pid, parent };
}

describe('data folder lock', () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const folder = async (): Promise<string> => {
    const d = await mkdtemp(path.join(tmpdir(), 'te-lock-'));
    dirs.push(d);
    return d;
  };
  const writeHolder = (dir: string, pid: number, procStartTicks?: number): Promise<void> =>
    writeFile(
      path.join(dir, LOCK_FILE_NAME),
      JSON.stringify({
        pid,
        host: hostname(),
        started_at: new Date().toISOString(),
        purpose: 'serve',
        ...(procStartTicks === undefined ? {} : { proc_start: procStartTicks }),
      }),
    );

  it('refuses while the holder runs, and takes over once it is a zombie (killed, not reaped)', async () => {
    const dir = await folder();
    const { pid, parent } = await unreapedSleeper();
    children.push(parent);
    await writeHolder(dir, pid, procStart(pid));
    await assert.rejects(acquireDataDirLock(dir, 'serve'), DataDirInUseError);
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50 && procState(pid) !== 'Z'; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(procState(pid), 'Z', 'the killed process is a zombie: kill(pid, 0) still succeeds for it');
    const lock = await acquireDataDirLock(dir, 'serve');
    const info = JSON.parse(readFileSync(lock.file, 'utf8')) as { pid: number; proc_start?: number };
    assert.equal(info.pid, process.pid);
    assert.equal(info.proc_start, procStart(process.pid));
    await lock.release();
  });

  it('takes over a lock whose pid now belongs to another process (start time differs)', async () => {
    const dir = await folder();
    const { pid, parent } = await unreapedSleeper();
    children.push(parent);
    await writeHolder(dir, pid, procStart(pid) - 1);
    const lock = await acquireDataDirLock(dir, 'serve');
    await lock.release();
  });

  it('takes over a lock that names this very process (a restarted container where the engine is PID 1 again)', async () => {
    const dir = await folder();
    await writeHolder(dir, process.pid);
    const lock = await acquireDataDirLock(dir, 'serve');
    await lock.release();
  });
});
