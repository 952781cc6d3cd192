/**
 * `npm run bench peers`: Task Engine beside graphile-worker, pg-boss and BullMQ on the same work,
 * N one-task no-op jobs run with 50 at a time, on this machine, in one run.
 *
 * Systems (each on its own PostgreSQL database, `te_bench_peers_<system>`, created at the start and
 * vacuumed before every run; BullMQ on the Redis server at `PEERS_REDIS_URL`, default
 * redis://127.0.0.1:6379):
 * - `bullmq`: a Worker with `concurrency` 50 (needs the `ioredis` package, an optional peer of
 *   bullmq; skipped with a note when it is not installed);
 * - `pg-boss`: one `work()` fetching batches of 50 (`batchSize`), woken by `notifyWorker` after a
 *   full batch and after every `send` (pg-boss polls at most every 0.5 s otherwise), maintenance
 *   and cron off (`supervise: false`, `schedule: false`);
 * - `graphile-worker`: `run()` with `concurrency` 50 and a silent logger, defaults otherwise;
 * - `engine`: Task Engine in this process, 50 worker slots, `max_jobs` `PEERS_MAX_JOBS` (default
 *   200), jobs submitted with the internal `submitJob` (what `POST /job` calls);
 * - `engine-http` (live mode only): the same engine behind its Fastify API listening on
 *   127.0.0.1, fed by `POST /job` from a separate load process (bench/helpers/post-client.ts)
 *   keeping 64 requests in flight.
 *
 * Two modes, each timed the same way for every system:
 * - `drain`: the N jobs are inserted first (each system's bulk insert where it has one:
 *   `addJobs`, `insert`, `addBulk`; the engine 64 `submitJob` calls at a time), untimed; the time
 *   runs from starting the workers to the last job completed;
 * - `live`: the workers are started first; the time runs from the first submission (one job per
 *   call, 64 calls in flight: `addJob`, `send`, `queue.add`, `submitJob`, `POST /job`) to the
 *   last job completed, so submission is inside the time.
 *
 * Per run: jobs/s; CPU per task = this process's CPU (`process.cpuUsage`, the HTTP load process
 * not included) plus the database server's — the backends connected to the system's database and
 * the server's WAL writer, checkpointer and background writer, from /proc — or redis-server's for
 * BullMQ, over the timed part, divided by N; rows inserted / updated / deleted per job and the
 * share of HOT updates (`pg_stat_user_tables` of the system's database, read after all of its
 * connections have closed, so every backend has flushed its counters; insertion included); WAL
 * bytes per job written for the system's database (`pg_walinspect`: the records touching its
 * blocks and those of the same transactions, insertion included), with the server's whole
 * `pg_current_wal_lsn()` difference beside it (other databases included). Each figure is the
 * median over the rounds; ratios are against graphile-worker in the same mode.
 *
 * Environment: `PEERS_JOBS` (default 10000), `PEERS_ROUNDS` (default 3), `PEERS_CONCURRENCY`
 * (default 50), `PEERS_IN_FLIGHT` (default 64), `PEERS_MODES` (`drain,live`), `PEERS_SYSTEMS`
 * (comma list, default all), `PEERS_MAX_JOBS` (default 200), `PEERS_KEEP=1` keeps the databases,
 * `PEERS_ANALYZE=0` skips the ANALYZE of the drain backlog before the timed part,
 * `PEERS_ENGINE_TRIGGERS_OFF` (`events`, `counters`, comma list) disables those triggers in the
 * engine's databases to measure what they cost,
 * `PEERS_ENGINE_HANDOFF=off` turns the engine's hand-off claims off (every freed slot wakes a claim
 * pass of its own, as before they existed), for before/after runs.
 * `PEERS_ENGINE_SQL` runs that statement in the engine's databases before the runs (a what-if),
 * `PEERS_TABLE_UPKEEP=off` turns the engine's table upkeep off (docs/deployment.md), `PEERS_VACUUM=first` vacuums each database before its first round only (dead rows pile up, as on
 * a server with autovacuum off),
 * `BENCH_DATABASE_URL` (the server; default TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test).
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, totalmem } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createBunRedisClient, Queue, Worker } from 'bullmq';
import { Logger, makeWorkerUtils, run as runGraphile, runMigrations } from 'graphile-worker';
import pg from 'pg';
import PgBoss from 'pg-boss';
import { pino } from 'pino';
import { buildServer } from '../src/api/build-server.js';
import { ensureAdminClient } from '../src/engine/clients/clients.js';
import { createEngine, type Engine } from '../src/engine/engine.js';
import { CHANNELS } from '../src/engine/signals.js';
import type { Executor } from '../src/store/executor.js';
import { openStore } from '../src/store/open-store.js';
import { submitAs, testConfig, writeSettings } from '../test/helpers/engine.js';
import { createFixtureCatalog } from '../test/helpers/fixture-catalog.js';
import {
  BASE_URL,
  countersDelta,
  CpuMeter,
  currentLsn,
  dropDatabase,
  pidsNamed,
  postgresPidsFor,
  recreateDatabase,
  tableCounters,
  urlFor,
  analyze,
  vacuum,
  walOfDatabase,
  withClient,
  type TableCounters,
  type WalBytes,
} from './helpers/pg-measure.js';
import { RespClient } from './helpers/resp-client.js';

const JOBS = Number(process.env.PEERS_JOBS ?? 10_000);
const ROUNDS = Number(process.env.PEERS_ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.PEERS_CONCURRENCY ?? 50);
const IN_FLIGHT = Number(process.env.PEERS_IN_FLIGHT ?? 64);
const MAX_JOBS = Number(process.env.PEERS_MAX_JOBS ?? 200);
const REDIS_URL = process.env.PEERS_REDIS_URL ?? 'redis://127.0.0.1:6379';
const MODES = (process.env.PEERS_MODES ?? 'drain,live').split(',') as Mode[];
const WANTED = process.env.PEERS_SYSTEMS?.split(',') ?? null;
const INSERT_CHUNK = 1000;
const HERE = path.dirname(fileURLToPath(import.meta.url));

type Mode = 'drain' | 'live';

/** One prepared run: `go()` does the timed part and resolves when the last job has completed. */
interface Prepared {
  go(): Promise<void>;
  close(): Promise<void>;
  /** CPU of helper processes not counted as the system's (the HTTP load process), ms. */
  sideCpuMs?: () => number;
}

