/**
 * Task weights and task concurrency keys on a running engine, on both stores
 * (docs/task-slots-and-concurrency.md): a 4-slot task beside at most 4 one-slot tasks on a worker
 * of 8, a key of limit 1 never held twice and a key of limit 2 held twice, keys rendered per job,
 * and each waiting reason of a ready task produced by a scenario.
 *
 * Handlers append `+<slots>` when they start and `-<slots>` when they end to a file (one line
 * each, O_APPEND), so what ran at once is known exactly, not only at the moments a sampler looks.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { getJob } from '../../src/engine/jobs/service.js';
import { getDashboard } from '../../src/engine/status/dashboard.js';
import { explainReadyTasks } from '../../src/engine/status/task-waiting.js';
import { startTestEngine, TEST_CLIENT, type TestEngine } from '../helpers/engine.js';
import type { FixtureTask } from '../helpers/fixture-catalog.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

/** A task that marks its start and end in `parameters.file`, taking `slots` and sleeping `seconds`. */
function marking(
  name: string,
  slots: number,
  seconds: number,
  extra: Partial<FixtureTask> = {},
): FixtureTask {
  return {
    name,
    run: 'exec',
    with: {
      command: 'sh',
      args: [
        '-c',
        'echo "+$1" >> "$0"; sleep $2; echo "-$1" >> "$0"',
        '{{ parameters.file }}',
        String(slots),
        String(seconds),
      ],
    },
    ...(slots !== 1 ? { slots } : {}),
    ...extra,
  };
}

const FILE_PARAMETERS = {
  type: 'object',
  properties: { file: { type: 'string' }, key: { type: 'string' } },
};

/** Replays a marks file: the most slots in use at once, and the most one-slot tasks beside a heavier one. */
function replay(file: string): { most: number; besideHeavy: number; heavyRan: boolean; open: number } {
  let used = 0;
  let most = 0;
  let heavy = 0;
  let light = 0;
  let besideHeavy = 0;
  let heavyRan = false;
  for (const line of readFileSync(file, 'utf8').trim().split('\n')) {
    const n = Number(line);
    used += n;
    most = Math.max(most, used);
    if (Math.abs(n) > 1) heavy += Math.sign(n);
    else light += n;
    if (heavy > 0) {
      heavyRan = true;
      besideHeavy = Math.max(besideHeavy, light);
    }
  }
  return { most, besideHeavy, heavyRan, open: used };
}

