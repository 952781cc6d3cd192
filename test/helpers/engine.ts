/**
 * Engines for tests: an in-process engine on a {@link TestStore} with fixture workflows and
 * settings, and real engine child processes (for kill -9 and multi-process scenarios).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import type { EngineConfig, Role } from '../../src/config/schema.js';
import { createEngine, type Engine, type EngineOptions } from '../../src/engine/engine.js';
import { submitJob } from '../../src/engine/jobs/service.js';
import { CHANNELS, notify } from '../../src/engine/signals.js';
import type { Executor } from '../../src/store/executor.js';
import type { WorkflowCatalog } from '../../src/workflows/types.js';
import { createFixtureCatalog, type FixtureWorkflow } from './fixture-catalog.js';
import { trackRunning } from './leak-guard.js';
import type { TestStore } from './stores.js';
import { waitFor } from './wait-for.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The client tests submit as. */
export const TEST_CLIENT = 'test-client';

/** Options of {@link startTestEngine}. */
export interface TestEngineOptions {
  /** Workflows by name (normalised like the loader does). Ignored when `catalog` is given. */
  workflows?: Record<string, FixtureWorkflow>;
  catalog?: WorkflowCatalog;
  /** Settings written before the engine starts (`max_jobs`, `retry_delay` …). */
  settings?: Record<string, number | string>;
  /** Roles; default controller + worker (no scheduler, no api). */
  roles?: Role[];
  /** Worker slots; default 4. */
  concurrency?: number;
  /** Queues; default every queue of the catalog. */
  queues?: string[];
  /** Start the engine; default true. */
  start?: boolean;
  /** Extra engine options (grace period, heartbeat …). */
  engine?: Omit<EngineOptions, 'db' | 'catalog' | 'logger'>;
  /** pino level for the engine's process log; default `TEST_LOG_LEVEL` or `silent`. */
  logLevel?: string;
  /** `TASK_ENGINE_EGRESS` rules; default none (the fixed denials only). */
  egress?: string;
  /** Further configuration (e.g. `tracing`). */
  config?: Partial<EngineConfig>;
  /** The engine's process logger; default a silent one (or `logLevel`). */
  logger?: Logger;
}

/** A running test engine and shortcuts over it. */
export interface TestEngine {
  engine: Engine;
  db: Executor;
  catalog: WorkflowCatalog;
  /** Submits a job as {@link TEST_CLIENT} (admin) through the job service; returns its id. */
  submit(
    workflow: string,
    parameters?: Record<string, unknown>,
    job?: Record<string, unknown>,
  ): Promise<number>;
  /** Writes a setting and wakes admission (as `POST /settings` does). */
  setSetting(name: string, value: number | string): Promise<void>;
  /** The job's row (queue_state, failed, outputs …). */
  job(id: number): Promise<JobRow>;
  /** The job's tasks in definition order. */
  tasks(id: number): Promise<TaskRow[]>;
  /** The attempts of a task, by task name, in order. */
  attempts(jobId: number, taskName: string): Promise<AttemptRow[]>;
  /** The job's log messages in order. */
  logs(id: number): Promise<{ progname: string; message: string; task_id: number; severity: number }[]>;
  /** Waits until the job is in one of `states`; returns its row. */
  waitForState(id: number, states: string | string[], timeoutMs?: number): Promise<JobRow>;
  /** Stops the engine (idempotent). The store stays open. */
  stop(): Promise<void>;
}

export interface JobRow {
  id: number;
  queue_state: string;
  failed: boolean;
  outputs: Record<string, unknown> | null;
  error: string | null;
  started_at: Date | null;
  finished_at: Date | null;
  priority: number;
}
/** A task's output as tests read it: the exec handler's fields typed, anything else `unknown`. */
export interface TaskOutput {
  exit_code?: number;
  stdout?: string;
  stderr?: string;
  json?: unknown;
  [field: string]: unknown;
}
export interface TaskRow {
  id: number;
  name: string;
  state: string;
  attempts: number;
  /**
   * What the handler returned (exec: `exit_code`, `stdout`, `stderr`, `json`). Null in the database
   * until the task has an output; typed as present because tests read it once it has.
   */
  output: TaskOutput;
  error: string | null;
  started_at: Date | null;
  finished_at: Date | null;
}
export interface AttemptRow {
  id: number;
  number: number;
  state: string;
  error: string | null;
  started_at: Date;
  finished_at: Date | null;
  worker_id: string | null;
}

