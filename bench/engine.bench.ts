/**
 * Engine benchmarks, on PostgreSQL (a fresh `te_bench_engine` database) and on in-memory PGlite:
 *
 * 1. queued-to-started latency on an idle engine (p50/p99): from the moment a submission has
 *    committed to the moment the admission that started it has committed (its `CHANNELS.tasks`
 *    wake-up arrives);
 * 2. end-to-end throughput of a 3-task no-op workflow with `max_jobs` 200 (jobs/s), jobs
 *    submitted beforehand so only the engine is measured;
 * 3. `POST /job` rate through `app.inject` (the whole Fastify stack, auth and validation);
 * 4. engine memory (RSS, heap) sampled while many jobs flow through (should stay flat);
 * 5. pgbench simple-insert TPS on the same server, for reference.
 *
 * `npm run bench engine`, or `node --import tsx bench/engine.bench.ts [postgres|pglite]`.
 * Environment: `BENCH_DATABASE_URL` (default TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test),
 * `BENCH_MEMORY_JOBS` (default 100000 on PostgreSQL, 5000 on PGlite), `BENCH_THROUGHPUT_JOBS`
 * (default 3000 / 1000), `BENCH_CONCURRENCY` (worker slots, default 32), `BENCH_ONLY` (a comma list
 * of the parts to run: latency, throughput, post, memory, callbacks, pgbench; default all),
 * `BENCH_CALLBACK_JOBS` (default 300), `BENCH_METRICS` (`on`, `off` or `both`: the throughput part
 * with the engine's metrics on — scraped once a second, as a busy Prometheus would — off, or
 * both one after the other in the same run; default on, the engine's default), `BENCH_TRACING`
 * (`on`, `off`, `both`, `ratio=<r>` or a comma list of those such as `off,on,off,on`: the throughput
 * part with OpenTelemetry tracing on — spans exported over OTLP/HTTP to a local receiver that drops
 * them; `ratio=0.1` samples one job in ten — or off; default off, the engine's default),
 * `BENCH_COUNTERS`
 * (`on`, `off`, `both`, or a comma list such as `off,on,off,on`: the throughput part with the job
 * and task counter triggers of migration 0018 enabled or disabled, one run per entry on the same
 * database; default on; a run with them off leaves the counters wrong, which the bench ignores),
 * `BENCH_EMPTY_RUNS=1` (each throughput run on empty job tables, so later runs do not inherit the
 * rows of earlier ones), `BENCH_STATEMENTS=1` (with metrics on: the statements per job of each
 * throughput run, by name), `BENCH_DATABASE_NAME` (default `te_bench_engine`; it is dropped and created).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { buildServer } from '../src/api/build-server.js';
import { ensureAdminClient } from '../src/engine/clients/clients.js';
import { createEngine, type Engine } from '../src/engine/engine.js';
import { CHANNELS } from '../src/engine/signals.js';
import type { TracingConfig } from '../src/engine/tracing/tracing.js';
import type { Executor } from '../src/store/executor.js';
import { openStore } from '../src/store/open-store.js';
import { submitAs, testConfig, writeSettings } from '../test/helpers/engine.js';
import { createFixtureCatalog } from '../test/helpers/fixture-catalog.js';
import { NOOP_WORKFLOWS, adminQuery, benchDatabaseUrl } from './helpers/bench-setup.js';

type Kind = 'postgres' | 'pglite';
const DB_NAME = process.env.BENCH_DATABASE_NAME ?? 'te_bench_engine';
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);

const catalog = createFixtureCatalog(NOOP_WORKFLOWS);

const urlFor = benchDatabaseUrl;

const admin = adminQuery;

async function openBenchStore(kind: Kind): Promise<{ db: Executor; url: string | null }> {
  if (kind === 'pglite') return { db: await openStore({ dataDir: null }), url: null };
  await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${DB_NAME}`);
  const url = urlFor(DB_NAME);
  return { db: await openStore({ databaseUrl: url }), url };
}

async function newEngine(
  db: Executor,
  url: string | null,
  concurrency = CONCURRENCY,
  metrics = true,
  tracing: TracingConfig | undefined = undefined,
): Promise<Engine> {
  return createEngine(
    testConfig({
      databaseUrl: url,
      workflowsDir: catalog.dir,
      workerConcurrency: concurrency,
      roles: ['controller', 'worker'],
      metrics,
      ...(tracing ? { tracing } : {}),
    }),
    { db, catalog, logger: pino({ level: process.env.BENCH_LOG_LEVEL ?? 'silent' }) },
  );
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function countCompleted(db: Executor): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*) AS n FROM jobs WHERE queue_state = 'completed'`,
  );
  return rows[0]!.n;
}

/**
 * Waits until `target` jobs are completed. Counts `CHANNELS.jobEnded` wake-ups rather than
 * polling, so the measurement itself costs the database almost nothing; the count is read
 * once a second as a safety net and once at the end.
 */