/** Polls the most running tasks holding each key (`tasks.concurrency_key`) until `done` resolves. */
async function sampleHolders(
  te: TestEngine,
  done: Promise<unknown>,
  intervalMs = 50,
): Promise<{ most: Map<string, number>; samples: number }> {
  const most = new Map<string, number>();
  let samples = 0;
  let finished = false;
  void done.finally(() => {
    finished = true;
  });
  while (!finished) {
    const { rows } = await te.db.query<{ key: string; n: number }>(
      `SELECT concurrency_key AS key, count(*)::int AS n FROM tasks
        WHERE state = 'running' AND concurrency_key IS NOT NULL GROUP BY 1`,
    );
    samples++;
    for (const r of rows) most.set(r.key, Math.max(most.get(r.key) ?? 0, r.n));
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return { most, samples };
}

forEachStore('runtime: task slots', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'te-task-slots-'));
    store = await createTestStore(kind);
    // Not started yet: every job is submitted first, so the first claim sees them all.
    te = await startTestEngine(store, {
      concurrency: 8,
      start: false,
      settings: { max_jobs: 100 },
      workflows: {
        heavy: { parameters: FILE_PARAMETERS, tasks: [marking('encode', 4, 1.2)] },
        small: { parameters: FILE_PARAMETERS, tasks: [marking('thumb', 1, 0.3)] },
        block: { tasks: [{ name: 'block', run: 'sleep', with: { seconds: 1.5 }, slots: 5 }] },
        head: { tasks: [{ name: 'head', run: 'sleep', with: { seconds: 0 }, slots: 4 }] },
        keyed: {
          tasks: [{ name: 'keyed', run: 'sleep', with: { seconds: 0 }, concurrency: { key: 'q', limit: 1 } }],
        },
      },
    });
  });
  after(async () => {
    await te?.stop();
    await store?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs a 4-slot task beside at most 4 one-slot tasks on a worker of 8, and fills the rest', async () => {
    const file = path.join(dir, 'slots');
    writeFileSync(file, '');
    // In claim order: a heavy task, 16 small ones, another heavy one. The first claim takes the
    // heavy task and 4 small ones (8 slots); the second heavy one waits for 4 free slots.
    const ids = [await te.submit('heavy', { file })];
    for (let i = 0; i < 16; i++) ids.push(await te.submit('small', { file }));
    ids.push(await te.submit('heavy', { file }));
    await te.engine.start();
    for (const id of ids) assert.equal((await te.waitForState(id, 'completed', 60_000)).failed, false);
    const r = replay(file);
    assert.equal(r.open, 0, 'every start has its end');
    assert.ok(r.heavyRan);
    assert.ok(r.most <= 8, `at most 8 slots in use at once (saw ${r.most})`);
    assert.ok(r.besideHeavy <= 4, `at most 4 one-slot tasks beside a 4-slot one (saw ${r.besideHeavy})`);
    assert.equal(r.besideHeavy, 4, 'the first claim filled the 4 slots beside the heavy task');
    const { rows } = await te.db.query<{ slots: number }>(
      `SELECT slots FROM tasks WHERE job_id = ANY($1::bigint[]) ORDER BY id`,
      [ids],
    );
    assert.deepEqual(
      rows.map((x) => x.slots),
      [4, ...Array<number>(16).fill(1), 4],
      'the task rows carry their slots',
    );
  });

  it('keeps a 4-slot task at the head until 4 slots are free, without claiming in a loop meanwhile', async () => {
    // The claim statement passes over one of the two keyed tasks (their key has room for one) and
    // stops at the 4-slot task, which does not fit the 3 free slots: it must not look again and
    // again until a slot frees.
    const claims = countClaims(te);
    try {
      const block = await te.submit('block');
      await waitFor(async () => (await te.tasks(block))[0]!.state === 'running', {
        what: 'the 5-slot task to run',
      });
      const head = await te.submit('head');
      const keyed = [await te.submit('keyed'), await te.submit('keyed')];
      await waitFor(async () => (await te.tasks(keyed[1]!))[0]!.state === 'ready', {
        what: 'the keyed tasks to be ready',
      });
      const before = claims.count();
      await new Promise((r) => setTimeout(r, 500));
      const during = claims.count() - before;
      assert.equal((await te.tasks(block))[0]!.state, 'running', 'the 5-slot task still runs');
      assert.equal((await te.tasks(head))[0]!.state, 'ready', 'the 4-slot task waits for its slots');
      assert.ok(during <= 10, `${during} claims in 500 ms while nothing could be taken`);
      for (const id of [block, head, ...keyed])
        assert.equal((await te.waitForState(id, 'completed', 30_000)).failed, false);
    } finally {
      claims.stop();
    }
  });
});

/** Counts the claim statements `te`'s executor runs, until `stop()`. */
function countClaims(te: TestEngine): { count(): number; stop(): void } {
  const db = te.db as { query: (...args: unknown[]) => Promise<unknown> };
  const original = db.query;
  let n = 0;
  db.query = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('te_concurrency_holders')) n++;
    return original.apply(te.db, args);
  };
  return {
    count: () => n,
    stop: () => {
      db.query = original;
    },
  };
}