/** A configuration for tests (nothing read from the environment). */
export function testConfig(overrides: Partial<EngineConfig> = {}): EngineConfig {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'te-data-'));
  return {
    host: '127.0.0.1',
    port: 0,
    databaseUrl: null,
    dataDir,
    workflowsDir: path.join(ROOT, 'workflows'),
    storageRoot: path.join(dataDir, 'storage'),
    adminClient: null,
    adminApiKey: null,
    workerQueues: null,
    workerConcurrency: 4,
    // Tests load handlers when a task needs them; test/integration/handler-preload.test.ts covers preloading.
    preloadHandlers: false,
    roles: ['controller', 'worker'],
    logLevel: 'silent',
    logFormat: 'json',
    egress: '',
    shutdownGraceSeconds: 10,
    ...overrides,
  };
}

/** Writes settings directly (no validation) and wakes admission. */
export async function writeSettings(db: Executor, settings: Record<string, number | string>): Promise<void> {
  await db.transaction(async (tx) => {
    for (const [name, value] of Object.entries(settings))
      await tx.query(
        `INSERT INTO settings (name, value) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
        [name, String(value)],
      );
    await notify(tx, CHANNELS.admission, 'setting');
  });
}

/** Creates (and by default starts) an engine on `store`. Stop it in `after`. */
export async function startTestEngine(
  store: TestStore,
  options: TestEngineOptions = {},
): Promise<TestEngine> {
  const catalog = options.catalog ?? createFixtureCatalog(options.workflows ?? {});
  if (options.settings) await writeSettings(store.db, options.settings);
  const config = testConfig({
    databaseUrl: store.databaseUrl,
    workflowsDir: catalog.dir,
    roles: options.roles ?? ['controller', 'worker'],
    workerConcurrency: options.concurrency ?? 4,
    workerQueues: options.queues ?? null,
    egress: options.egress ?? '',
    ...options.config,
  });
  const engine = await createEngine(config, {
    db: store.db,
    catalog,
    logger: options.logger ?? pino({ level: options.logLevel ?? process.env.TEST_LOG_LEVEL ?? 'silent' }),
    shutdownGraceMs: 2_000,
    ...options.engine,
  });
  guardEngine(engine, `on ${store.kind}`);
  if (options.start !== false) await engine.start();
  return testEngineOver(engine, store.db, catalog);
}

/**
 * An engine on `store` that is never started: it submits jobs and runs recovery passes, as an API
 * node would, next to engine processes. Should a test start it, the leak guard watches it.
 */
export async function createIdleEngine(store: TestStore, catalog: WorkflowCatalog): Promise<Engine> {
  const engine = await createEngine(
    testConfig({ databaseUrl: store.databaseUrl, workflowsDir: catalog.dir }),
    {
      db: store.db,
      catalog,
      logger: pino({ level: 'silent' }),
    },
  );
  return guardEngine(engine, `(idle) on ${store.kind}`);
}

/**
 * Registers `engine` with the leak guard from `start()` until `stop()` has returned, so a test file
 * that leaves it running fails (see `leak-guard.ts`).
 */
export function guardEngine(engine: Engine, label: string): Engine {
  const start = engine.start.bind(engine);
  const stop = engine.stop.bind(engine);
  let untrack: (() => void) | null = null;
  engine.start = async () => {
    untrack ??= trackRunning('engine', `${engine.workerId} ${label}`, stop);
    await start();
  };
  engine.stop = async () => {
    await stop();
    untrack?.();
    untrack = null;
  };
  return engine;
}

/** Shortcuts over any engine and store. */
export function testEngineOver(engine: Engine, db: Executor, catalog: WorkflowCatalog): TestEngine {
  const job = async (id: number): Promise<JobRow> => {
    const { rows } = await db.query<JobRow>(
      `SELECT id, queue_state, failed, outputs, error, started_at, finished_at, priority FROM jobs WHERE id = $1`,
      [id],
    );
    if (!rows[0]) throw new Error(`job ${id} not found`);
    return rows[0];
  };
  return {
    engine,
    db,
    catalog,
    submit: (workflow, parameters = {}, jobFields = {}) => submitAs(engine, workflow, parameters, jobFields),
    setSetting: (name, value) => writeSettings(db, { [name]: value }),
    job,
    async tasks(id) {
      const { rows } = await db.query<TaskRow>(
        `SELECT id, name, state, attempts, output, error, started_at, finished_at FROM tasks WHERE job_id = $1 ORDER BY position`,
        [id],
      );
      return rows;
    },
    async attempts(jobId, taskName) {
      const { rows } = await db.query<AttemptRow>(
        `SELECT a.id, a.number, a.state, a.error, a.started_at, a.finished_at, a.worker_id
           FROM attempts a JOIN tasks t ON t.id = a.task_id
          WHERE a.job_id = $1 AND t.name = $2 ORDER BY a.number`,
        [jobId, taskName],
      );
      return rows;
    },
    async logs(id) {
      const { rows } = await db.query<{
        progname: string;
        message: string;
        task_id: number;
        severity: number;
      }>(`SELECT progname, message, task_id, severity FROM logs WHERE job_id = $1 ORDER BY id`, [id]);
      return rows;
    },
    async waitForState(id, states, timeoutMs = 15_000) {
      const wanted = Array.isArray(states) ? states : [states];
      return waitFor(
        async () => {
          const row = await job(id);
          return wanted.includes(row.queue_state) ? row : null;
        },
        { timeoutMs, intervalMs: 25, what: `job ${id} to be ${wanted.join('/')}` },
      );
    },
    stop: () => engine.stop(),
  };
}

/** Submits through the job service, as an admin test client. */
export async function submitAs(
  engine: Engine,
  workflow: string,
  parameters: Record<string, unknown> = {},
  job: Record<string, unknown> = {},
  client = TEST_CLIENT,
): Promise<number> {
  const { id } = await submitJob(
    engine.ctx,
    { client, admin: true },
    { job: { workflow, ...job }, parameters },
    { path: '/job', remoteAddr: '127.0.0.1', headers: {} },
  );
  return id;
}

/** A real engine child process (test/fixtures/engine-process.ts). */
export interface EngineProcess {
  child: ChildProcess;
  pid: number;
  /** Its stdout/stderr so far (for failure messages). */
  output(): string;
  /** Sends SIGTERM and waits for the exit (graceful stop). */
  stop(): Promise<number | null>;
  /** Sends SIGKILL and waits for the exit. */
  kill(): Promise<void>;
}

/**
 * Spawns `node --import tsx test/fixtures/engine-process.ts` against PostgreSQL `databaseUrl`,
 * with the fixture workflows in `workflowsDir` (written by `createFixtureCatalog`), and waits for
 * it to report `ready`.
 */
export async function spawnEngineProcess(options: {
  databaseUrl: string;
  workflowsDir: string;
  roles?: Role[];
  concurrency?: number;
  env?: Record<string, string>;
}): Promise<EngineProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'test/fixtures/engine-process.ts')],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        DATABASE_URL: options.databaseUrl,
        TASK_ENGINE_WORKFLOWS_DIR: options.workflowsDir,
        TASK_ENGINE_ROLES: (options.roles ?? ['controller', 'worker']).join(','),
        TASK_ENGINE_WORKER_CONCURRENCY: String(options.concurrency ?? 4),
        TASK_ENGINE_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'te-proc-')),
        TASK_ENGINE_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  const untrack = trackRunning(
    'engine process',
    `pid ${child.pid} (${(options.roles ?? ['controller', 'worker']).join(',')})`,
    () => {
      child.kill('SIGKILL');
    },
    child.pid,
  );
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      untrack();
      resolve(code);
    }),
  );
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ENGINE READY')) resolve();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    void exited.then((code) =>
      reject(new Error(`engine process exited with ${code} before it was ready:\n${out}`)),
    );
  });
  const timeout = setTimeout(() => child.kill('SIGKILL'), 30_000);
  try {
    await ready;
  } finally {
    clearTimeout(timeout);
  }
  return {
    child,
    pid: child.pid!,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Options of {@link spawnEngineProcess}. */
export type EngineProcessOptions = Parameters<typeof spawnEngineProcess>[0];

/**
 * The engine processes of one suite: `spawn()` starts one with the options `options()` gives at
 * that moment (so they may name a store created in `before`); `killAll()` (call it in `after`)
 * sends SIGKILL to every one still running. `procs` lists them in spawn order.
 */
export function engineProcessSpawner(options: () => EngineProcessOptions): {
  spawn: () => Promise<EngineProcess>;
  procs: EngineProcess[];
  killAll: () => Promise<void>;
} {
  const procs: EngineProcess[] = [];
  return {
    procs,
    spawn: async () => {
      const p = await spawnEngineProcess(options());
      procs.push(p);
      return p;
    },
    killAll: async () => {
      for (const p of procs) await p.kill();
    },
  };
}
