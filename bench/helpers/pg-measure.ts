/**
 * Measuring what a workload costs a PostgreSQL database (and a Redis server) on this host, for the
 * benches that compare systems: scratch databases, VACUUM, the table counters of
 * `pg_stat_user_tables`, the WAL one database wrote (through `pg_walinspect`), and the CPU time of
 * the server processes read from `/proc` (Linux only; 0 elsewhere).
 */
import { readdirSync, readFileSync } from 'node:fs';
import type pg from 'pg';
import { BENCH_BASE_URL, benchDatabaseUrl, withPgClient } from './bench-setup.js';

/** The server the benches use, and the URL of one of its databases (see bench-setup.ts). */
export { BENCH_BASE_URL as BASE_URL, benchDatabaseUrl as urlFor } from './bench-setup.js';

/** Runs `fn` on a fresh connection to `url` (default the {@link BASE_URL} database), then closes it. */
export function withClient<T>(fn: (c: pg.Client) => Promise<T>, url = BENCH_BASE_URL): Promise<T> {
  return withPgClient(url, fn);
}

function assertIdentifier(name: string): void {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name ${name} is not a plain identifier`);
}

/**
 * Drops database `name` (closing its connections) and creates it empty, with `pg_walinspect`
 * installed when the server has it (for {@link walOfDatabase}). Returns its URL.
 */
export async function recreateDatabase(name: string): Promise<string> {
  assertIdentifier(name);
  await withClient(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${name}`);
  });
  const url = benchDatabaseUrl(name);
  await withClient(async (c) => {
    await c.query(`CREATE EXTENSION IF NOT EXISTS pg_walinspect`).catch(() => undefined);
  }, url);
  return url;
}

/** Drops database `name` if it exists. */
export async function dropDatabase(name: string): Promise<void> {
  assertIdentifier(name);
  await withClient((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).then(() => undefined));
}

/** `VACUUM (ANALYZE)` of every table of the database at `url`. */
export async function vacuum(url: string): Promise<void> {
  await withClient((c) => c.query('VACUUM (ANALYZE)').then(() => undefined), url);
}

/** Runs `ANALYZE` on the whole database at `url` (statistics only: no vacuum). */
export async function analyze(url: string): Promise<void> {
  await withClient((c) => c.query('ANALYZE').then(() => undefined), url);
}

/** Sums over the user tables of one database (`pg_stat_user_tables`). */
export interface TableCounters {
  inserted: number;
  updated: number;
  hotUpdated: number;
  deleted: number;
}

/**
 * Waits until no backend other than this one is connected to database `name` (so every backend
 * that worked in it has exited and, in exiting, flushed its table counters), then reads the sums
 * of `pg_stat_user_tables` there. Counters are flushed by a backend at most once a second while
 * it lives and always when it exits, so the workload's connections must be closed before this.
 */
export async function tableCounters(name: string, timeoutMs = 15_000): Promise<TableCounters> {
  return withClient(async (c) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await c.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
        [name],
      );
      if (Number(rows[0]!.n) === 0 || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await c.query('SELECT pg_stat_clear_snapshot()');
    const { rows } = await c.query<{ ins: string; upd: string; hot: string; del: string }>(
      `SELECT coalesce(sum(n_tup_ins), 0) AS ins, coalesce(sum(n_tup_upd), 0) AS upd,
              coalesce(sum(n_tup_hot_upd), 0) AS hot, coalesce(sum(n_tup_del), 0) AS del
         FROM pg_stat_user_tables`,
    );
    const r = rows[0]!;
    return { inserted: +r.ins, updated: +r.upd, hotUpdated: +r.hot, deleted: +r.del };
  }, benchDatabaseUrl(name));
}

/** The difference `after - before` of two {@link TableCounters}. */
export function countersDelta(before: TableCounters, after: TableCounters): TableCounters {
  return {
    inserted: after.inserted - before.inserted,
    updated: after.updated - before.updated,
    hotUpdated: after.hotUpdated - before.hotUpdated,
    deleted: after.deleted - before.deleted,
  };
}

/** The server's current WAL insert position (`pg_current_wal_lsn()`), as text. */
export async function currentLsn(): Promise<string> {
  return withClient(async (c) => {
    const { rows } = await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    return rows[0]!.lsn;
  });
}