forEachStore('runtime: task concurrency keys', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'te-task-keys-'));
    store = await createTestStore(kind);
    te = await startTestEngine(store, {
      concurrency: 8,
      settings: { max_jobs: 100 },
      workflows: {
        keyed1: {
          parameters: FILE_PARAMETERS,
          tasks: [marking('one', 1, 0.05, { concurrency: { key: 'k1:{{ parameters.key }}', limit: 1 } })],
        },
        keyed2: {
          parameters: FILE_PARAMETERS,
          tasks: [marking('two', 1, 0.2, { concurrency: { key: 'k2', limit: 2 } })],
        },
      },
    });
  });
  after(async () => {
    await te?.stop();
    await store?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('never runs two holders of a key with limit 1, while other keys run beside it', async () => {
    const file = path.join(dir, 'keyed1');
    writeFileSync(file, '');
    const ids = await Promise.all(
      Array.from({ length: 40 }, (_, i) => te.submit('keyed1', { file, key: i % 2 === 0 ? 'a' : 'b' })),
    );
    const done = Promise.all(ids.map((id) => te.waitForState(id, 'completed', 60_000)));
    const sampled = sampleHolders(te, done);
    for (const job of await done) assert.equal(job.failed, false);
    const { most, samples } = await sampled;
    assert.ok(samples > 0);
    assert.ok((most.get('k1:a') ?? 0) <= 1, `key k1:a held ${most.get('k1:a')} times at once`);
    assert.ok((most.get('k1:b') ?? 0) <= 1, `key k1:b held ${most.get('k1:b')} times at once`);
    // Handler-level: two keys of limit 1 never give more than two handlers at once.
    const r = replay(file);
    assert.equal(r.open, 0);
    assert.ok(r.most <= 2, `at most one handler per key (saw ${r.most} at once)`);
    const { rows } = await te.db.query<{ key: string; n: number }>(
      `SELECT concurrency_key AS key, count(*)::int AS n FROM tasks WHERE job_id = ANY($1::bigint[]) GROUP BY 1 ORDER BY 1`,
      [ids],
    );
    assert.deepEqual(rows, [
      { key: 'k1:a', n: 20 },
      { key: 'k1:b', n: 20 },
    ]);
  });

  it('runs two holders of a key with limit 2, never three', async () => {
    const file = path.join(dir, 'keyed2');
    writeFileSync(file, '');
    const ids = await Promise.all(Array.from({ length: 16 }, () => te.submit('keyed2', { file })));
    const done = Promise.all(ids.map((id) => te.waitForState(id, 'completed', 60_000)));
    const sampled = sampleHolders(te, done);
    await done;
    const { most } = await sampled;
    assert.ok((most.get('k2') ?? 0) <= 2, `key k2 held ${most.get('k2')} times at once`);
    const r = replay(file);
    assert.equal(r.most, 2, `two handlers of the key at once, never more (saw ${r.most})`);
  });
});