async function waitForCompleted(db: Executor, target: number): Promise<void> {
  let base = await countCompleted(db);
  let ended = 0;
  let wake: (() => void) | null = null;
  const un = await db.listen(CHANNELS.jobEnded, () => {
    ended++;
    if (base + ended >= target) wake?.();
  });
  try {
    while (base + ended < target || (await countCompleted(db)) < target) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 1000);
      });
      if (base + ended < target) {
        base = await countCompleted(db);
        ended = 0;
      }
    }
  } finally {
    await un();
  }
}

/** 1. queued → started latency on an idle engine. */
async function latency(db: Executor, url: string | null, n: number): Promise<string> {
  const engine = await newEngine(db, url, 4);
  await writeSettings(db, { max_jobs: 10 });
  await engine.start();
  let onStarted: (() => void) | null = null;
  let onEnded: (() => void) | null = null;
  const un1 = await db.listen(CHANNELS.tasks, () => onStarted?.());
  const un2 = await db.listen(CHANNELS.jobEnded, () => onEnded?.());
  const samples: number[] = [];
  for (let i = 0; i < n + 10; i++) {
    const started = new Promise<number>((resolve) => (onStarted = () => resolve(performance.now())));
    const ended = new Promise<void>((resolve) => (onEnded = resolve));
    await submitAs(engine, 'noop1');
    const committed = performance.now();
    const at = await started;
    if (i >= 10) samples.push(Math.max(0, at - committed));
    await ended;
    await new Promise((r) => setTimeout(r, 5));
  }
  await un1();
  await un2();
  await engine.stop();
  samples.sort((a, b) => a - b);
  return `queued→started latency (idle engine, ${n} jobs): p50 ${pct(samples, 50).toFixed(1)} ms, p99 ${pct(samples, 99).toFixed(1)} ms, max ${samples.at(-1)!.toFixed(1)} ms`;
}

/** `BENCH_METRICS`: the metrics settings the throughput part runs with. */
function metricsRuns(): boolean[] {
  const v = (process.env.BENCH_METRICS ?? 'on').toLowerCase();
  if (v === 'both') return [false, true];
  if (v === 'off') return [false];
  if (v === 'on') return [true];
  throw new Error(`BENCH_METRICS must be on, off or both (got "${v}")`);
}

/** `BENCH_COUNTERS`: whether the counter triggers are enabled, per throughput run. */
function counterRuns(): boolean[] {
  const v = (process.env.BENCH_COUNTERS ?? 'on').toLowerCase();
  if (v === 'both') return [false, true];
  const runs = v.split(',').map((x) => x.trim());
  if (runs.some((x) => x !== 'on' && x !== 'off'))
    throw new Error(`BENCH_COUNTERS must be on, off, both or a comma list of on and off (got "${v}")`);
  return runs.map((x) => x === 'on');
}