/** A system under comparison. */
interface System {
  name: string;
  label: string;
  /** The PostgreSQL database it uses, or null (BullMQ). */
  database: string | null;
  modes: Mode[];
  /** Creates its database and schema (once, untimed). */
  setup(): Promise<void>;
  /** Opens connections, inserts the jobs (drain) or starts the workers (live). */
  prepare(mode: Mode, n: number): Promise<Prepared>;
  /** pids of the server processes whose CPU counts as its database's. */
  serverPids(monitor: pg.Client): Promise<number[]> | number[];
}

/** Runs `count` calls of `fn` with `parallel` outstanding at a time. */
async function inParallel(count: number, parallel: number, fn: () => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, count) }, async () => {
      while (next < count) {
        next++;
        await fn();
      }
    }),
  );
}

/** A promise resolved by `hit()` being called `target` times. */
function counter(target: number): { hit: (k?: number) => void; done: Promise<void>; count: () => number } {
  let n = 0;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  if (target <= 0) resolve();
  return {
    hit: (k = 1) => {
      n += k;
      if (n >= target) resolve();
    },
    done,
    count: () => n,
  };
}

/** Polls `sql` on `url` until it returns 0 (a final check after completion events). */
async function untilZero(url: string, sql: string): Promise<void> {
  await withClient(async (c) => {
    for (;;) {
      const { rows } = await c.query<{ n: string }>(sql);
      if (Number(rows[0]!.n) === 0) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  }, url);
}

// --- graphile-worker

const silentGraphileLogger = new Logger(() => () => {});

function graphileSystem(): System {
  const database = 'te_bench_peers_graphile';
  const url = urlFor(database);
  const common = { connectionString: url, logger: silentGraphileLogger };
  return {
    name: 'graphile-worker',
    label: 'graphile-worker (silent logger)',
    database,
    modes: ['drain', 'live'],
    async setup() {
      await recreateDatabase(database);
      await runMigrations(common);
    },
    async prepare(mode, n) {
      const utils = await makeWorkerUtils(common);
      const start = () =>
        runGraphile({
          ...common,
          concurrency: CONCURRENCY,
          noHandleSignals: true,
          taskList: { noop: async () => {} },
        });
      const completed = counter(n);
      const finish = () => untilZero(url, 'SELECT count(*) AS n FROM graphile_worker._private_jobs');
      let runner: Awaited<ReturnType<typeof start>> | null = null;
      const attach = (r: Awaited<ReturnType<typeof start>>) =>
        r.events.on('job:success', () => completed.hit());
      if (mode === 'drain') {
        for (let i = 0; i < n; i += INSERT_CHUNK)
          await utils.addJobs(
            Array.from({ length: Math.min(INSERT_CHUNK, n - i) }, () => ({
              identifier: 'noop',
              payload: {},
            })),
          );
      } else {
        runner = await start();
        attach(runner);
      }
      return {
        async go() {
          if (mode === 'drain') {
            runner = await start();
            attach(runner);
          } else await inParallel(n, IN_FLIGHT, () => utils.addJob('noop', {}));
          await completed.done;
          await finish();
        },
        async close() {
          await runner?.stop();
          await utils.release();
        },
      };
    },
    serverPids: (monitor) => postgresPidsFor(monitor, database),
  };
}

// --- pg-boss

function pgBossSystem(): System {
  const database = 'te_bench_peers_pgboss';
  const url = urlFor(database);
  const options = { connectionString: url, supervise: false, schedule: false, migrate: true };
  const QUEUE = 'noop';
  const BATCH = CONCURRENCY;
  return {
    name: 'pg-boss',
    label: `pg-boss (batchSize ${BATCH}, notify-woken)`,
    database,
    modes: ['drain', 'live'],
    async setup() {
      await recreateDatabase(database);
      const boss = new PgBoss(options);
      await boss.start();
      await boss.createQueue(QUEUE);
      await boss.stop({ graceful: false, wait: true });
    },
    async prepare(mode, n) {
      const boss = new PgBoss(options);
      boss.on('error', (err) => console.error('pg-boss:', err));
      await boss.start();
      const completed = counter(n);
      let workerId: string | null = null;
      const startWorker = async () => {
        workerId = await boss.work(
          QUEUE,
          { batchSize: BATCH, pollingIntervalSeconds: 0.5 },
          // eslint-disable-next-line @typescript-eslint/require-await
          async (jobs) => {
            completed.hit(jobs.length);
            // A full batch: more may be waiting, so fetch again at once rather than after the
            // polling interval.
            if (jobs.length === BATCH && workerId) boss.notifyWorker(workerId);
          },
        );
      };
      if (mode === 'drain') {
        for (let i = 0; i < n; i += INSERT_CHUNK)
          await boss.insert(
            Array.from({ length: Math.min(INSERT_CHUNK, n - i) }, () => ({ name: QUEUE, data: {} })),
          );
      } else await startWorker();
      return {
        async go() {
          if (mode === 'drain') await startWorker();
          else
            await inParallel(n, IN_FLIGHT, async () => {
              await boss.send(QUEUE, {});
              if (workerId) boss.notifyWorker(workerId);
            });
          await completed.done;
          // The handler has returned for every job; its completion is written just after.
          await untilZero(
            url,
            `SELECT count(*) AS n FROM pgboss.job WHERE name = '${QUEUE}' AND state < 'completed'`,
          );
        },
        async close() {
          await boss.stop({ graceful: false, wait: true });
        },
      };
    },
    serverPids: (monitor) => postgresPidsFor(monitor, database),
  };
}

// --- BullMQ

type RedisCtor = new (url: string, options: Record<string, unknown>) => { quit(): Promise<unknown> };

/** ioredis, an optional peer of bullmq 6, or null when it is not installed. */
function loadIORedis(): RedisCtor | null {
  try {
    const mod = createRequire(import.meta.url)('ioredis') as { default?: RedisCtor } & RedisCtor;
    return mod.default ?? mod;
  } catch {
    return null;
  }
}

/** A connection for bullmq's `connection` option, and which driver makes it. */
interface RedisDriver {
  name: string;
  connect(): { quit?(): Promise<unknown>; disconnect?(): unknown };
}

/** ioredis when installed, else the bench's own RESP client behind bullmq's Bun adapter. */
function redisDriver(): RedisDriver {
  const IORedis = loadIORedis();
  if (IORedis)
    return { name: 'ioredis', connect: () => new IORedis(REDIS_URL, { maxRetriesPerRequest: null }) };
  return {
    name: 'bench/helpers/resp-client.ts, ioredis not installed',
    connect: () => createBunRedisClient(new RespClient(REDIS_URL)),
  };
}

function bullmqSystem(driver: RedisDriver): System {
  const QUEUE = 'te_bench_peers';
  return {
    name: 'bullmq',
    label: `BullMQ on Redis (concurrency ${CONCURRENCY}; ${driver.name})`,
    database: null,
    modes: ['drain', 'live'],
    async setup() {},
    async prepare(mode, n) {
      const connection = driver.connect();
      const workerConnection = driver.connect();
      const queue = new Queue(QUEUE, { connection });
      await queue.obliterate({ force: true });
      const completed = counter(n);
      let worker: Worker | null = null;
      const startWorker = async () => {
        worker = new Worker(QUEUE, async () => {}, {
          connection: workerConnection,
          concurrency: CONCURRENCY,
        });
        worker.on('completed', () => completed.hit());
        await worker.waitUntilReady();
      };
      if (mode === 'drain') {
        for (let i = 0; i < n; i += INSERT_CHUNK)
          await queue.addBulk(
            Array.from({ length: Math.min(INSERT_CHUNK, n - i) }, () => ({ name: 'noop', data: {} })),
          );
      } else await startWorker();
      return {
        async go() {
          if (mode === 'drain') await startWorker();
          else await inParallel(n, IN_FLIGHT, () => queue.add('noop', {}));
          await completed.done;
        },
        async close() {
          await worker?.close();
          await queue.obliterate({ force: true });
          await queue.close();
          for (const c of [connection, workerConnection]) await (c.quit ? c.quit() : c.disconnect?.());
        },
      };
    },
    serverPids: () => pidsNamed('redis-server'),
  };
}

// --- Task Engine

const catalog = createFixtureCatalog({
  noop1: { tasks: [{ name: 'a', run: 'sleep', with: { seconds: 0 } }] },
});

async function newEngine(db: Executor, url: string): Promise<Engine> {
  const engine = await createEngine(
    testConfig({
      databaseUrl: url,
      workflowsDir: catalog.dir,
      workerConcurrency: CONCURRENCY,
      roles: ['controller', 'scheduler', 'worker'],
      tableUpkeep: process.env.PEERS_TABLE_UPKEEP === 'off' ? 'off' : 'auto',
    }),
    {
      db,
      catalog,
      logger: pino({ level: process.env.BENCH_LOG_LEVEL ?? 'silent' }),
      handoffClaims: process.env.PEERS_ENGINE_HANDOFF !== 'off',
    },
  );
  await writeSettings(db, { max_jobs: MAX_JOBS, priority_slots: 0 });
  return engine;
}

/** Counts `CHANNELS.jobEnded` wake-ups; `done` resolves at `n` and after the table agrees. */
async function engineCompletions(
  db: Executor,
  n: number,
): Promise<{ done: Promise<void>; stop: () => Promise<void> }> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM jobs WHERE queue_state = 'completed'`,
  );
  const base = rows[0]!.n;
  const ended = counter(n);
  const un = await db.listen(CHANNELS.jobEnded, () => ended.hit());
  const done = ended.done.then(async () => {
    for (;;) {
      const { rows: r } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM jobs WHERE queue_state = 'completed'`,
      );
      if (r[0]!.n - base >= n) return;
      await new Promise((res) => setTimeout(res, 20));
    }
  });
  return { done, stop: un };
}

