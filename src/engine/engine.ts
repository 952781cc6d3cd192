/**
 * Composing one engine process: its context and the services its roles run (SPEC sections 2, 3).
 */
import { createGuardedFetch } from './egress/guarded-fetch.js';
import { parseEgressRules } from './egress/rules.js';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { createLogger } from './logger.js';
import { createEngineTracing } from './tracing/tracing.js';
import type { EngineConfig } from '../config/schema.js';
import type { Executor } from '../store/executor.js';
import { reapOrphanedChildren } from '../process/child-registry.js';
import { openStore } from '../store/open-store.js';
import {
  markOtherWorkersStopped,
  markWorkerStopped,
  registerWorker,
  setWorkerQueues,
  touchWorkerHeartbeat,
} from '../store/queries/workers.js';
import { loadCatalog } from '../workflows/catalog.js';
import type { WorkflowCatalog } from '../workflows/types.js';
import { createCallbackDispatcher } from './callbacks/dispatcher.js';
import { systemClock, type Clock, type ClockTimer } from './clock.js';
import type { EngineContext, Service } from './context.js';
import { createController } from './controller/controller.js';
import { jobsOf, type EngineJobs, type JobsAs } from './jobs-api.js';
import { stopEventHub } from './events/hub.js';
import { recoverStalledAttempts } from './maintenance/recover-stalled.js';
import { createSchedulerService } from './scheduler/scheduler-service.js';
import { registerDbGauges } from './metrics/db-gauges.js';
import { createEngineMetrics } from './metrics/metrics.js';
import { timedExecutor } from './metrics/timed-executor.js';
import { repeatEvery } from './workers/repeat.js';
import { createWorkerPool, type WorkerPool } from './workers/worker-pool.js';

/** Options of {@link createEngine}; every field has a production default. */
export interface EngineOptions {
  /** An open, migrated store (not closed by `stop()`); default: opened from `config` and closed by `stop()`. */
  db?: Executor;
  clock?: Clock;
  /** Process logger; default pino at `config.logLevel`. */
  logger?: Logger;
  /** Loaded workflows; default `loadCatalog(config.workflowsDir)`. */
  catalog?: WorkflowCatalog;
  /** At `stop()`, how long running task attempts may go on before they are aborted and handed back (ms); default 10 000. */
  shutdownGraceMs?: number;
  /** Attempt and process heartbeat period (ms); default 2 000. Keep well under the `stall_timeout` setting. */
  heartbeatIntervalMs?: number;
  /** Workers' safety-net poll (ms); default 5 000. Work is normally found through NOTIFY. */
  workerPollIntervalMs?: number;
  /** Controller's safety-net admission period (ms); default 10 000. */
  admissionSafetyIntervalMs?: number;
  /** Least time between two writes of handlers' `ctx.progress` reports (ms); default 500. */
  progressIntervalMs?: number;
  /**
   * Whether a result write that makes tasks ready claims them for this process's workers in its
   * own transaction (the hand-off claim, docs/architecture.md "Workers"); default true.
   */
  handoffClaims?: boolean;
}

/** One engine process. */
export interface Engine {
  ctx: EngineContext;
  /** This process's row id in `workers`: `<hostname>:<pid>:<6 hex>`. */
  readonly workerId: string;
  /**
   * Starts the services of `config.roles` and registers the process in `workers`. Resolves once
   * they run. Calling it twice does nothing more.
   */
  start(): Promise<void>;
  /**
   * Stops gracefully and idempotently: no new work is claimed, running attempts may finish within
   * the grace period, then are aborted and handed back (attempt `cancelled` "worker shutdown", task
   * `ready` again without using a retry); the process's `workers` row gets `stopped_at`; open
   * `GET /events` streams are closed; a store opened by the engine is closed.
   */
  stop(): Promise<void>;
  /**
   * Cuts the grace period of a stop short (a second SIGTERM): the attempts still running are
   * aborted and handed back at once, and `stop()` goes on to its end. Harmless when not stopping
   * or when the process has no worker role.
   */
  hurry(): void;
  /**
   * The engine's jobs for in-process use, as client `as.client`: submit, submit many, read and
   * list, with the rules and errors of the HTTP API (see {@link EngineJobs}). Works before
   * `start()` too (submissions wait for a controller).
   */
  jobs(as: JobsAs): EngineJobs;
}

/** The engine's version, from package.json. */
export const ENGINE_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

/** The folder of the embedded database inside the data folder (the one the server opens too). */
export function embeddedStoreDir(config: Pick<EngineConfig, 'dataDir'>): string {
  return path.join(config.dataDir, 'pgdata');
}