/** The counter triggers of migration 0018 (`jobs_state_counts_*`, `tasks_state_counts_*`). */
async function setCounterTriggers(db: Executor, on: boolean): Promise<void> {
  const verb = on ? 'ENABLE' : 'DISABLE';
  for (const table of ['jobs', 'tasks'])
    for (const op of ['insert', 'update', 'delete', 'truncate'])
      await db.query(`ALTER TABLE ${table} ${verb} TRIGGER ${table}_state_counts_${op}`);
}

/**
 * `BENCH_TRACING`: the tracing of each throughput run: `off`, `on` (every job sampled), `ratio=<r>`
 * (on, with `OTEL_TRACES_SAMPLER=parentbased_traceidratio` and `OTEL_TRACES_SAMPLER_ARG=<r>`), `both`
 * (off then on), or a comma list of those (e.g. `off,on,off,on`: interleaved runs); default off.
 */
function tracingRuns(): TracingRun[] {
  const v = (process.env.BENCH_TRACING ?? 'off').toLowerCase();
  const entries = v === 'both' ? ['off', 'on'] : v.split(',').map((x) => x.trim());
  return entries.map((x) => {
    if (x === 'off') return { on: false, ratio: null };
    if (x === 'on') return { on: true, ratio: null };
    const r = /^ratio=(0(\.\d+)?|1(\.0+)?)$/.exec(x);
    if (r) return { on: true, ratio: Number(r[1]) };
    throw new Error(
      `BENCH_TRACING must be on, off, both, ratio=<0..1> or a comma list of those (got "${v}")`,
    );
  });
}

/** One throughput run's tracing: off, or on with every job sampled (`ratio` null) or a ratio of them. */
interface TracingRun {
  on: boolean;
  ratio: number | null;
}

/**
 * A local OTLP/HTTP receiver that reads and drops every export (so tracing is measured with its
 * real exporter and network hop, and no collector is needed); counts the requests and bytes.
 */