/**
 * Trigger groups `PEERS_ENGINE_TRIGGERS_OFF` may name (comma list): a measurement of what each
 * costs, not a setting (without `events` nothing reaches `GET /events`; without `counters`
 * `/health` and the metrics gauges stop counting).
 */
const TRIGGER_GROUPS: Record<string, Array<[table: string, trigger: string]>> = {
  events: [
    ['jobs', 'jobs_events_insert'],
    ['jobs', 'jobs_events_update'],
    ['tasks', 'tasks_events_update'],
    ['logs', 'logs_events_insert'],
  ],
  counters: [
    ['jobs', 'jobs_state_counts_insert'],
    ['jobs', 'jobs_state_counts_update'],
    ['jobs', 'jobs_state_counts_delete'],
    ['tasks', 'tasks_state_counts_insert'],
    ['tasks', 'tasks_state_counts_update'],
    ['tasks', 'tasks_state_counts_delete'],
  ],
};

async function disableTriggers(db: Executor): Promise<void> {
  const wanted = (process.env.PEERS_ENGINE_TRIGGERS_OFF ?? '').split(',').filter(Boolean);
  for (const group of wanted) {
    const triggers = TRIGGER_GROUPS[group];
    if (!triggers)
      throw new Error(
        `PEERS_ENGINE_TRIGGERS_OFF: unknown group ${group}; known: ${Object.keys(TRIGGER_GROUPS).join(', ')}`,
      );
    // Names come from the table above, never from the environment.
    for (const [table, trigger] of triggers) await db.exec(`ALTER TABLE ${table} DISABLE TRIGGER ${trigger}`);
  }
  if (wanted.length)
    console.log(`engine: trigger groups disabled for this measurement: ${wanted.join(', ')}`);
  // An operator's own statement for a what-if measurement (an index dropped, say); from the
  // environment of whoever runs the bench, never from a request.
  const sql = process.env.PEERS_ENGINE_SQL;
  if (sql) {
    await db.exec(sql);
    console.log(`engine: ran PEERS_ENGINE_SQL before the runs: ${sql}`);
  }
}