/**
 * Creates an engine: builds its context (store, catalog, logger, clock, version) without starting
 * anything, so API-only uses (tests through `app.inject`) need no `start()`.
 *
 * Roles (`config.roles`): `controller` — admission on NOTIFY, at start and on a safety timer;
 * `worker` — task workers on `config.workerQueues ?? catalog.queues()` with
 * `config.workerConcurrency` slots, plus the callback dispatcher (queue `callback`); `scheduler` —
 * the schedules. `api` adds nothing here (the HTTP server is built by the caller).
 *
 * Without `config.workerQueues`, a successful catalog reload (`POST /workflows/reload`, SIGHUP)
 * that names new queues adds them to the running workers at once, and to this process's
 * `workers.queues` row. Queues no workflow names any more are still served until the process
 * restarts, so tasks already ready on them are never stranded.
 *
 * In embedded mode (PGlite) `start()` first recovers every attempt left `running` by a previous
 * process at once (only one process can own an embedded database), and marks its old `workers`
 * rows stopped.
 *
 * Before that (every mode), `start()` kills the child processes (`exec` programs, FFmpeg) that
 * dead engine processes of this host left running ({@link reapOrphanedChildren}), so a recovered
 * attempt never runs beside its predecessor's program.
 * @throws the store's connection error, or the catalog's error naming the bad workflow file.
 */
export async function createEngine(config: EngineConfig, opts: EngineOptions = {}): Promise<Engine> {
  const { ctx, ownsDb } = await openEngineContext(config, opts);
  return new EngineProcess(ctx, opts, ownsDb);
}

/**
 * Builds an engine's context: the store (opened from `config` unless given), the catalog, the
 * logger, the clock and the version.
 * @returns the context, and whether the engine owns (and so closes) the store.
 * @throws the store's connection error, or the catalog's error (a store opened here is closed again).
 */
async function openEngineContext(
  config: EngineConfig,
  opts: EngineOptions,
): Promise<{ ctx: EngineContext; ownsDb: boolean }> {
  const logger = opts.logger ?? createLogger({ level: config.logLevel, format: config.logFormat });
  const ownsDb = !opts.db;
  const db =
    opts.db ??
    (await openStore(
      config.databaseUrl ? { databaseUrl: config.databaseUrl } : { dataDir: embeddedStoreDir(config) },
      (err) => logger.error({ err }, 'database connection error'),
    ));
  let catalog: WorkflowCatalog;
  try {
    catalog = opts.catalog ?? (await loadCatalog(config.workflowsDir));
  } catch (err) {
    if (ownsDb) await db.close();
    throw err;
  }
  const egress = parseEgressRules(config.egress);
  // Metrics on (the default): statements are timed through a wrapped executor.
  const metrics = config.metrics === false ? undefined : createEngineMetrics();
  const ctxDb = metrics ? timedExecutor(db, metrics.queryDuration) : db;
  const ctx: EngineContext = {
    config,
    db: ctxDb,
    clock: opts.clock ?? systemClock,
    logger,
    catalog,
    version: ENGINE_VERSION,
    egress,
    fetch: createGuardedFetch(egress).fetch,
    ...(metrics ? { metrics } : {}),
    ...(config.tracing ? { tracing: createEngineTracing(config.tracing, ENGINE_VERSION, ctxDb) } : {}),
  };
  if (metrics)
    registerDbGauges(metrics, {
      db: ctx.db,
      clock: ctx.clock,
      queues: () => [...new Set(['work', ...ctx.catalog.queues()])],
    });
  return { ctx, ownsDb };
}

/** One engine process (see {@link createEngine}): its services, its `workers` row and its heartbeat. */
class EngineProcess implements Engine {
  readonly workerId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private readonly heartbeatMs: number;
  /** The services of the roles, in start order. */
  private services: Service[] = [];
  /** The worker pool, when the process has the worker role. */
  private pool: WorkerPool | null = null;
  /** The task queues the workers take now (without `callback`). */
  private servedQueues: string[] = [];
  private heartbeat: ClockTimer | null = null;
  private offReload: (() => void) | null = null;
  private started: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;

  constructor(
    readonly ctx: EngineContext,
    private readonly opts: EngineOptions,
    private readonly ownsDb: boolean,
  ) {
    this.heartbeatMs = opts.heartbeatIntervalMs ?? 2_000;
  }

  start(): Promise<void> {
    if (this.stopping) return Promise.reject(new Error('the engine was stopped; create a new one'));
    this.started ??= this.run();
    return this.started;
  }

  hurry(): void {
    this.pool?.hurry();
  }

