import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Executor, Queryable, QueryResult, SessionLock } from './executor.js';

/** Most distinct statement texts prepared per executor (a bound on server-side memory). */
const MAX_PREPARED = 500;

// int8 (count(*), bigserial ids) as JS numbers: ids stay far below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

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
 * An {@link Executor} over a `pg` connection pool (server mode).
 * `listen` and `tryLock` each use a dedicated client outside the pool.
 */
export function createPgExecutor(options: PgExecutorOptions): Executor {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    application_name: 'task-engine',
  });
  const onError = options.onError ?? (() => undefined);
  pool.on('error', onError);
  let closed = false;
  const extraClients = new Set<pg.Client>();

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

  // One LISTEN connection for every channel, re-established when it drops.
  const listeners = new Map<string, Set<(payload: string) => void>>();
  let listenClient: pg.Client | null = null;
  let listenConnecting: Promise<pg.Client> | null = null;

  const connectListener = async (): Promise<pg.Client> => {
    if (listenClient) return listenClient;
    if (listenConnecting) return listenConnecting;
    listenConnecting = (async () => {
      const client = new pg.Client({
        connectionString: options.connectionString,
        application_name: 'task-engine-listen',
      });
      client.on('error', (err) => {
        onError(err);
      });
      client.on('notification', (msg) => {
        const set = listeners.get(msg.channel);
        if (!set) return;
        for (const fn of set) fn(msg.payload ?? '');
      });
      client.on('end', () => {
        extraClients.delete(client);
        if (listenClient === client) listenClient = null;
        if (!closed && listeners.size > 0) {
          // Reconnect after a short pause and re-subscribe to every channel.
          setTimeout(() => {
            if (closed) return;
            connectListener()
              .then(async (c) => {
                for (const ch of listeners.keys()) await c.query(`LISTEN ${quoteIdent(ch)}`);
              })
              .catch(onError);
          }, 500).unref();
        }
      });
      await client.connect();
      extraClients.add(client);
      listenClient = client;
      return client;
    })();
    try {
      return await listenConnecting;
    } finally {
      listenConnecting = null;
    }
  };

  return {
    kind: 'postgres',
    query: (sql, params) => run(pool, sql, params),
    exec: async (sql) => {
      await pool.query(sql);
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
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
        client.release();
      }
    },
    async listen(channel, onNotify) {
      let set = listeners.get(channel);
      const first = !set;
      if (!set) {
        set = new Set();
        listeners.set(channel, set);
      }
      set.add(onNotify);
      if (first) {
        const client = await connectListener();
        await client.query(`LISTEN ${quoteIdent(channel)}`);
      }
      return async () => {
        const s = listeners.get(channel);
        if (!s) return;
        s.delete(onNotify);
        if (s.size === 0) {
          listeners.delete(channel);
          if (listenClient)
            await listenClient.query(`UNLISTEN ${quoteIdent(channel)}`).catch(() => undefined);
        }
      };
    },
    async tryLock(key) {
      const client = new pg.Client({
        connectionString: options.connectionString,
        application_name: 'task-engine-lock',
      });
      let held = true;
      client.on('error', (err) => {
        held = false;
        onError(err);
      });
      client.on('end', () => {
        held = false;
        extraClients.delete(client);
      });
      await client.connect();
      extraClients.add(client);
      const res = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [key]);
      if (!res.rows[0]?.ok) {
        await client.end().catch(() => undefined);
        return null;
      }
      const lock: SessionLock = {
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
      return lock;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const c of extraClients) await c.end().catch(() => undefined);
      extraClients.clear();
      await pool.end().catch(() => undefined);
    },
  };
}

/** Quotes a channel name as an SQL identifier (channels are engine constants, never request values). */
function quoteIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`invalid channel name: ${name}`);
  return `"${name}"`;
}