function engineSystem(): System {
  const database = 'te_bench_peers_engine';
  const url = urlFor(database);
  return {
    name: 'engine',
    label: `Task Engine in process (submitJob, ${CONCURRENCY} slots)`,
    database,
    modes: ['drain', 'live'],
    async setup() {
      await recreateDatabase(database);
      const db = await openStore({ databaseUrl: url });
      await disableTriggers(db);
      await db.close();
    },
    async prepare(mode, n) {
      const db = await openStore({ databaseUrl: url });
      const engine = await newEngine(db, url);
      if (mode === 'drain') await inParallel(n, IN_FLIGHT, () => submitAs(engine, 'noop1'));
      else await engine.start();
      const completions = await engineCompletions(db, n);
      return {
        async go() {
          if (mode === 'drain') await engine.start();
          else await inParallel(n, IN_FLIGHT, () => submitAs(engine, 'noop1'));
          await completions.done;
        },
        async close() {
          await completions.stop();
          await engine.stop();
          await db.close();
        },
      };
    },
    serverPids: (monitor) => postgresPidsFor(monitor, database),
  };
}

function engineHttpSystem(): System {
  const database = 'te_bench_peers_engine_http';
  const url = urlFor(database);
  const client = 'bench';
  const key = 'bench-admin-key-0123456789abcdef';
  return {
    name: 'engine-http',
    label: `Task Engine over HTTP (POST /job, ${IN_FLIGHT} in flight)`,
    database,
    modes: ['live'],
    async setup() {
      await recreateDatabase(database);
      const db = await openStore({ databaseUrl: url });
      await ensureAdminClient(db, client, key);
      await disableTriggers(db);
      await db.close();
    },
    async prepare(_mode, n) {
      const db = await openStore({ databaseUrl: url });
      const engine = await newEngine(db, url);
      const app = buildServer(engine.ctx);
      await app.listen({ host: '127.0.0.1', port: 0 });
      await engine.start();
      const warm = Math.min(IN_FLIGHT, n);
      const warmDone = await engineCompletions(db, warm);
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          path.join(HERE, 'helpers/post-client.ts'),
          `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/job`,
          String(n),
          String(IN_FLIGHT),
        ],
        {
          env: {
            ...process.env,
            BENCH_CLIENT: client,
            BENCH_API_KEY: key,
            BENCH_BODY: JSON.stringify({ job: { workflow: 'noop1' }, parameters: {} }),
          },
          stdio: ['pipe', 'pipe', 'inherit'],
        },
      );
      let out = '';
      let onLine: (() => void) | null = null;
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        onLine?.();
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      const waitFor = (pred: () => boolean) =>
        new Promise<void>((resolve, reject) => {
          onLine = () => pred() && resolve();
          onLine();
          void exited.then((code) =>
            pred() ? resolve() : reject(new Error(`POST client exited ${code}: ${out}`)),
          );
        });
      await waitFor(() => out.includes('READY'));
      await warmDone.done;
      await warmDone.stop();
      const completions = await engineCompletions(db, n - warm);
      let clientCpu = 0;
      return {
        async go() {
          child.stdin.write('GO\n');
          await waitFor(() => out.includes('"sent"'));
          const line = out.split('\n').find((l) => l.includes('"sent"'))!;
          clientCpu = (JSON.parse(line) as { cpuMs: number }).cpuMs;
          await completions.done;
        },
        sideCpuMs: () => clientCpu,
        async close() {
          await exited;
          await completions.stop();
          await app.close();
          await engine.stop();
          await db.close();
        },
        // The jobs the load process sent to open its connections ran before the timed part.
        timedJobs: n - warm,
      } as Prepared & { timedJobs: number };
    },
    serverPids: (monitor) => postgresPidsFor(monitor, database),
  };
}