  jobs(as: JobsAs): EngineJobs {
    return jobsOf(this.ctx, as);
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async run(): Promise<void> {
    const { config, db, logger, clock, catalog } = this.ctx;
    const roles = new Set(config.roles);
    await reapOrphanedChildren({ logger });
    if (db.kind === 'pglite') {
      await markOtherWorkersStopped.run(db, { id: this.workerId, now: clock.now() });
      const n = await recoverStalledAttempts(this.ctx, { all: true });
      if (n > 0) this.ctx.metrics?.stallsRecovered.inc(n);
      if (n > 0) logger.warn({ attempts: n }, 'recovered attempts left running by a previous engine process');
    }
    const queues = this.createServices(roles);
    await registerWorker.run(db, {
      id: this.workerId,
      queues,
      concurrency: roles.has('worker') ? config.workerConcurrency : 0,
      host: hostname(),
      pid: process.pid,
      roles: [...roles],
      now: clock.now(),
    });
    this.heartbeat = repeatEvery(clock, this.heartbeatMs, () => {
      touchWorkerHeartbeat
        .run(db, { id: this.workerId, now: clock.now() })
        .catch((err: unknown) => logger.warn({ err }, 'worker heartbeat failed'));
    });
    for (const s of this.services) await s.start();
    if (this.pool && !config.workerQueues) {
      this.offReload = catalog.onReload?.(() => this.takeNewQueues()) ?? null;
      await this.takeNewQueues(); // a reload that finished while the services started
    }
    logger.debug({ workerId: this.workerId, roles: [...roles], queues }, 'engine started');
  }

  /**
   * Creates the services of `roles` (not started): workers and the callback dispatcher, the
   * controller, the scheduler.
   * @returns the queues this process serves, as its `workers` row lists them.
   */
  private createServices(roles: ReadonlySet<string>): string[] {
    const { ctx, opts } = this;
    const queues: string[] = [];
    if (roles.has('worker')) {
      this.servedQueues = [...new Set(ctx.config.workerQueues ?? ctx.catalog.queues())];
      queues.push(...this.servedQueues);
      this.pool = createWorkerPool(ctx, {
        workerId: this.workerId,
        queues: this.servedQueues,
        concurrency: ctx.config.workerConcurrency,
        heartbeatIntervalMs: this.heartbeatMs,
        ...(opts.workerPollIntervalMs !== undefined ? { pollIntervalMs: opts.workerPollIntervalMs } : {}),
        shutdownGraceMs: opts.shutdownGraceMs ?? this.ctx.config.shutdownGraceSeconds * 1000,
        ...(opts.progressIntervalMs !== undefined ? { progressIntervalMs: opts.progressIntervalMs } : {}),
        ...(opts.handoffClaims !== undefined ? { handoffClaims: opts.handoffClaims } : {}),
        preloadHandlers: ctx.config.preloadHandlers !== false,
      });
      this.services.push(createCallbackDispatcher(ctx), this.pool);
      queues.push('callback');
    }
    if (roles.has('controller'))
      this.services.push(
        createController(ctx, {
          ...(opts.admissionSafetyIntervalMs !== undefined
            ? { safetyIntervalMs: opts.admissionSafetyIntervalMs }
            : {}),
        }),
      );
    if (roles.has('scheduler')) this.services.push(createSchedulerService(ctx));
    return queues;
  }

  /** After a reload: adds the catalog's new queues to the workers and to the `workers` row. */
  private async takeNewQueues(): Promise<void> {
    const { pool, ctx } = this;
    if (!pool || this.stopping) return;
    const added = ctx.catalog.queues().filter((q) => !this.servedQueues.includes(q));
    if (added.length === 0) return;
    this.servedQueues = [...this.servedQueues, ...added];
    pool.setQueues(this.servedQueues);
    ctx.logger.info(
      { added, queues: this.servedQueues },
      'workers take the new queues of the reloaded workflows',
    );
    await setWorkerQueues
      .run(ctx.db, { id: this.workerId, queues: [...this.servedQueues, 'callback'] })
      .catch((err: unknown) => ctx.logger.warn({ err }, "could not record the workers' new queues"));
  }

  private async shutdown(): Promise<void> {
    const { db, logger, clock } = this.ctx;
    if (this.started) await this.started.catch(() => undefined);
    this.offReload?.();
    this.offReload = null;
    // The `/events` streams end first (their clients reconnect elsewhere); the hub is only
    // created by a subscriber, whatever the roles.
    await stopEventHub(this.ctx).catch((err: unknown) =>
      logger.error({ err }, 'error while stopping the event hub'),
    );
    // Stop in reverse order: the controller and scheduler first, then the workers (which may
    // wait for running attempts), then the dispatcher, so callbacks enqueued by the last
    // results still get their chance in this process.
    for (const s of [...this.services].reverse()) {
      try {
        await s.stop();
      } catch (err) {
        logger.error({ err, service: s.name }, 'error while stopping a service');
      }
    }
    this.heartbeat?.cancel();
    this.heartbeat = null;
    if (this.started)
      await markWorkerStopped
        .run(db, { id: this.workerId, now: clock.now() })
        .catch((err: unknown) => logger.warn({ err }, 'could not mark the worker stopped'));
    // The job ends noted last are marked and their spans exported while the database is open.
    await this.ctx.tracing?.shutdown();
    if (this.ownsDb) await db.close();
    this.ctx.metrics?.close();
  }
}
