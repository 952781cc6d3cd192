/**
 * Task progress end to end on both stores: module handlers report through `ctx.progress`, the
 * values appear on `GET /jobs/<id>` (real engine, real API), writes are throttled (counted as the
 * `task` rows the tasks trigger writes into `events`), each write stamps the attempt's heartbeat
 * (so stall recovery leaves a reporting attempt alone), success ends at 1, a new attempt starts
 * from none, and a superseded attempt's progress never lands.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/api/build-server.js';
import { createClient } from '../../src/engine/clients/clients.js';
import { recoverStalledAttempts } from '../../src/engine/maintenance/recover-stalled.js';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

/** Waits for a file to exist (how a test lets a handler go on). */
const WAIT_FOR_FILE = `
import { access } from 'node:fs/promises';
export async function waitForFile(file, signal) {
  for (;;) {
    try { await access(file); return; } catch {}
    if (signal.aborted) throw signal.reason;
    await new Promise((r) => setTimeout(r, 20));
  }
}
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
`;

const HANDLERS: Record<string, string> = {
  'wait.mjs': WAIT_FOR_FILE,
  // Reports each of inputs.steps, then waits for the test's go-<step> file.
  'steps.mjs': `
import { waitForFile } from './wait.mjs';
export default async function (ctx) {
  for (const step of ctx.inputs.steps) {
    ctx.progress(step, 'step ' + step, { step });
    await waitForFile(ctx.inputs.dir + '/go-' + step, ctx.signal);
  }
  return { done: true };
}`,
  // A thousand reports at once, then a pause longer than the write interval.
  'burst.mjs': `
import { sleep } from './wait.mjs';
export default async function (ctx) {
  for (let i = 1; i <= 1000; i++) ctx.progress((i / 1000) * 0.99, 'report ' + i, { i });
  ctx.progress(NaN);
  await sleep(1200);
  return { reports: 1000 };
}`,
  // Reports every 150 ms for 3 s: never stalled, though the heartbeat service never beats.
  'keepalive.mjs': `
import { sleep } from './wait.mjs';
export default async function (ctx) {
  for (let i = 1; i <= 20; i++) { ctx.progress(i / 20, 'tick ' + i); await sleep(150); }
  return 'alive';
}`,
  // Attempt 1 reports once, goes quiet (and is recovered as stalled), and reports again once
  // superseded; attempt 2 reports and waits for the end-stale file.
  'stale.mjs': `
import { sleep, waitForFile } from './wait.mjs';
export default async function (ctx) {
  const dir = ctx.inputs.dir;
  if (ctx.attempt.number === 1) {
    ctx.progress(0.3, 'first attempt');
    await waitForFile(dir + '/go-stale', ctx.signal);
    ctx.progress(0.66, 'from the superseded attempt');
    await sleep(1000);
    return 'old';
  }
  ctx.progress(0.1, 'second attempt');
  await waitForFile(dir + '/end-stale', ctx.signal);
  return 'new';
}`,
};

interface TaskReply {
  id: number;
  name: string;
  state: string;
  attempts: number;
  progress: number | null;
  progress_message: string | null;
  progress_detail: Record<string, unknown> | null;
  progress_at: string | null;
}
interface TaskEventRow {
  state: string;
  attempts: number;
  progress: number | null;
  progress_message: string | null;
}

/** Least time between two progress writes in these tests (ms). */
const INTERVAL_MS = 250;

