import { mkdir } from 'node:fs/promises';
import type { Executor } from './executor.js';
import { createPgExecutor } from './pg-executor.js';
import { createPgliteExecutor } from './pglite-executor.js';
import { migrate } from './migrate.js';

/** Where the store lives: a PostgreSQL server, or an embedded PGlite folder (or memory). */
export type StoreTarget = { databaseUrl: string } | { dataDir: string | null };

/**
 * Opens the store and brings its schema up to date.
 * @param target - `{databaseUrl}` for server mode; `{dataDir}` for embedded mode (`null` = in memory).
 * @throws the driver's connection error, or `DatabaseTooNewError`.
 */
export async function openStore(target: StoreTarget, onError?: (err: Error) => void): Promise<Executor> {
  let db: Executor;
  if ('databaseUrl' in target) {
    db = createPgExecutor({ connectionString: target.databaseUrl, ...(onError ? { onError } : {}) });
  } else {
    if (target.dataDir) await mkdir(target.dataDir, { recursive: true });
    db = await createPgliteExecutor(target.dataDir ? { dataDir: target.dataDir } : {});
  }
  try {
    await migrate(db);
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}