/** WAL written between two positions: by the whole server, and by one database. */
export interface WalBytes {
  /** `pg_wal_lsn_diff(to, from)`: everything the server wrote, other databases included. */
  server: number;
  /**
   * The records that touch a block of the database, plus the records (commits among them) of the
   * transactions that wrote such a record; null when `pg_walinspect` is not available.
   */
  database: number | null;
}

/**
 * Measures the WAL written from `from` to `to` (LSNs from {@link currentLsn}). The per-database
 * figure reads the WAL records of the range with `pg_walinspect` (installed by
 * {@link recreateDatabase}), so other databases' writes on a shared server are left out.
 */
export async function walOfDatabase(name: string, from: string, to: string): Promise<WalBytes> {
  return withClient(async (c) => {
    const { rows } = await c.query<{ d: string }>(`SELECT pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn) AS d`, [
      from,
      to,
    ]);
    const server = Number(rows[0]!.d);
    try {
      const { rows: w } = await c.query<{ mine: string | null }>(
        `WITH r AS (
           SELECT xid, record_length, block_ref FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
         ), db AS (SELECT '%/' || oid::text || '/%' AS pat FROM pg_database WHERE datname = current_database()),
         touched AS (
           SELECT r.xid, r.record_length, (r.block_ref LIKE db.pat) AS here FROM r, db
         ), xids AS (SELECT DISTINCT xid FROM touched WHERE here AND xid <> '0'::xid)
         SELECT sum(record_length) AS mine FROM touched
          WHERE here OR (xid <> '0'::xid AND xid IN (SELECT xid FROM xids))`,
        [from, to],
      );
      return { server, database: Number(w[0]!.mine ?? 0) };
    } catch {
      return { server, database: null };
    }
  }, benchDatabaseUrl(name));
}

const TICK_MS = 1000 / 100; // USER_HZ is 100 on Linux

/** utime + stime of process `pid` in ms, or null when it cannot be read (gone, not Linux). */
export function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return null;
  }
}

/** The pids of the processes whose command name (`/proc/<pid>/comm`) is `comm`. */
export function pidsNamed(comm: string): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/comm`, 'utf8').trim() === comm) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * CPU time of a set of server processes over a measurement. `pids()` names the processes to count
 * at a moment; it is called at the start, every `everyMs` and at the end, and every process seen
 * is counted from its first sighting (its CPU before that is subtracted only if it was there at
 * the start) to its last reading. So backends that open and close during the run are counted.
 */
export class CpuMeter {
  private readonly start = new Map<number, number>();
  private readonly last = new Map<number, number>();
  private timer: NodeJS.Timeout | null = null;
  private sampling: Promise<void> = Promise.resolve();

  private constructor(private readonly pids: () => Promise<number[]> | number[]) {}

  /** Starts measuring; call {@link stop} to get the CPU ms used since. */
  static async begin(pids: () => Promise<number[]> | number[], everyMs = 250): Promise<CpuMeter> {
    const m = new CpuMeter(pids);
    for (const pid of await pids()) {
      const ms = processCpuMs(pid);
      if (ms !== null) {
        m.start.set(pid, ms);
        m.last.set(pid, ms);
      }
    }
    m.timer = setInterval(() => {
      m.sampling = m.sampling.then(() => m.sample()).catch(() => undefined);
    }, everyMs);
    return m;
  }

  private async sample(): Promise<void> {
    for (const pid of await this.pids()) {
      const ms = processCpuMs(pid);
      if (ms !== null) this.last.set(pid, ms);
    }
  }

  /** Stops and returns the CPU ms the processes used since {@link begin}. */
  async stop(): Promise<number> {
    if (this.timer) clearInterval(this.timer);
    await this.sampling;
    await this.sample();
    let total = 0;
    for (const [pid, ms] of this.last) total += ms - (this.start.get(pid) ?? 0);
    return total;
  }
}

/**
 * The pids of the PostgreSQL processes that work for database `name`: its backends (autovacuum
 * workers included) and the server's background processes (WAL writer, checkpointer, background
 * writer), which serve every database. Other databases' backends are left out, so helpers and
 * tests running on the same server do not count. Uses `c`, an open connection to any database.
 */
export async function postgresPidsFor(c: pg.Client, name: string): Promise<number[]> {
  const { rows } = await c.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity
      WHERE (datname = $1 AND pid <> pg_backend_pid())
         OR backend_type IN ('walwriter', 'checkpointer', 'background writer', 'autovacuum launcher')`,
    [name],
  );
  return rows.map((r) => r.pid);
}
