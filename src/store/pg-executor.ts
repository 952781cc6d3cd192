import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Executor, Queryable, QueryResult } from './executor.js';
import { createPgListener } from './pg-listener.js';
import { tryPgSessionLock } from './pg-session-lock.js';
import { ENGINE_PG_TYPES } from './pg-types.js';

/** Most distinct statement texts prepared per executor (a bound on server-side memory). */
const MAX_PREPARED = 500;

/** Options for {@link createPgExecutor}. */
export interface PgExecutorOptions {
  /** PostgreSQL connection string, e.g. `postgres://127.0.0.1:5432/test`. */
  connectionString: string;
  /** Pool size; default 10. */
  max?: number;
  /** Called with errors of idle connections (they must not crash the process). */
  onError?: (err: Error) => void;
}

/**
 * The server options the engine's pooled connections start with (libpq's `options`, sent in the
 * startup packet, so no extra round trip): `-c jit=off` unless the connection string sets
 * `options` itself, which then wins unchanged.
 *
 * Why JIT is off: the engine's statements are short and run as prepared statements; once
 * PostgreSQL switches one to a generic plan on large tables, the plan's cost estimate can cross
 * `jit_above_cost` and every execution then compiles the plan again (measured: a result read went
 * from under 1 ms to 662 ms per execution at about 36,000 tasks). See docs/configuration.md.
 *
 * @param connectionString - a `postgres://` URL or a libpq key/value string.
 * @returns the `options` value, or `undefined` when the connection string carries its own.
 */
export function connectionOptions(connectionString: string): string | undefined {
  if (/(?:[?&]|^|\s)options=/.test(connectionString)) return undefined;
  return '-c jit=off';
}

/**
 * An {@link Executor} over a `pg` connection pool (server mode). `listen` uses one dedicated
 * connection outside the pool (`pg-listener.ts`), each `tryLock` one of its own
 * (`pg-session-lock.ts`). Every connection parses values with {@link ENGINE_PG_TYPES}.
 */
export function createPgExecutor(options: PgExecutorOptions): Executor {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    application_name: 'task-engine',
    types: ENGINE_PG_TYPES,
    options: connectionOptions(options.connectionString),
  });
  const onError = options.onError ?? (() => undefined);
  pool.on('error', onError);
  let closed = false;
  // The connections of session locks still held (each lock has its own).
  const lockClients = new Set<pg.Client>();

  // Statements with parameters run as named prepared statements: each connection parses and
  // plans a statement text once, which matters for the engine's hot paths (claims, results,
  // admission). Names come from the text; past MAX_PREPARED distinct texts, statements run unnamed.
  const names = new Map<string, string>();
  const nameOf = (sql: string): string | undefined => {
    let n = names.get(sql);
    if (n === undefined && names.size < MAX_PREPARED) {
      n = `te_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`;
      names.set(sql, n);
    }
    return n;
  };
  const run = async <R>(q: pg.Pool | pg.PoolClient | pg.Client, sql: string, params?: readonly unknown[]) => {
    const name = params && params.length > 0 ? nameOf(sql) : undefined;
    const res = name
      ? await q.query({ name, text: sql, values: params as unknown[] })
      : await q.query(sql, params as unknown[] | undefined);
    return { rows: res.rows as R[], rowCount: res.rowCount ?? 0 } satisfies QueryResult<R>;
  };

  const listener = createPgListener({ connectionString: options.connectionString, onError });

  return {
    kind: 'postgres',
    query: (sql, params) => run(pool, sql, params),
    exec: async (sql) => {
      await pool.query(sql);
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      // A checked-out client has no listener of the pool's: a connection dropped while the
      // transaction waits between statements would otherwise be an unhandled 'error' event (the
      // process would exit). The broken connection is then discarded, not returned to the pool.
      let broken: Error | undefined;
      const onClientError = (err: Error): void => {
        broken = err;
        onError(err);
      };
      client.on('error', onClientError);
      try {
        await client.query('BEGIN');
        const tx: Queryable = {
          query: (sql, params) => run(client, sql, params),
          exec: async (sql) => {
            await client.query(sql);
          },
        };
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.removeListener('error', onClientError);
        client.release(broken);
      }
    },
    listen: (channel, onNotify) => listener.listen(channel, onNotify),
    poolStats: () => ({
      total: pool.totalCount,
      idle: pool.idleCount,
      waiting: pool.waitingCount,
      max: options.max ?? 10,
    }),
    tryLock: (key) =>
      tryPgSessionLock(key, { connectionString: options.connectionString, onError, clients: lockClients }),
    async close() {
      if (closed) return;
      closed = true;
      await listener.close();
      for (const c of lockClients) await c.end().catch(() => undefined);
      lockClients.clear();
      await pool.end().catch(() => undefined);
    },
  };
}