forEachStore('task progress', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let app: FastifyInstance;
  let headers: Record<string, string>;
  let dir: string;

  before(async () => {
    store = await createTestStore(kind);
    dir = await mkdtemp(path.join(tmpdir(), 'te-progress-'));
    const catalog = createFixtureCatalog({
      steps: {
        parameters: { type: 'object', properties: { dir: { type: 'string' } } },
        tasks: [
          {
            name: 'work',
            run: 'handlers/steps.mjs',
            with: { steps: [0.2, 0.5, 0.9], dir: '{{ parameters.dir }}' },
          },
        ],
      },
      burst: {
        tasks: [
          { name: 'burst', run: 'handlers/burst.mjs' },
          { name: 'quiet', run: 'sleep', with: { seconds: 0.3 } },
        ],
      },
      keepalive: { tasks: [{ name: 'tick', run: 'handlers/keepalive.mjs', retry_limit: 0 }] },
      stale: {
        parameters: { type: 'object', properties: { dir: { type: 'string' } } },
        tasks: [
          { name: 'flaky', run: 'handlers/stale.mjs', retry_limit: 2, with: { dir: '{{ parameters.dir }}' } },
        ],
      },
    });
    await mkdir(path.join(catalog.dir, 'handlers'), { recursive: true });
    for (const [name, text] of Object.entries(HANDLERS))
      writeFileSync(path.join(catalog.dir, 'handlers', name), text);
    te = await startTestEngine(store, {
      catalog,
      settings: { max_jobs: 10, retry_delay: 0, stall_timeout: 2 },
      // No attempt heartbeat during these tests: every stamp comes from a progress write.
      engine: { heartbeatIntervalMs: 600_000, progressIntervalMs: INTERVAL_MS },
    });
    app = buildServer(te.engine.ctx);
    await app.ready();
    const admin = await createClient(store.db, { name: 'progress-admin', admin: true });
    headers = { client: 'progress-admin', 'api-key': admin.api_key };
  });

  after(async () => {
    await app?.close();
    await te?.stop();
    await store?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  const getTask = async (jobId: number, name: string): Promise<TaskReply> => {
    const res = await app.inject({ method: 'GET', url: `/jobs/${jobId}`, headers });
    assert.equal(res.statusCode, 200, res.body);
    const task = (JSON.parse(res.body) as { tasks: TaskReply[] }).tasks.find((t) => t.name === name);
    assert.ok(task, `task ${name} of job ${jobId}`);
    return task;
  };

  const taskEvents = async (taskId: number): Promise<TaskEventRow[]> => {
    const { rows } = await store.db.query<{ data: TaskEventRow }>(
      `SELECT data FROM events WHERE kind = 'task' AND task_id = $1 ORDER BY id`,
      [taskId],
    );
    return rows.map((r) => r.data);
  };

  const attemptsOf = async (
    taskId: number,
  ): Promise<{ id: number; number: number; state: string; started_at: Date; heartbeat_at: Date }[]> =>
    (
      await store.db.query<{
        id: number;
        number: number;
        state: string;
        started_at: Date;
        heartbeat_at: Date;
      }>(
        `SELECT id, number, state, started_at, heartbeat_at FROM attempts WHERE task_id = $1 ORDER BY number`,
        [taskId],
      )
    ).rows;

  it('a handler reporting 0.2, 0.5, 0.9 is seen on GET /jobs/<id>; success ends at 1', async () => {
    const id = await te.submit('steps', { dir });
    for (const step of [0.2, 0.5, 0.9]) {
      const task = await waitFor(
        async () => {
          const t = await getTask(id, 'work');
          return t.progress === step ? t : null;
        },
        { timeoutMs: 15_000, intervalMs: 50, what: `progress ${step}` },
      );
      assert.equal(task.state, 'running');
      assert.equal(task.progress_message, `step ${step}`);
      assert.deepEqual(task.progress_detail, { step });
      assert.ok(task.progress_at && !Number.isNaN(Date.parse(task.progress_at)));
      await writeFile(path.join(dir, `go-${step}`), '');
    }
    await te.waitForState(id, 'completed');
    const done = await getTask(id, 'work');
    assert.equal(done.state, 'succeeded');
    assert.equal(done.progress, 1);
    assert.equal(done.progress_message, 'step 0.9', 'the last message stays');
    const events = await taskEvents(done.id);
    assert.deepEqual(
      events.map((e) => [e.state, e.progress]),
      [
        ['ready', null],
        ['running', null],
        ['running', 0.2],
        ['running', 0.5],
        ['running', 0.9],
        ['succeeded', 1],
      ],
    );
  });

  it('a burst of reports makes few writes, each stamping the heartbeat; a bad value is ignored with one warning', async () => {
    const id = await te.submit('burst');
    await te.waitForState(id, 'completed');
    const burst = await getTask(id, 'burst');
    assert.equal(burst.progress, 1);
    const events = await taskEvents(burst.id);
    const running = events.filter((e) => e.state === 'running' && e.progress !== null);
    // 1 000 reports in one go, then 1.2 s of quiet: one write of the latest value.
    assert.ok(running.length >= 1 && running.length <= 2, `progress writes: ${JSON.stringify(running)}`);
    assert.equal(running.at(-1)!.progress, 0.99);
    assert.equal(running.at(-1)!.progress_message, 'report 1000');
    // The heartbeat service is off: only the progress write moved heartbeat_at past the claim.
    const [attempt] = await attemptsOf(burst.id);
    assert.ok(
      attempt!.heartbeat_at.getTime() > attempt!.started_at.getTime(),
      'stamped by the progress write',
    );
    const quiet = await getTask(id, 'quiet');
    const [quietAttempt] = await attemptsOf(quiet.id);
    assert.equal(
      quietAttempt!.heartbeat_at.getTime(),
      quietAttempt!.started_at.getTime(),
      'no progress, no stamp',
    );
    assert.equal(quiet.progress, 1, 'a task that never reports still ends at 1');
    const warnings = (await te.logs(id)).filter((l) => l.task_id === burst.id && l.severity === 2);
    assert.deepEqual(
      warnings.map((l) => l.message),
      [
        'progress NaN was ignored: the fraction must be a finite number from 0 to 1 (reported once per attempt)',
      ],
    );
  });

  it('an attempt that reports progress is not stalled; a quiet one is, and its progress never lands once superseded', async () => {
    // Reporting every 150 ms for 3 s with stall_timeout 2 s and no heartbeat service: never stalled.
    const alive = await te.submit('keepalive');
    const deadline = Date.now() + 30_000;
    while ((await te.job(alive)).queue_state !== 'completed') {
      assert.equal(await recoverStalledAttempts(te.engine.ctx), 0, 'the reporting attempt is not stalled');
      assert.ok(Date.now() < deadline, 'keepalive job finished');
      await new Promise((r) => setTimeout(r, 200));
    }
    const tick = await getTask(alive, 'tick');
    assert.equal(tick.state, 'succeeded');
    assert.equal(tick.attempts, 1);

    const id = await te.submit('stale', { dir });
    const first = await waitFor(
      async () => {
        const t = await getTask(id, 'flaky');
        return t.progress === 0.3 ? t : null;
      },
      { timeoutMs: 15_000, intervalMs: 50, what: 'the first attempt to report' },
    );
    // Quiet since: after stall_timeout its attempt is recovered and the task runs again.
    await waitFor(async () => ((await recoverStalledAttempts(te.engine.ctx)) > 0 ? true : null), {
      timeoutMs: 20_000,
      intervalMs: 200,
      what: 'the quiet attempt to be recovered as stalled',
    });
    await waitFor(
      async () => {
        const t = await getTask(id, 'flaky');
        return t.attempts === 2 && t.progress === 0.1 ? t : null;
      },
      { timeoutMs: 15_000, intervalMs: 50, what: 'the second attempt to report' },
    );
    // The superseded attempt (still running in this process) reports now, and waits longer than
    // the write interval; its value must not land.
    await writeFile(path.join(dir, 'go-stale'), '');
    await new Promise((r) => setTimeout(r, 1000 + 4 * INTERVAL_MS));
    const during = await getTask(id, 'flaky');
    assert.equal(during.progress, 0.1);
    assert.equal(during.progress_message, 'second attempt');
    await writeFile(path.join(dir, 'end-stale'), '');
    await te.waitForState(id, 'completed');
    const done = await getTask(id, 'flaky');
    assert.equal(done.progress, 1);
    assert.equal((await te.tasks(id))[0]!.output, 'new');

    const events = await taskEvents(first.id);
    assert.ok(
      !events.some((e) => e.progress === 0.66),
      `no event of the superseded attempt: ${JSON.stringify(events)}`,
    );
    // The second attempt started from none: its claim's event carries no progress.
    const claim2 = events.find((e) => e.state === 'running' && e.attempts === 2);
    assert.ok(claim2, JSON.stringify(events));
    assert.equal(claim2.progress, null);
    assert.deepEqual(
      events.filter((e) => e.progress !== null).map((e) => [e.attempts, e.progress]),
      [
        [1, 0.3],
        [1, 0.3], // recovered as stalled (running → ready): the old value stays until the next claim
        [2, 0.1],
        [2, 1],
      ],
    );
    const attempts = await attemptsOf(first.id);
    assert.deepEqual(
      attempts.map((a) => a.state),
      ['stalled', 'succeeded'],
    );
  });
});
