/**
 * Admission under a deep, wide backlog: 10,000 queued jobs over 50 clients, `max_jobs` 10, a
 * controller and no worker (so only the bench frees slots). Two figures, p50/p99 over
 * `BENCH_ROUNDS` slots (default 200, after 10 warm-up rounds):
 *
 * 1. slot freed → next job started: a started job is broken (its slot is free at commit), and the
 *    time runs until the admission that fills the slot has committed (its `CHANNELS.tasks`
 *    wake-up arrives) — notification, debounce and one admission pass;
 * 2. one admission pass alone: with the controller stopped, a job is broken and `admitJobs` is
 *    called directly.
 *
 * Uses only what every engine version since the reshaping has (job service, `patchJob`,
 * `admitJobs`), so the same file measures an older checkout for a before/after comparison.
 * `npm run bench admission`, or `node --import tsx bench/admission.bench.ts [postgres|pglite]`.
 * Environment: `BENCH_DATABASE_URL` (default TEST_DATABASE_URL, else
 * postgres://postgres@127.0.0.1:5432/test), `BENCH_JOBS` (default 10000), `BENCH_CLIENTS`
 * (default 50), `BENCH_ROUNDS` (default 200).
 */
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { admitJobs } from '../src/engine/controller/admission.js';
import { createEngine, type Engine } from '../src/engine/engine.js';
import { patchJob } from '../src/engine/jobs/service.js';
import { CHANNELS } from '../src/engine/signals.js';
import type { Executor } from '../src/store/executor.js';
import { openStore } from '../src/store/open-store.js';
import { submitAs, testConfig, writeSettings } from '../test/helpers/engine.js';
import { createFixtureCatalog } from '../test/helpers/fixture-catalog.js';
import { BENCH_BASE_URL, adminQuery } from './helpers/bench-setup.js';

type Kind = 'postgres' | 'pglite';
const BASE_URL = BENCH_BASE_URL;
const DB_NAME = 'te_bench_admission';
const JOBS = Number(process.env.BENCH_JOBS ?? 10_000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 50);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 200);
const WARMUP = 10;
const MAX_JOBS = 10;
const admin = { client: 'bench', admin: true };

const catalog = createFixtureCatalog({
  hold: { tasks: [{ name: 'a', run: 'sleep', with: { seconds: 3600 } }] },
});

const adminSql = adminQuery;

async function openBenchStore(kind: Kind): Promise<{ db: Executor; url: string | null }> {
  if (kind === 'pglite') return { db: await openStore({ dataDir: null }), url: null };
  await adminSql(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  await adminSql(`CREATE DATABASE ${DB_NAME}`);
  const u = new URL(BASE_URL);
  u.pathname = `/${DB_NAME}`;
  return { db: await openStore({ databaseUrl: u.toString() }), url: u.toString() };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summary(label: string, samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  return `${label}: p50 ${pct(s, 50).toFixed(2)} ms, p99 ${pct(s, 99).toFixed(2)} ms, max ${s.at(-1)!.toFixed(2)} ms (${s.length} slots)`;
}

async function oneStarted(db: Executor): Promise<number> {
  const { rows } = await db.query<{ id: number }>(
    `SELECT id FROM jobs WHERE queue_state = 'started' ORDER BY id LIMIT 1`,
  );
  if (!rows[0]) throw new Error('no started job to break');
  return Number(rows[0].id);
}

async function run(kind: Kind): Promise<void> {
  const { db, url } = await openBenchStore(kind);
  const engine: Engine = await createEngine(
    testConfig({ databaseUrl: url, workflowsDir: catalog.dir, roles: ['controller'] }),
    { db, catalog, logger: pino({ level: process.env.BENCH_LOG_LEVEL ?? 'silent' }) },
  );
  try {
    await writeSettings(db, { max_jobs: MAX_JOBS });
    // The backlog, written before admission runs: jobs round-robin over the clients, 64 in flight
    // (the submission writer batches them).
    const t0 = performance.now();
    for (let i = 0; i < JOBS; i += 64) {
      const batch: Promise<number>[] = [];
      for (let k = i; k < Math.min(JOBS, i + 64); k++)
        batch.push(submitAs(engine, 'hold', {}, { priority: 1 + (k % 10) }, `client-${k % CLIENTS}`));
      await Promise.all(batch);
    }
    console.log(
      `${kind}: ${JOBS} queued jobs over ${CLIENTS} clients in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    await db.query('ANALYZE jobs');

    // 2. One pass alone, the controller not running.
    const pass: number[] = [];
    await admitJobs(engine.ctx); // fills the slots
    for (let i = 0; i < ROUNDS + WARMUP; i++) {
      await patchJob(engine.ctx, admin, String(await oneStarted(db)), { queue_state: 'broken' });
      const start = performance.now();
      const n = await admitJobs(engine.ctx);
      if (n !== 1) throw new Error(`a pass started ${n} jobs, expected 1`);
      if (i >= WARMUP) pass.push(performance.now() - start);
    }

    // 1. Slot freed → next started, through the controller.
    let onStarted: (() => void) | null = null;
    const unlisten = await db.listen(CHANNELS.tasks, () => onStarted?.());
    await engine.start();
    const freed: number[] = [];
    for (let i = 0; i < ROUNDS + WARMUP; i++) {
      const id = await oneStarted(db);
      const started = new Promise<number>((resolve) => (onStarted = () => resolve(performance.now())));
      await patchJob(engine.ctx, admin, String(id), { queue_state: 'broken' });
      const committed = performance.now();
      const at = await started;
      onStarted = null;
      if (i >= WARMUP) freed.push(Math.max(0, at - committed));
      await new Promise((r) => setTimeout(r, 5));
    }
    await unlisten();
    console.log(summary(`${kind}: slot freed → next job started (controller)`, freed));
    console.log(summary(`${kind}: one admission pass (direct call)`, pass));
  } finally {
    await engine.stop();
    await db.close();
    if (kind === 'postgres') await adminSql(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  }
}

const kinds: Kind[] =
  process.argv[2] === 'pglite'
    ? ['pglite']
    : process.argv[2] === 'both'
      ? ['postgres', 'pglite']
      : ['postgres'];
for (const kind of kinds) await run(kind);
