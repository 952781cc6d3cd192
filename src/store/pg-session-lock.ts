/**
 * Session advisory locks for a `pg` executor: each lock lives on its own dedicated connection, so
 * it is held exactly as long as that connection (a dropped connection loses it, and `held` says so).
 */
import pg from 'pg';
import type { Queryable, SessionLock } from './executor.js';
import { releaseAdvisoryLock, tryAdvisoryLock } from './queries/session-locks.js';
import { ENGINE_PG_TYPES } from './pg-types.js';

/** What {@link tryPgSessionLock} needs. */
export interface PgSessionLockOptions {
  connectionString: string;
  /** Called with errors of the lock's connection (they must not crash the process). */
  onError: (err: Error) => void;
  /** Tracks the lock's connection while it is open, so the executor's close() can end it. */
  clients: Set<pg.Client>;
}

/**
 * Tries to take the session advisory lock `key` without waiting, on a new connection.
 * @returns the lock, or null when another session holds it (the connection is then closed).
 * @throws the driver's error when the connection cannot be opened.
 */
export async function tryPgSessionLock(
  key: number,
  options: PgSessionLockOptions,
): Promise<SessionLock | null> {
  const client = new pg.Client({
    connectionString: options.connectionString,
    application_name: 'task-engine-lock',
    types: ENGINE_PG_TYPES,
  });
  let held = true;
  client.on('error', (err) => {
    held = false;
    options.onError(err);
  });
  client.on('end', () => {
    held = false;
    options.clients.delete(client);
  });
  await client.connect();
  options.clients.add(client);
  const q = clientQueryable(client);
  if (!(await tryAdvisoryLock.first(q, { key }))?.ok) {
    await client.end().catch(() => undefined);
    return null;
  }
  return {
    get held() {
      return held;
    },
    async release() {
      if (!held) return;
      held = false;
      await releaseAdvisoryLock.run(q, { key }).catch(() => undefined);
      await client.end().catch(() => undefined);
    },
  };
}

/** The lock's connection as a {@link Queryable}, for the statements of `queries/session-locks.ts`. */
function clientQueryable(client: pg.Client): Queryable {
  return {
    async query<R>(sql: string, params?: readonly unknown[]) {
      const res = await client.query(sql, params as unknown[] | undefined);
      return { rows: res.rows as R[], rowCount: res.rowCount ?? 0 };
    },
    async exec(sql: string) {
      await client.query(sql);
    },
  };
}