// --- the runs

interface RunFigures {
  jobs: number;
  secs: number;
  processMs: number;
  serverMs: number;
  sideMs: number;
  counters: TableCounters | null;
  wal: WalBytes | null;
}

/** `PEERS_VACUUM=first`: vacuum before each system's first round only, so dead rows pile up. */
const VACUUM_FIRST_ONLY = process.env.PEERS_VACUUM === 'first';
const vacuumed = new Set<string>();

async function runOnce(sys: System, mode: Mode, monitor: pg.Client): Promise<RunFigures> {
  if (sys.database && !(VACUUM_FIRST_ONLY && vacuumed.has(sys.database))) {
    await vacuum(urlFor(sys.database));
    vacuumed.add(sys.database);
  }
  const before = sys.database ? await tableCounters(sys.database) : null;
  const lsn0 = sys.database ? await currentLsn() : null;
  const prepared = await sys.prepare(mode, JOBS);
  // The backlog was written after the VACUUM above. ANALYZE it, as autovacuum would on a server
  // where it runs (this one has it off): else the foreign-key checks of a connection that first ran
  // them on the empty tables keep a sequential-scan plan (see RESULTS.md "steps").
  if (sys.database && mode === 'drain' && process.env.PEERS_ANALYZE !== '0')
    await analyze(urlFor(sys.database));
  const jobs = (prepared as Prepared & { timedJobs?: number }).timedJobs ?? JOBS;
  const meter = await CpuMeter.begin(() => sys.serverPids(monitor));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await prepared.go();
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const serverMs = await meter.stop();
  await prepared.close();
  let counters: TableCounters | null = null;
  let wal: WalBytes | null = null;
  if (sys.database && before && lsn0) {
    counters = countersDelta(before, await tableCounters(sys.database));
    wal = await walOfDatabase(sys.database, lsn0, await currentLsn());
  }
  return {
    jobs,
    secs,
    processMs: (cpu.user + cpu.system) / 1000,
    serverMs,
    sideMs: prepared.sideCpuMs?.() ?? 0,
    counters,
    wal,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Summary {
  label: string;
  jobsPerSec: number;
  cpuPerTask: number;
  processPerTask: number;
  serverPerTask: number;
  sidePerTask: number;
  insPerJob: number | null;
  updPerJob: number | null;
  delPerJob: number | null;
  hot: number | null;
  walPerJob: number | null;
  serverWalPerJob: number | null;
  runs: number[];
}

function summarise(label: string, runs: RunFigures[]): Summary {
  const per = (f: (r: RunFigures) => number | null | undefined): number | null => {
    const xs = runs.map(f).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    return xs.length ? median(xs) : null;
  };
  return {
    label,
    jobsPerSec: per((r) => r.jobs / r.secs)!,
    cpuPerTask: per((r) => (r.processMs + r.serverMs) / r.jobs)!,
    processPerTask: per((r) => r.processMs / r.jobs)!,
    serverPerTask: per((r) => r.serverMs / r.jobs)!,
    sidePerTask: per((r) => r.sideMs / r.jobs)!,
    // Rows and WAL cover every job of the run (the HTTP warm-up jobs included).
    insPerJob: per((r) => (r.counters ? r.counters.inserted / JOBS : null)),
    updPerJob: per((r) => (r.counters ? r.counters.updated / JOBS : null)),
    delPerJob: per((r) => (r.counters ? r.counters.deleted / JOBS : null)),
    hot: per((r) =>
      r.counters && r.counters.updated > 0 ? r.counters.hotUpdated / r.counters.updated : null,
    ),
    walPerJob: per((r) => (r.wal?.database != null ? r.wal.database / JOBS : null)),
    serverWalPerJob: per((r) => (r.wal ? r.wal.server / JOBS : null)),
    runs: runs.map((r) => r.jobs / r.secs),
  };
}

function table(mode: Mode, rows: Summary[]): string {
  const ref = rows.find((r) => r.label.startsWith('graphile-worker'));
  const ratio = (v: number | null, r: number | null | undefined) =>
    v != null && r ? `${(v / r).toFixed(2)}×` : '–';
  const f = (v: number | null, d: number) => (v == null ? '–' : v.toFixed(d));
  const head = [
    'system',
    'jobs/s',
    '× graphile',
    'CPU ms/task (process + server)',
    '× graphile',
    'rows ins / upd / del per job',
    'HOT %',
    'WAL B/job (its database; whole server)',
    '× graphile',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows)
    lines.push(
      `| ${[
        r.label,
        `${r.jobsPerSec.toFixed(0)} (${r.runs.map((x) => x.toFixed(0)).join(', ')})`,
        ratio(r.jobsPerSec, ref?.jobsPerSec),
        `${r.cpuPerTask.toFixed(2)} (${r.processPerTask.toFixed(2)} + ${r.serverPerTask.toFixed(2)})` +
          (r.sidePerTask ? `; load process ${r.sidePerTask.toFixed(2)}` : ''),
        ratio(r.cpuPerTask, ref?.cpuPerTask),
        r.insPerJob == null ? '–' : `${f(r.insPerJob, 2)} / ${f(r.updPerJob, 2)} / ${f(r.delPerJob, 2)}`,
        r.hot == null ? '–' : (100 * r.hot).toFixed(0),
        r.walPerJob == null && r.serverWalPerJob == null
          ? '–'
          : `${f(r.walPerJob, 0)}; ${f(r.serverWalPerJob, 0)}`,
        ratio(r.walPerJob, ref?.walPerJob),
      ].join(' | ')} |`,
    );
  return `${mode} (${mode === 'drain' ? 'jobs inserted first; timed from starting the workers to the last completion' : `workers running; timed from the first submission (${IN_FLIGHT} in flight) to the last completion`}), ${JOBS} jobs, median of ${ROUNDS}:\n${lines.join('\n')}`;
}

async function main(): Promise<void> {
  const all: System[] = [bullmqSystem(redisDriver())];
  all.push(pgBossSystem(), graphileSystem(), engineSystem(), engineHttpSystem());
  const systems = all.filter((s) => !WANTED || WANTED.includes(s.name));
  console.log(
    `machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}; load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `${JOBS} one-task no-op jobs, concurrency ${CONCURRENCY}, ${ROUNDS} rounds, modes ${MODES.join(', ')}, server ${new URL(BASE_URL).host}`,
  );
  for (const s of systems) await s.setup();
  const results = new Map<string, RunFigures[]>();
  const monitor = new pg.Client({ connectionString: BASE_URL });
  await monitor.connect();
  try {
    for (let round = 1; round <= ROUNDS; round++)
      for (const mode of MODES)
        for (const s of systems) {
          if (!s.modes.includes(mode)) continue;
          const r = await runOnce(s, mode, monitor);
          const key = `${mode}\t${s.name}`;
          results.set(key, [...(results.get(key) ?? []), r]);
          console.log(
            `round ${round} ${mode} ${s.name}: ${(r.jobs / r.secs).toFixed(0)} jobs/s, CPU ${((r.processMs + r.serverMs) / r.jobs).toFixed(2)} ms/task` +
              (r.counters
                ? `, ${(r.counters.inserted / JOBS).toFixed(2)} ins ${(r.counters.updated / JOBS).toFixed(2)} upd per job`
                : '') +
              (r.wal?.database != null ? `, WAL ${(r.wal.database / JOBS).toFixed(0)} B/job` : ''),
          );
        }
  } finally {
    await monitor.end();
  }
  for (const mode of MODES) {
    const rows = systems
      .filter((s) => s.modes.includes(mode))
      .map((s) => summarise(s.label, results.get(`${mode}\t${s.name}`) ?? []));
    console.log(`\n${table(mode, rows)}`);
  }
  console.log(
    `\nload average at the end: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  if (process.env.PEERS_KEEP !== '1') for (const s of systems) if (s.database) await dropDatabase(s.database);
}

await main();
