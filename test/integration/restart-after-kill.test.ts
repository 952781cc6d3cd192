/**
 * A supervisor restarting the embedded engine at once after `kill -9` (issue: restarts that always
 * work): twenty cycles of start → submit → SIGKILL → immediate restart on the same data folder.
 * Every start must succeed (the dead holder's lock is taken over), every job submitted before a
 * kill must still be there, and the last engine must bring them all to an end.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { startCli, type CliProcess } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait-for.js';

const CYCLES = 20;
const ADMIN = 'ops';
const KEY = 'restart-loop-key-0123456789';
const dataDir = mkdtempSync(path.join(tmpdir(), 'te-restart-'));
const running: CliProcess[] = [];

after(async () => {
  for (const p of running)
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(running.map((p) => p.exited));
  rmSync(dataDir, { recursive: true, force: true });
});

/** Starts `serve` on the data folder and resolves with its URL once it listens (or rejects on exit). */
async function serve(): Promise<{ proc: CliProcess; url: string }> {
  const proc = startCli(['serve'], {
    TASK_ENGINE_DATA_DIR: dataDir,
    TASK_ENGINE_PORT: '0',
    TASK_ENGINE_ADMIN_CLIENT: ADMIN,
    TASK_ENGINE_ADMIN_API_KEY: KEY,
  });
  running.push(proc);
  const url = await Promise.race([
    waitFor(() => /listening on (http:\/\/\S+)/.exec(proc.stdout())?.[1], { timeoutMs: 60_000 }),
    proc.exited.then((code) => {
      throw new Error(`serve exited with ${code} before listening:\n${proc.stdout()}\n${proc.stderr()}`);
    }),
  ]);
  return { proc, url };
}

async function api<T>(url: string, method = 'GET', body?: unknown): Promise<T> {
  const res = await fetch(url, {
    method,
    headers: { client: ADMIN, 'api-key': KEY, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${url} answered ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

it(`restarts ${CYCLES} times at once after kill -9 on the same data folder, losing nothing`, async () => {
  const submitted: number[] = [];
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const { proc, url } = await serve();
    const listed = await api<{ id: number }[]>(`${url}/jobs?limit=100`);
    assert.deepEqual(
      listed.map((j) => j.id).sort((a, b) => a - b),
      [...submitted].sort((a, b) => a - b),
      `cycle ${cycle}: every job submitted before the kill is still there`,
    );
    const { id } = await api<{ id: number }>(`${url}/job`, 'POST', {
      job: { workflow: 'demo' },
      parameters: { content_id: `cycle-${cycle}`, seconds: 0.2 },
    });
    submitted.push(id);
    proc.child.kill('SIGKILL');
    await proc.exited;
  }
  const { proc, url } = await serve();
  const finished = await waitFor(
    async () => {
      const jobs = await api<{ id: number; queue_state: string; failed: boolean }[]>(`${url}/jobs?limit=100`);
      return jobs.length === CYCLES && jobs.every((j) => j.queue_state === 'completed') ? jobs : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  try {
    // A job whose running task was killed more often than its retry limit allows fails, by the
    // rule that a stalled attempt counts as a failed one; any other failure is a defect.
    const unexplained: string[] = [];
    for (const j of finished.filter((x) => x.failed)) {
      const logs = await api<{ message: string }[]>(`${url}/logs/${j.id}?show_all=true`);
      // Explained when the job's failure is the stall of its task's last allowed attempt: the
      // ending line names the gone process, and each of the task's attempts ended in a stall.
      const ending = logs.find((l) => l.message.startsWith('job has failed:'));
      const allowed = Number(
        /is gone \(after (\d+) attempts\)/.exec(logs.map((l) => l.message).join('\n'))?.[1] ?? NaN,
      );
      const stalled = logs.filter((l) => / stalled: attempt stalled: .* is gone/.test(l.message)).length;
      const explained = ending?.message.includes('is gone') === true && stalled >= allowed;
      if (!explained) unexplained.push(`job ${j.id}: ${logs.map((l) => l.message).join(' | ')}`);
    }
    assert.deepEqual(unexplained, [], 'a job failed for a reason other than its attempts being killed');
    assert.ok(finished.filter((j) => !j.failed).length >= CYCLES / 2, 'most jobs completed');
  } finally {
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
  }
});
