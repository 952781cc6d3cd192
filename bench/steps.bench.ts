/**
 * `npm run bench steps`: the cost of one step of a workflow, on PostgreSQL and on in-memory PGlite.
 *
 * 1. Per step: `STEPS_JOBS` jobs (default 40, after 3 warm-ups) of a workflow of 10 sequential
 *    no-op tasks, run one job at a time on an otherwise idle engine (4 worker slots). From the
 *    attempt rows the engine stored (`attempts.started_at`, `finished_at`: the engine's clock,
 *    millisecond resolution), for tasks 2–10 of each job: the step time, from the previous task's
 *    end to this task's end, and the hand-off gap, from the previous task's end to this task's
 *    start. Printed as p50 / p99 / max over all steps.
 * 2. Throughput of a 3-task no-op workflow on PGlite (`STEPS_THROUGHPUT_JOBS`, default 500,
 *    submitted first; 32 worker slots, `max_jobs` 200), timed from the engine's start to the last
 *    job completed, with this process's CPU per job (PGlite runs in it). `STEPS_THROUGHPUT_POSTGRES=1`
 *    adds the same on PostgreSQL.
 *
 * `STEPS_HANDOFF=off` turns the hand-off claim off (a result write claims the next task in its
 * own transaction; docs/architecture.md "Workers"), for before/after runs.
 *
 * `npm run bench steps`, or `node --import tsx bench/steps.bench.ts [postgres|pglite]`.
 * PostgreSQL: the database `te_bench_peers_steps` on the server of `BENCH_DATABASE_URL` (default
 * TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test), created afresh and dropped at
 * the end.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { createEngine, type Engine } from '../src/engine/engine.js';
import { CHANNELS } from '../src/engine/signals.js';
import type { Executor } from '../src/store/executor.js';
import { openStore } from '../src/store/open-store.js';
import { submitAs, testConfig, writeSettings } from '../test/helpers/engine.js';
import { createFixtureCatalog } from '../test/helpers/fixture-catalog.js';
import { dropDatabase, recreateDatabase } from './helpers/pg-measure.js';

type Kind = 'postgres' | 'pglite';
const DB_NAME = 'te_bench_peers_steps';
const STEP_JOBS = Number(process.env.STEPS_JOBS ?? 40);
const THROUGHPUT_JOBS = Number(process.env.STEPS_THROUGHPUT_JOBS ?? 500);

const noop = { run: 'sleep', with: { seconds: 0 } };
const catalog = createFixtureCatalog({
  noop10: { tasks: Array.from({ length: 10 }, (_, i) => ({ name: `t${i + 1}`, ...noop })) },
  noop3: { tasks: ['a', 'b', 'c'].map((name) => ({ name, ...noop })) },
});

async function openBenchStore(kind: Kind): Promise<{ db: Executor; url: string | null }> {
  if (kind === 'pglite') return { db: await openStore({ dataDir: null }), url: null };
  const url = await recreateDatabase(DB_NAME);
  return { db: await openStore({ databaseUrl: url }), url };
}

async function newEngine(db: Executor, url: string | null, concurrency: number): Promise<Engine> {
  return createEngine(
    testConfig({
      databaseUrl: url,
      workflowsDir: catalog.dir,
      workerConcurrency: concurrency,
      roles: ['controller', 'worker'],
    }),
    {
      db,
      catalog,
      logger: pino({ level: process.env.BENCH_LOG_LEVEL ?? 'silent' }),
      handoffClaims: process.env.STEPS_HANDOFF !== 'off',
    },
  );
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function spread(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `p50 ${pct(s, 50).toFixed(1)} ms, p99 ${pct(s, 99).toFixed(1)} ms, max ${s.at(-1)!.toFixed(1)} ms`;
}

/** A job-ended counter: `next()` resolves at the next `CHANNELS.jobEnded` wake-up. */
async function endedWaiter(db: Executor): Promise<{ next: () => Promise<void>; stop: () => Promise<void> }> {
  let wake: (() => void) | null = null;
  let pending = 0;
  const stop = await db.listen(CHANNELS.jobEnded, () => {
    pending++;
    wake?.();
  });
  return {
    next: async () => {
      while (pending === 0) await new Promise<void>((r) => (wake = r));
      pending--;
      wake = null;
    },
    stop,
  };
}

