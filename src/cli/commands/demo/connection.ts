/**
 * Which engine the demo talks to: the one at `--url` (or `TASK_ENGINE_URL`), the local engine
 * that holds the data folder when credentials are given, or else the embedded engine started in
 * this process on a free port, with a client {@link DEMO_MEDIA_CLIENT} whose key is issued afresh.
 */
import path from 'node:path';
import { createLogger } from '../../../engine/logger.js';
import { loadConfig } from '../../../config/load-config.js';
import { readDataDirHolder } from '../../../data-dir-lock.js';
import { createClient, revokeClient } from '../../../engine/clients/clients.js';
import { isEngineError } from '../../../errors/catalogue.js';
import { startTaskEngine, type RunningTaskEngine } from '../../../server.js';
import type { ApiConnection } from '../../http-client.js';
import { CliError, type CliIO } from '../../io.js';
import type { DemoOptions } from './types.js';

/** The client the embedded demo submits as. */
export const DEMO_MEDIA_CLIENT = 'demo-media';

/** The engine the demo uses; `running` is set when the demo started it (and must stop it). */
export interface DemoEngine {
  running: RunningTaskEngine | null;
  conn: ApiConnection;
  storageRoot: string;
}

/**
 * Finds or starts the engine to use, and says which on `io`.
 * @throws CliError (exit 2) when credentials are missing for a given or running engine.
 */
export async function connectDemoEngine(io: CliIO, opts: DemoOptions): Promise<DemoEngine> {
  const client = opts.client ?? io.env.TASK_ENGINE_CLIENT;
  const apiKey = opts.apiKey ?? io.env.TASK_ENGINE_API_KEY;
  const baseConfig = loadConfig(io.env);
  let url = opts.url ?? io.env.TASK_ENGINE_URL;
  if (!url) {
    const holder = await readDataDirHolder(baseConfig.dataDir).catch(() => null);
    if (holder?.url) {
      if (!client || !apiKey)
        throw new CliError(
          `an engine is already running on ${baseConfig.dataDir} (${holder.url}); pass --client and --api-key to use it, or stop it`,
          2,
        );
      url = holder.url;
    }
  }
  if (url) {
    if (!client || !apiKey)
      throw new CliError(
        '--url needs --client and --api-key (or TASK_ENGINE_CLIENT and TASK_ENGINE_API_KEY)',
        2,
      );
    const conn = { url: url.replace(/\/+$/, ''), client, apiKey };
    const storageRoot = path.resolve(opts.storageRoot ?? baseConfig.storageRoot);
    io.out(`using the engine at ${conn.url} as ${client} (storage ${storageRoot})`);
    return { running: null, conn, storageRoot };
  }
  const embedded = await startEmbedded(io);
  io.out(`engine listening on ${embedded.conn.url}`);
  return embedded;
}

/** Starts the embedded engine with a fresh key for {@link DEMO_MEDIA_CLIENT}. */
async function startEmbedded(io: CliIO): Promise<DemoEngine & { running: RunningTaskEngine }> {
  const config = loadConfig({ ...io.env, TASK_ENGINE_PORT: '0', TASK_ENGINE_HOST: '127.0.0.1' });
  const logger = createLogger({
    level: io.env.TASK_ENGINE_LOG_LEVEL ?? 'warn',
    format: config.logFormat,
    fd: 2,
  });
  io.out(`starting the embedded engine (data folder ${config.dataDir})…`);
  const running = await startTaskEngine(config, { logger, purpose: 'demo' });
  const db = running.engine.ctx.db;
  let created;
  try {
    created = await createClient(db, { name: DEMO_MEDIA_CLIENT });
  } catch (err) {
    if (!isEngineError(err, 'CONFLICT')) throw err;
    // The demo's own client from an earlier run: issue it a new key.
    await revokeClient(db, DEMO_MEDIA_CLIENT);
    created = await createClient(db, { name: DEMO_MEDIA_CLIENT });
  }
  return {
    running,
    conn: { url: running.url!, client: created.name, apiKey: created.api_key },
    storageRoot: config.storageRoot,
  };
}
