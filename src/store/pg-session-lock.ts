/**
 * Session advisory locks for a `pg` executor: each lock lives on its own dedicated connection, so
 * it is held exactly as long as that connection (a dropped connection loses it, and `held` says so).
 */
import pg from 'pg';
import type { SessionLock } from './executor.js';
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
  const res = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [key]);
  if (!res.rows[0]?.ok) {
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
      await client.query('SELECT pg_advisory_unlock($1)', [key]).catch(() => undefined);
      await client.end().catch(() => undefined);
    },
  };
}