/** 1. Step time and hand-off gap of a 10-task sequential workflow, one job at a time. */
async function steps(db: Executor, url: string | null): Promise<string> {
  const engine = await newEngine(db, url, 4);
  await writeSettings(db, { max_jobs: 10 });
  await engine.start();
  const ended = await endedWaiter(db);
  const ids: number[] = [];
  for (let i = 0; i < STEP_JOBS + 3; i++) {
    const id = await submitAs(engine, 'noop10');
    await ended.next();
    if (i >= 3) ids.push(id);
    await new Promise((r) => setTimeout(r, 5));
  }
  await ended.stop();
  await engine.stop();
  const { rows } = await db.query<{ job_id: number; position: number; started_at: Date; finished_at: Date }>(
    `SELECT a.job_id, t.position, a.started_at, a.finished_at
       FROM attempts a JOIN tasks t ON t.id = a.task_id
      WHERE a.job_id = ANY($1::bigint[])
      ORDER BY a.job_id, t.position, a.number`,
    [ids],
  );
  const step: number[] = [];
  const gap: number[] = [];
  const jobMs: number[] = [];
  for (const id of ids) {
    const attempts = rows.filter((r) => Number(r.job_id) === id);
    if (attempts.length !== 10) throw new Error(`job ${id} has ${attempts.length} attempts, not 10`);
    for (let i = 1; i < attempts.length; i++) {
      const prevEnd = new Date(attempts[i - 1]!.finished_at).getTime();
      step.push(new Date(attempts[i]!.finished_at).getTime() - prevEnd);
      gap.push(new Date(attempts[i]!.started_at).getTime() - prevEnd);
    }
    jobMs.push(
      new Date(attempts.at(-1)!.finished_at).getTime() - new Date(attempts[0]!.started_at).getTime(),
    );
  }
  return (
    `10 sequential no-op tasks, ${ids.length} jobs one at a time (${step.length} steps; attempt timestamps):\n` +
    `    step (previous task's end → this task's end): ${spread(step)}\n` +
    `    hand-off gap (previous task's end → this task's start): ${spread(gap)}\n` +
    `    whole job (first start → last end): ${spread(jobMs)}`
  );
}

/** 2. 3-task no-op workflow throughput, jobs submitted first, 32 slots, max_jobs 200. */
async function throughput(db: Executor, url: string | null, n: number): Promise<string> {
  const engine = await newEngine(db, url, 32);
  await writeSettings(db, { max_jobs: 200, priority_slots: 0 });
  for (let i = 0; i < n; i += 50)
    await Promise.all(Array.from({ length: Math.min(50, n - i) }, () => submitAs(engine, 'noop3')));
  let ended = 0;
  let allIn: (() => void) | null = null;
  const un = await db.listen(CHANNELS.jobEnded, () => {
    if (++ended >= n) allIn?.();
  });
  const done = new Promise<void>((resolve) => (allIn = resolve));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await engine.start();
  await done;
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await un();
  await engine.stop();
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM jobs WHERE workflow = 'noop3' AND queue_state = 'completed'`,
  );
  if (rows[0]!.n < n) throw new Error(`only ${rows[0]!.n} of ${n} jobs completed`);
  return `3-task no-op workflow, ${n} jobs submitted first, 32 slots, max_jobs 200: ${secs.toFixed(1)} s = ${(n / secs).toFixed(0)} jobs/s, this process's CPU ${((cpu.user + cpu.system) / 1000 / n).toFixed(2)} ms per job`;
}

async function main(): Promise<void> {
  const kinds = (process.argv[2] ? [process.argv[2]] : ['postgres', 'pglite']) as Kind[];
  console.log(
    `machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}; load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  for (const kind of kinds) {
    console.log(`\n--- ${kind}`);
    const { db, url } = await openBenchStore(kind);
    try {
      console.log(await steps(db, url));
      if (kind === 'pglite' || process.env.STEPS_THROUGHPUT_POSTGRES === '1')
        console.log(await throughput(db, url, THROUGHPUT_JOBS));
    } finally {
      await db.close();
      if (kind === 'postgres') await dropDatabase(DB_NAME);
    }
  }
  console.log(
    `\nload average at the end: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
}

await main();