forEachStore('runtime: why a ready task waits', (kind) => {
  let store: TestStore;
  let te: TestEngine;

  before(async () => {
    store = await createTestStore(kind);
    te = await startTestEngine(store, {
      concurrency: 8,
      queues: ['work'],
      settings: { max_jobs: 20 },
      engine: { workerPollIntervalMs: 200 },
      workflows: {
        elsewhere: { tasks: [{ name: 'gpu', run: 'sleep', with: { seconds: 0 }, queue: 'nobody' }] },
        huge: { tasks: [{ name: 'render', run: 'sleep', with: { seconds: 0 }, slots: 16 }] },
        hold: {
          tasks: [
            { name: 'hold', run: 'sleep', with: { seconds: 2 }, concurrency: { key: 'only-one', limit: 1 } },
          ],
        },
        fill: { tasks: [{ name: 'fill', run: 'sleep', with: { seconds: 2 }, slots: 8 }] },
        quick: { tasks: [{ name: 'quick', run: 'sleep', with: { seconds: 0 } }] },
      },
    });
  });
  after(async () => {
    await te?.stop();
    await store?.dispose();
  });

  /** Waits until the job has a ready task and returns what explainReadyTasks says. */
  const explained = async (id: number): Promise<{ reason: string; detail: string; task: string }> =>
    waitFor(async () => explainReadyTasks(te.db, id, new Date()), {
      timeoutMs: 15_000,
      what: `a waiting reason for job ${id}`,
    });

  it('says nothing for a job without a ready task', async () => {
    assert.equal(await explainReadyTasks(te.db, 999_999, new Date()), null);
    const id = await te.submit('quick');
    await te.waitForState(id, 'completed');
    assert.equal(await explainReadyTasks(te.db, id, new Date()), null);
  });

  it('says no_worker_for_queue for a task on a queue no live worker serves', async () => {
    const id = await te.submit('elsewhere');
    const w = await explained(id);
    assert.equal(w.reason, 'no_worker_for_queue');
    assert.equal(w.task, 'gpu');
    assert.match(w.detail, /queue 'nobody'/);
  });

  it('says task_too_heavy for a task heavier than every live worker, and logs it once', async () => {
    const id = await te.submit('huge');
    const w = await explained(id);
    assert.equal(w.reason, 'task_too_heavy');
    assert.match(w.detail, /needs 16 worker slots.*the largest has 8/);
    // The same answer on GET /jobs/<id> and on the job's /dashboard row (a started row).
    const admin = { client: TEST_CLIENT, admin: true };
    const job = await getJob(te.engine.ctx, admin, String(id));
    assert.equal(job.waiting?.reason, 'task_too_heavy');
    assert.equal(job.waiting?.task, 'render');
    const row = (await getDashboard(te.engine.ctx, admin)).started.find((r) => r.id === id);
    assert.equal(row?.waiting?.reason, 'task_too_heavy', 'the started row says why');
    assert.equal(row?.waiting?.detail, w.detail);
    const heavyLines = async (): Promise<string[]> =>
      (await te.logs(id)).map((l) => l.message).filter((m) => m.includes('needs 16 worker slots'));
    await waitFor(async () => (await heavyLines()).length > 0, {
      timeoutMs: 15_000,
      what: 'the too-heavy line',
    });
    // Several poll periods later (200 ms each) it is still written once.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.deepEqual(await heavyLines(), [
      "Task 'render' needs 16 worker slots, more than any live worker of queue 'work' has (the largest has 8); it waits until a worker with 16 slots takes that queue",
    ]);
    const [line] = (await te.logs(id)).filter((l) => l.message.includes('needs 16'));
    assert.equal(line!.severity, 2, 'a WARN line');
  });

  it('says concurrency_key naming the job that holds the key', async () => {
    const holder = await te.submit('hold');
    await waitFor(async () => (await te.tasks(holder))[0]!.state === 'running', {
      what: 'the holder to run',
    });
    const waiting = await te.submit('hold');
    const w = await explained(waiting);
    assert.equal(w.reason, 'concurrency_key');
    assert.equal(w.task, 'hold');
    assert.match(w.detail, new RegExp(`'only-one' \\(limit 1\\), held by job ${holder} \\(task 'hold'\\)`));
    // When the holder ends, the waiting one runs (woken by the key's release).
    assert.equal((await te.waitForState(waiting, 'completed', 20_000)).failed, false);
  });

  it('says workers_busy when every slot of the queue is taken', async () => {
    const filler = await te.submit('fill');
    await waitFor(async () => (await te.tasks(filler))[0]!.state === 'running', {
      what: 'the filler to run',
    });
    const id = await te.submit('quick');
    const w = await explained(id);
    assert.equal(w.reason, 'workers_busy');
    assert.match(w.detail, /The live worker of queue 'work' uses 8 of 8 slots; task 'quick' needs 1/);
    assert.equal((await te.waitForState(id, 'completed', 20_000)).failed, false);
  });
});
