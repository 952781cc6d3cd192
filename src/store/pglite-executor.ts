import { PGlite, types } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import type { Executor, Queryable, QueryResult, SessionLock } from './executor.js';

/** Options for {@link createPgliteExecutor}. */
export interface PgliteExecutorOptions {
  /** Folder for the database files; omit for an in-memory database (tests). */
  dataDir?: string;
  /** A data-folder dump (from {@link dumpPgliteExecutor}) to start from instead of an empty database. */
  loadDataDir?: Blob | File;
}

const dumps = new WeakMap<Executor, () => Promise<Blob | File>>();

/** Dumps an in-memory PGlite database so later databases can start from a copy of it (fast test setup). */
export async function dumpPgliteExecutor(db: Executor): Promise<Blob | File> {
  const dump = dumps.get(db);
  if (!dump) throw new Error('not a PGlite executor');
  return dump();
}

/**
 * An {@link Executor} over embedded PGlite (embedded mode). PGlite has a single connection, so
 * transactions are serialised through a promise chain (each one after a turn of the event loop),
 * and a failed statement inside a
 * transaction is always followed by ROLLBACK so the connection is never left aborted.
 * `tryLock` always succeeds: one process owns an embedded database.
 */
export async function createPgliteExecutor(options: PgliteExecutorOptions = {}): Promise<Executor> {
  const db = await PGlite.create({
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
    extensions: { pg_trgm },
    parsers: { [types.INT8]: (v: string) => Number(v) },
  });
  let closed = false;
  // Serialises whole transactions against each other and against single statements.
  let chain: Promise<unknown> = Promise.resolve();
  const enqueue = <T>(work: () => Promise<T>): Promise<T> => {
    // PGlite works inside this thread and answers through promises alone, so a run of statements
    // would keep timers, I/O and setImmediate callbacks waiting until the run ends. Each unit of
    // work first lets them run: handlers that end meanwhile then reach the result writer together
    // and share one transaction, instead of one transaction each.
    const yielded = (): Promise<T> => new Promise<void>((resolve) => setImmediate(resolve)).then(work);
    const next = chain.then(yielded, yielded);
    chain = next.catch(() => undefined);
    return next;
  };

  const run = async <R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> => {
    const res = await db.query<R>(sql, params ? normaliseParams(params) : undefined);
    return { rows: res.rows, rowCount: res.affectedRows ?? res.rows.length };
  };

  const executor: Executor = {
    kind: 'pglite',
    query: (sql, params) => enqueue(() => run(sql, params)),
    exec: (sql) =>
      enqueue(async () => {
        await db.exec(sql);
      }),
    transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return enqueue(async () => {
        await db.exec('BEGIN');
        try {
          const tx: Queryable = {
            query: (sql, params) => run(sql, params),
            exec: async (sql) => {
              await db.exec(sql);
            },
          };
          const result = await fn(tx);
          await db.exec('COMMIT');
          return result;
        } catch (err) {
          await db.exec('ROLLBACK').catch(() => undefined);
          throw err;
        }
      });
    },
    async listen(channel, onNotify) {
      const unsub = await db.listen(channel, (payload) => onNotify(payload));
      return async () => {
        if (!closed) await unsub();
      };
    },
    tryLock(): Promise<SessionLock> {
      let held = true;
      return Promise.resolve({
        get held() {
          return held && !closed;
        },
        release() {
          held = false;
          return Promise.resolve();
        },
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      await chain.catch(() => undefined);
      await db.close();
    },
  };
  dumps.set(executor, () => enqueue(() => db.dumpDataDir('none')));
  return executor;
}

// PGlite serialises plain objects and arrays of objects itself only for json columns it knows; to
// keep one behaviour across drivers, objects are sent as JSON text (both drivers cast text to jsonb).
function normaliseParams(params: readonly unknown[]): unknown[] {
  return params.map((p) =>
    p !== null && typeof p === 'object' && !(p instanceof Date) && !Array.isArray(p) ? JSON.stringify(p) : p,
  );
}
