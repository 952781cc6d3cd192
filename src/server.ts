/**
 * Starting a whole Task Engine process: open the store (embedded PGlite in the data folder when no
 * `DATABASE_URL` is set), create the engine, bootstrap the clients, build the API and listen (when
 * the process plays the `api` role), then start the engine's services.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { createLogger } from './engine/logger.js';
import { buildServer } from './api/build-server.js';
import { mediaToolWarnings } from './media/tool-check.js';
import type { EngineConfig } from './config/schema.js';
import { acquireDataDirLock, type DataDirLock } from './data-dir-lock.js';
import { ensureAdminClient, ensureDemoClient, type CreatedClient } from './engine/clients/clients.js';
import { type Clock, systemClock } from './engine/clock.js';
import { createEngine, embeddedStoreDir, type Engine } from './engine/engine.js';
import type { Executor } from './store/executor.js';
import { openStore } from './store/open-store.js';
import type { WorkflowCatalog } from './workflows/types.js';

/** Options of {@link startTaskEngine}. */
export interface StartTaskEngineOptions {
  /** Process logger; default a pino logger at `config.logLevel` writing JSON lines to stdout. */
  logger?: Logger;
  clock?: Clock;
  /** A loaded catalog; default: the engine loads `config.workflowsDir`. */
  catalog?: WorkflowCatalog;
  /** An open, migrated store; default: opened from the config (and closed by `stop()`). */
  db?: Executor;
  /** What the process is doing, recorded in the embedded data folder's lock; default `serve`. */
  purpose?: string;
}

/** What the start-up did to the clients table. */
export interface ClientBootstrap {
  /** The configured admin client, when `TASK_ENGINE_ADMIN_CLIENT` is set. */
  adminClient: string | null;
  /** `demo-client` with its key, when it was just created (print it once). */
  demoClient: CreatedClient | null;
}

/** A running engine process. */
export interface RunningTaskEngine {
  engine: Engine;
  app: FastifyInstance;
  /** Base URL of the API (e.g. `http://127.0.0.1:3000`), or null when the process has no `api` role. */
  url: string | null;
  bootstrap: ClientBootstrap;
  /** Stops the API, the engine's services, the store, and frees the data folder. Idempotent. */
  stop(): Promise<void>;
}

/** The folder of the embedded PGlite database inside the data folder (the engine's own choice). */
export const embeddedDatabaseDir = embeddedStoreDir;

/**
 * Opens the store that `config` names: PostgreSQL when `databaseUrl` is set, else the embedded
 * database, after taking the data folder's lock.
 * @returns the store and the lock to release after closing it (null in server mode).
 * @throws `DataDirInUseError` when another process holds the embedded data folder; the driver's
 * error when the database cannot be reached; `DatabaseTooNewError`.
 */
export async function openConfiguredStore(
  config: EngineConfig,
  purpose: string,
  onError?: (err: Error) => void,
): Promise<{ db: Executor; lock: DataDirLock | null }> {
  if (config.databaseUrl)
    return { db: await openStore({ databaseUrl: config.databaseUrl }, onError), lock: null };
  const lock = await acquireDataDirLock(config.dataDir, purpose);
  try {
    return { db: await openStore({ dataDir: embeddedDatabaseDir(config) }, onError), lock };
  } catch (err) {
    await lock.release();
    throw err;
  }
}

/**
 * Creates the configured admin client, or on an embedded store with no admin client at all,
 * `demo-client` (SPEC section 3).
 */
export async function bootstrapClients(
  db: Executor,
  config: EngineConfig,
  clock: Clock = systemClock,
): Promise<ClientBootstrap> {
  if (config.adminClient && config.adminApiKey) {
    await ensureAdminClient(db, config.adminClient, config.adminApiKey, clock);
    return { adminClient: config.adminClient, demoClient: null };
  }
  if (db.kind === 'pglite') return { adminClient: null, demoClient: await ensureDemoClient(db, clock) };
  return { adminClient: null, demoClient: null };
}

/**
 * Starts a Task Engine process as `config` says (SPEC sections 2 and 3).
 * @throws `DataDirInUseError`, a store error, a workflow catalog error (naming the file), or the
 * listen error (e.g. `EADDRINUSE`); whatever was started before the failure is stopped again.
 */
export async function startTaskEngine(
  config: EngineConfig,
  opts: StartTaskEngineOptions = {},
): Promise<RunningTaskEngine> {
  const logger = opts.logger ?? createLogger({ level: config.logLevel, format: config.logFormat });
  const cleanups: (() => Promise<void>)[] = [];
  const runCleanups = async (): Promise<void> => {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        logger.error({ err }, 'error while stopping');
      }
    }
  };
  try {
    let db = opts.db;
    let lock: DataDirLock | null = null;
    if (!db) {
      const opened = await openConfiguredStore(config, opts.purpose ?? 'serve', (err) =>
        logger.error({ err }, 'database connection error'),
      );
      const owned = opened.db;
      lock = opened.lock;
      if (lock) cleanups.push(lock.release.bind(lock));
      cleanups.push(() => owned.close());
      db = owned;
    }
    const engine = await createEngine(config, {
      db,
      logger,
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.catalog ? { catalog: opts.catalog } : {}),
    });
    cleanups.push(() => engine.stop());
    const bootstrap = await bootstrapClients(db, config, engine.ctx.clock);
    const app = buildServer(engine.ctx);
    // Cleanups run in reverse: the API closes first (no new requests), then the engine's services,
    // then the store, then the data folder's lock.
    cleanups.push(() => app.close());
    await app.ready();
    await engine.start();
    let url: string | null = null;
    if (config.roles.includes('api')) {
      await app.listen({ host: config.host, port: config.port });
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : config.port;
      const wildcard = config.host === '0.0.0.0' || config.host === '::';
      const host = wildcard ? '127.0.0.1' : config.host.includes(':') ? `[${config.host}]` : config.host;
      url = `http://${host}:${port}`;
      if (lock) await lock.setUrl(url);
      logger.info({ url, roles: config.roles, store: db.kind }, 'Task Engine listening');
    } else logger.info({ roles: config.roles, store: db.kind }, 'Task Engine started');
    if (config.roles.includes('worker'))
      void mediaToolWarnings().then((warnings) => {
        for (const w of warnings) logger.warn(w);
      });

    let stopping: Promise<void> | null = null;
    return {
      engine,
      app,
      url,
      bootstrap,
      stop() {
        stopping ??= runCleanups();
        return stopping;
      },
    };
  } catch (err) {
    await runCleanups();
    throw err;
  }
}