async function startSpanSink(): Promise<{ url: string; stats: () => string; close: () => Promise<void> }> {
  let requests = 0;
  let bytes = 0;
  const server = createServer((req, res) => {
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    stats: () => `${requests} exports, ${(bytes / 1024).toFixed(0)} KiB`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/**
 * 2. 3-task no-op workflow end to end, max_jobs 200; with metrics on, scraped once a second; with
 * tracing on, spans exported over OTLP/HTTP to a local sink.
 */
async function throughput(
  db: Executor,
  url: string | null,
  n: number,
  metrics = true,
  tracing: TracingRun = { on: false, ratio: null },
): Promise<string> {
  // The SDK reads the sampler variables when the engine's tracer provider is made.
  if (tracing.ratio === null) {
    delete process.env.OTEL_TRACES_SAMPLER;
    delete process.env.OTEL_TRACES_SAMPLER_ARG;
  } else {
    process.env.OTEL_TRACES_SAMPLER = 'parentbased_traceidratio';
    process.env.OTEL_TRACES_SAMPLER_ARG = String(tracing.ratio);
  }
  const sink = tracing.on ? await startSpanSink() : null;
  const engine = await newEngine(
    db,
    url,
    CONCURRENCY,
    metrics,
    sink ? { exporter: 'otlp', otlpUrl: sink.url, serviceName: 'task-engine-bench' } : undefined,
  );
  await writeSettings(db, { max_jobs: 200, priority_slots: 0 });
  const before = await countCompleted(db);
  for (let i = 0; i < n; i++) await submitAs(engine, 'noop3');
  // Only the statements of running the jobs are counted (BENCH_STATEMENTS=1), not the submissions'.
  engine.ctx.metrics?.queryDuration.reset();
  const cpu0 = process.cpuUsage();
  const pg0 = await serverCpuMs(db);
  const t0 = performance.now();
  await engine.start();
  let scrapes = 0;
  const scraper = engine.ctx.metrics
    ? setInterval(() => {
        void engine.ctx.metrics?.render().then(() => scrapes++);
      }, 1_000)
    : null;
  await waitForCompleted(db, before + n);
  const secs = (performance.now() - t0) / 1000;
  if (scraper) clearInterval(scraper);
  const cpu = process.cpuUsage(cpu0);
  const engineMs = (cpu.user + cpu.system) / 1000;
  const serverMs = (await serverCpuMs(db, pg0.pids)).ms - pg0.ms;
  const statements = process.env.BENCH_STATEMENTS === '1' ? await statementsPerJob(engine, n) : '';
  await engine.stop();
  await sink?.close();
  const perJob = (engineMs + Math.max(0, serverMs)) / n;
  return (
    `3-task no-op workflow, max_jobs 200, ${CONCURRENCY} worker slots, metrics ${metrics ? `on (${scrapes} scrapes)` : 'off'}, tracing ${sink ? `on${tracing.ratio === null ? '' : ` (sampled ${tracing.ratio})`} (${sink.stats()})` : 'off'}: ${n} jobs in ${secs.toFixed(1)} s = ${(n / secs).toFixed(0)} jobs/s (${((3 * n) / secs).toFixed(0)} tasks/s)\n` +
    `    CPU per job: engine process ${(engineMs / n).toFixed(2)} ms` +
    (db.kind === 'postgres' ? `, PostgreSQL backends ${(serverMs / n).toFixed(2)} ms` : '') +
    ` → about ${(1000 / perJob).toFixed(0)} jobs/s per fully available core` +
    statements
  );
}

/**
 * `BENCH_STATEMENTS=1` (metrics on): the database statements of a throughput run per job, by
 * query name, from `task_engine_db_query_duration_seconds` (count per job, and ms per statement
 * as the engine waited for it), most frequent first.
 */
async function statementsPerJob(engine: Engine, n: number): Promise<string> {
  const m = engine.ctx.metrics;
  if (!m) return '\n    (statements per job: metrics are off)';
  const { values } = await m.queryDuration.get();
  const by = new Map<string, { count: number; sum: number }>();
  for (const v of values) {
    const q = String(v.labels.query);
    const e = by.get(q) ?? { count: 0, sum: 0 };
    if (v.metricName?.endsWith('_count')) e.count = v.value;
    else if (v.metricName?.endsWith('_sum')) e.sum = v.value;
    by.set(q, e);
  }
  const rows = [...by.entries()].filter(([, e]) => e.count > 0).sort((a, b) => b[1].count - a[1].count);
  const total = rows.reduce((t, [, e]) => t + e.count, 0);
  return (
    `\n    statements per job: ${(total / n).toFixed(2)} (` +
    rows
      .map(([q, e]) => `${q} ${(e.count / n).toFixed(2)} × ${((e.sum / e.count) * 1000).toFixed(2)} ms`)
      .join(', ') +
    ')'
  );
}

/**
 * CPU time (ms) used so far by this database's PostgreSQL backends (Linux /proc; 0 on PGlite or
 * when /proc cannot be read). Backends that were there at the first reading but have gone are
 * counted with their last known time.
 */
async function serverCpuMs(
  db: Executor,
  known: Map<number, number> = new Map(),
): Promise<{ ms: number; pids: Map<number, number> }> {
  if (db.kind !== 'postgres') return { ms: 0, pids: known };
  const { rows } = await db.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`,
  );
  const pids = new Map(known);
  const tick = 100; // USER_HZ on Linux
  for (const { pid } of rows) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      pids.set(pid, ((Number(fields[11]) + Number(fields[12])) * 1000) / tick);
    } catch {
      // not on Linux, or the backend is on another machine
    }
  }
  let ms = 0;
  for (const v of pids.values()) ms += v;
  return { ms, pids };
}

/** 3. POST /job through app.inject. */
async function postJobRate(db: Executor, url: string | null, n: number): Promise<string> {
  const engine = await newEngine(db, url);
  const key = 'bench-admin-key-0123456789abcdef';
  await ensureAdminClient(db, 'bench', key);
  const app = buildServer(engine.ctx);
  await app.ready();
  const body = JSON.stringify({ job: { workflow: 'noop1' }, parameters: { content_id: 'x' } });
  const headers = { client: 'bench', 'api-key': key, 'content-type': 'application/json' };
  const inject = async () => {
    const res = await app.inject({ method: 'POST', url: '/job', headers, payload: body });
    if (res.statusCode !== 200 && res.statusCode !== 201)
      throw new Error(`POST /job answered ${res.statusCode}: ${res.body}`);
  };
  for (let i = 0; i < 50; i++) await inject();
  const t0 = performance.now();
  const parallel = 16;
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        next++;
        await inject();
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  await app.close();
  // Leave no queued jobs behind for the next measurement.
  await db.query(`UPDATE jobs SET queue_state = 'broken', finished_at = now() WHERE queue_state = 'queued'`);
  return `POST /job through app.inject (${parallel} in flight): ${n} in ${secs.toFixed(1)} s = ${(n / secs).toFixed(0)}/s`;
}

/** 4. memory over many jobs, fed continuously. */
async function memory(db: Executor, url: string | null, n: number): Promise<string> {
  const engine = await newEngine(db, url);
  await writeSettings(db, { max_jobs: 200 });
  await engine.start();
  const before = await countCompleted(db);
  // Completions are counted from job-ended wake-ups (reading count(*) of a growing table every
  // few ms would load the database more than the engine does), corrected from count(*) every 5 s.
  let ended = 0;
  const un = await db.listen(CHANNELS.jobEnded, () => void ended++);
  let lastCount = performance.now();
  let submitted = 0;
  const samples: string[] = [];
  const mb = (b: number) => (b / 1024 / 1024).toFixed(0);
  const step = Math.max(1000, Math.floor(n / 10));
  let nextSample = step;
  const t0 = performance.now();
  for (;;) {
    if (performance.now() - lastCount > 5_000) {
      ended = (await countCompleted(db)) - before;
      lastCount = performance.now();
    }
    const done = Math.min(ended, submitted);
    // Keep about 600 jobs waiting, so the engine never idles; submit 50 at a time.
    while (submitted < n && submitted - done < 600) {
      const k = Math.min(50, n - submitted);
      await Promise.all(Array.from({ length: k }, () => submitAs(engine, 'noop3')));
      submitted += k;
    }
    if (done >= nextSample || done >= n) {
      global.gc?.();
      const m = process.memoryUsage();
      samples.push(`${done}: rss ${mb(m.rss)} MB, heap ${mb(m.heapUsed)} MB`);
      nextSample += step;
    }
    if (done >= n && (await countCompleted(db)) - before >= n) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await un();
  const secs = (performance.now() - t0) / 1000;
  await engine.stop();
  return `memory over ${n} jobs (submitted and run in ${secs.toFixed(0)} s, ${(n / secs).toFixed(0)} jobs/s incl. submission in the same process):\n    ${samples.join('\n    ')}`;
}

/**
 * 6. Callback delivery: `n` 3-task jobs with two `rest_endpoints` on a local HTTP server that
 * answers 200 at once; each job makes 7 callbacks per target (3 start, 3 complete, job end).
 * Measured from the engine's start to the last callback received.
 */
async function callbackRate(db: Executor, url: string | null, n: number): Promise<string> {
  let received = 0;
  let allIn: (() => void) | null = null;
  const expected = n * 7 * 2;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      if (++received >= expected) allIn?.();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const targets = [`http://127.0.0.1:${port}/a`, `http://127.0.0.1:${port}/b`];
  const engine = await newEngine(db, url);
  await writeSettings(db, { max_jobs: 200, priority_slots: 0 });
  for (let i = 0; i < n; i += 50)
    await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, () =>
        submitAs(engine, 'noop3', { rest_endpoints: targets }),
      ),
    );
  const done = new Promise<void>((resolve) => (allIn = resolve));
  const t0 = performance.now();
  await engine.start();
  await done;
  const secs = (performance.now() - t0) / 1000;
  await engine.stop();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `callbacks: ${expected} to 2 targets (${n} jobs, 7 events each per target) in ${secs.toFixed(1)} s = ${(expected / secs).toFixed(0)} delivered/s (jobs and their callbacks together)`;
}

/** 5. pgbench simple inserts, for reference. */
function pgbench(): string {
  const url = urlFor(DB_NAME);
  const init = spawnSync('pgbench', ['-i', '-q', '-s', '1', url], { encoding: 'utf8' });
  if (init.status !== 0) return `pgbench -i failed: ${init.stderr}`;
  const script = path.join(mkdtempSync(path.join(tmpdir(), 'te-pgbench-')), 'insert.sql');
  writeFileSync(
    script,
    'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 1, now());\n',
  );
  const run = spawnSync('pgbench', ['-n', '-c', '4', '-j', '2', '-T', '10', '-f', script, url], {
    encoding: 'utf8',
  });
  const tps = /tps = ([\d.]+)/.exec(run.stdout)?.[1];
  return `pgbench simple insert (4 clients, 10 s): ${tps ?? `failed: ${run.stderr}`} tps`;
}

/**
 * `BENCH_EMPTY_RUNS=1`: each throughput run starts on empty job tables (`TRUNCATE jobs CASCADE`
 * empties every table that refers to jobs; the counters are reset by their truncate triggers, or
 * here when those are off), so runs compared with each other do not differ by how many jobs the
 * runs before them left behind.
 */
async function emptyJobTables(db: Executor): Promise<void> {
  await db.query('TRUNCATE jobs CASCADE');
  await db.query('DELETE FROM job_state_counts');
  await db.query('DELETE FROM task_state_counts');
  await db.query('ANALYZE');
}

/** `BENCH_ONLY=throughput,post` runs only the named parts (latency, throughput, post, memory, callbacks, pgbench). */
function wanted(part: string): boolean {
  const only = process.env.BENCH_ONLY;
  return !only || only.split(',').includes(part);
}

async function main(): Promise<void> {
  const kinds = (process.argv[2] ? [process.argv[2]] : ['postgres', 'pglite']) as Kind[];
  console.log(
    `machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}`,
  );
  for (const kind of kinds) {
    console.log(`\n--- ${kind}`);
    const { db, url } = await openBenchStore(kind);
    try {
      const pgKind = kind === 'postgres';
      if (wanted('latency')) console.log(await latency(db, url, pgKind ? 200 : 100));
      if (wanted('throughput'))
        for (const counters of counterRuns())
          for (const metrics of metricsRuns())
            for (const tracing of tracingRuns()) {
              await setCounterTriggers(db, counters);
              if (process.env.BENCH_EMPTY_RUNS === '1') await emptyJobTables(db);
              const line = await throughput(
                db,
                url,
                Number(process.env.BENCH_THROUGHPUT_JOBS ?? (pgKind ? 3000 : 1000)),
                metrics,
                tracing,
              );
              console.log(`${line} [counter triggers ${counters ? 'on' : 'off'}]`);
            }
      await setCounterTriggers(db, true);
      if (wanted('post')) console.log(await postJobRate(db, url, pgKind ? 3000 : 1000));
      const memJobs = Number(process.env.BENCH_MEMORY_JOBS ?? (pgKind ? 100_000 : 5_000));
      if (wanted('memory') && memJobs > 0) console.log(await memory(db, url, memJobs));
      if (wanted('callbacks'))
        console.log(await callbackRate(db, url, Number(process.env.BENCH_CALLBACK_JOBS ?? 300)));
      if (wanted('pgbench') && pgKind) console.log(pgbench());
    } finally {
      await db.close();
    }
  }
}

await main();
