/**
 * What the benchmarks share: the PostgreSQL server they run on, the URL of one of its databases,
 * a short-lived admin connection, and the no-op workflows most of them run.
 */
import pg from 'pg';

/**
 * The PostgreSQL server of a benchmark run: `BENCH_DATABASE_URL`, else `TEST_DATABASE_URL`, else
 * the local server's `test` database. Each benchmark creates and drops its own database on it.
 */
export const BENCH_BASE_URL =
  process.env.BENCH_DATABASE_URL ??
  process.env.TEST_DATABASE_URL ??
  'postgres://postgres@127.0.0.1:5432/test';

/** The URL of database `name` on {@link BENCH_BASE_URL}'s server. */
export function benchDatabaseUrl(name: string): string {
  const u = new URL(BENCH_BASE_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * Runs `fn` on a new connection to `url` and closes it afterwards (also when `fn` throws).
 * @throws what connecting or `fn` throws.
 */
export async function withPgClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/**
 * Runs one statement (CREATE/DROP DATABASE and the like) on a new connection to
 * {@link BENCH_BASE_URL}'s database. Statements are the bench's own text, never input.
 */
export async function adminQuery(sql: string): Promise<void> {
  await withPgClient(BENCH_BASE_URL, (c) => c.query(sql));
}

/** Workflows of one (`noop1`) and three sequential (`noop3`) tasks that do nothing (a 0 s sleep). */
export const NOOP_WORKFLOWS = {
  noop1: { tasks: [{ name: 'a', run: 'sleep', with: { seconds: 0 } }] },
  noop3: {
    tasks: [
      { name: 'a', run: 'sleep', with: { seconds: 0 } },
      { name: 'b', run: 'sleep', with: { seconds: 0 } },
      { name: 'c', run: 'sleep', with: { seconds: 0 } },
    ],
  },
};
