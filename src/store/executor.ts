/**
 * The database seam. Everything in the engine talks to PostgreSQL through this small interface,
 * implemented once over a `pg` pool (server mode) and once over embedded PGlite (embedded mode).
 * Nothing outside `src/store/` imports `pg` or PGlite.
 */

/** Rows returned by a statement, plus the number of rows it touched. */
export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

/** Anything that runs one parameterised statement: the executor itself or a transaction. */
export interface Queryable {
  /**
   * Runs one statement. Values travel only as `$n` parameters; callers never build SQL text
   * from request values.
   * @param sql - SQL text with `$1..$n` placeholders.
   * @param params - parameter values (JS numbers, strings, booleans, Dates, null, arrays, objects for jsonb).
   * @throws the driver's error (a `DatabaseError` with `code`) when the statement fails.
   */
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /**
   * Runs a script of several statements with no parameters (migrations, and the table upkeep's
   * `VACUUM`/`ANALYZE` of a table from a fixed list).
   * @throws the driver's error when a statement fails.
   */
  exec(sql: string): Promise<void>;
}

/** A session-level lock held on a dedicated connection until {@link SessionLock.release}. */
export interface SessionLock {
  /** Whether the connection that holds the lock is still alive (a dropped connection loses it). */
  readonly held: boolean;
  release(): Promise<void>;
}

/** The database handle shared by every part of one engine process. */
export interface Executor extends Queryable {
  /** `postgres` for a server reached with `pg`, `pglite` for the embedded database. */
  readonly kind: 'postgres' | 'pglite';
  /**
   * Runs `fn` in one transaction (READ COMMITTED). Commits when `fn` resolves, rolls back when it
   * throws and rethrows the error. On PGlite transactions are serialised, since it has one connection.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Subscribes to `NOTIFY` on `channel` (PGlite delivers in-process). Returns an unsubscribe function.
   * On a lost connection the `pg` implementation reconnects and re-subscribes.
   */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  /**
   * Tries to take the session advisory lock `key` without waiting. Returns null when another
   * session holds it. Used for leader election of the scheduler role.
   */
  tryLock(key: number): Promise<SessionLock | null>;
  /**
   * The connection pool's counts now (`pg` only; PGlite has one connection and leaves it out):
   * open connections, idle ones, requests waiting for one, and the pool's size.
   */
  poolStats?(): { total: number; idle: number; waiting: number; max: number };
  /** Closes every connection. Idempotent. */
  close(): Promise<void>;
}

/** Advisory lock keys used by the engine (one number space per database). */
export const LOCK_KEYS = {
  migrations: 7_310_001,
  admission: 7_310_002,
  // 7_310_003 was reserved for a controller leader lock (the controller is not leader-elected); left unused rather than reused.
  schedulerLeader: 7_310_004,
} as const;
