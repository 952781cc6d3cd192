/**
 * What one job writes, on PostgreSQL (a fresh `te_bench_writes` database): N one-task no-op jobs
 * and then M three-task no-op jobs, each workload submitted in process beforehand and then run by
 * one engine (controller and worker roles, `BENCH_CONCURRENCY` worker slots, max_jobs 200).
 *
 * Per job it prints, from the differences of two readings taken around the workload (the engine's
 * connections closed first, so every backend has flushed its counters; the database vacuumed
 * before the first reading):
 * - rows inserted, updated, HOT-updated and deleted per table (`pg_stat_user_tables`);
 * - WAL bytes: the whole server's (`pg_current_wal_lsn` difference; other databases on the same
 *   server count too) and the part of it whose records touch this database's relations
 *   (`pg_walinspect`, by the records' block references);
 * - statements the engine sent (counted at its `Executor`), transactions it ran, and commits
 *   (`pg_stat_database.xact_commit`);
 * - jobs/s from engine start to the last job's end, and CPU per job (engine process + backends).
 *
 * `npm run bench writes`, or `node --import tsx bench/writes.bench.ts`. Environment:
 * `BENCH_DATABASE_URL` (default TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test),
 * `BENCH_DATABASE_NAME` (the database made afresh, default te_bench_writes),
 * `BENCH_WRITES_JOBS` (one-task jobs, default 2000), `BENCH_WRITES_JOBS3` (three-task jobs,
 * default 500), `BENCH_CONCURRENCY` (default 50), `BENCH_SHOW_LOG=1` (print one job's log lines).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { createEngine } from '../src/engine/engine.js';
import { CHANNELS } from '../src/engine/signals.js';
import type { Executor, Queryable } from '../src/store/executor.js';
import { openStore } from '../src/store/open-store.js';
import { submitAs, testConfig, writeSettings } from '../test/helpers/engine.js';
import { createFixtureCatalog } from '../test/helpers/fixture-catalog.js';
import { BENCH_BASE_URL, NOOP_WORKFLOWS, benchDatabaseUrl, withPgClient } from './helpers/bench-setup.js';

const BASE_URL = BENCH_BASE_URL;
const DB_NAME = process.env.BENCH_DATABASE_NAME ?? 'te_bench_writes';
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const JOBS1 = Number(process.env.BENCH_WRITES_JOBS ?? 2000);
const JOBS3 = Number(process.env.BENCH_WRITES_JOBS3 ?? 500);

const catalog = createFixtureCatalog(NOOP_WORKFLOWS);

const urlFor = benchDatabaseUrl;

const withClient = withPgClient;

/** Counts the statements and transactions an executor runs (its own and inside transactions). */
function counting(db: Executor): { db: Executor; statements: () => number; transactions: () => number } {
  let statements = 0;
  let transactions = 0;
  const wrapTx = (tx: Queryable): Queryable => ({
    query: (sql, params) => {
      statements++;
      return tx.query(sql, params);
    },
    exec: (sql) => tx.exec(sql),
  });
  const wrapped: Executor = Object.create(db) as Executor;
  Object.assign(wrapped, {
    query: (sql: string, params?: readonly unknown[]) => {
      statements++;
      return db.query(sql, params);
    },
    transaction: <T>(fn: (tx: Queryable) => Promise<T>) => {
      transactions++;
      return db.transaction((tx) => fn(wrapTx(tx)));
    },
  });
  return { db: wrapped, statements: () => statements, transactions: () => transactions };
}

interface TableStats {
  ins: number;
  upd: number;
  hot: number;
  del: number;
}
interface Reading {
  tables: Map<string, TableStats>;
  lsn: string;
  commits: number;
}

async function read(url: string): Promise<Reading> {
  return withClient(url, async (c) => {
    await c.query('SELECT pg_stat_force_next_flush()');
    await c.query('SELECT pg_stat_clear_snapshot()');
    const t = await c.query<{ relname: string; ins: string; upd: string; hot: string; del: string }>(
      `SELECT relname, n_tup_ins AS ins, n_tup_upd AS upd, n_tup_hot_upd AS hot, n_tup_del AS del
         FROM pg_stat_user_tables`,
    );
    const d = await c.query<{ lsn: string; commits: string }>(
      `SELECT pg_current_wal_lsn()::text AS lsn, xact_commit AS commits
         FROM pg_stat_database WHERE datname = current_database()`,
    );
    const tables = new Map<string, TableStats>();
    for (const r of t.rows) tables.set(r.relname, { ins: +r.ins, upd: +r.upd, hot: +r.hot, del: +r.del });
    return { tables, lsn: d.rows[0]!.lsn, commits: Number(d.rows[0]!.commits) };
  });
}

/** WAL between two LSNs: the server's bytes, and the bytes of records touching this database. */
async function walBetween(
  url: string,
  from: string,
  to: string,
): Promise<{ all: number; ours: number; byRelation: { rel: string; bytes: number }[] }> {
  return withClient(url, async (c) => {
    let byRelation: { rel: string; bytes: number }[] = [];
    const all = await c.query<{ n: string }>(`SELECT pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn) AS n`, [
      from,
      to,
    ]);
    let ours = NaN;
    try {
      const r = await c.query<{ n: string | null }>(
        `WITH r AS (SELECT xid, record_length, block_ref, resource_manager
                      FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)),
              ours AS (SELECT * FROM r
                        WHERE block_ref LIKE '%/' || (SELECT oid FROM pg_database WHERE datname = current_database()) || '/%')
         SELECT (SELECT sum(record_length) FROM ours)
                + (SELECT COALESCE(sum(record_length), 0) FROM r
                    WHERE resource_manager = 'Transaction' AND xid <> '0' AND xid IN (SELECT xid FROM ours)) AS n`,
        [from, to],
      );
      ours = Number(r.rows[0]!.n ?? 0);
      // Each record counted once, under the relation of its first block reference.
      const b = await c.query<{ rel: string; bytes: string }>(
        `WITH r AS (SELECT record_length, substring(block_ref FROM 'rel [0-9]+/([0-9]+)/([0-9]+)') AS db,
                           substring(block_ref FROM 'rel [0-9]+/[0-9]+/([0-9]+)') AS node
                      FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn) WHERE block_ref IS NOT NULL)
         SELECT COALESCE(c.relname, 'relfilenode ' || r.node) AS rel, sum(r.record_length) AS bytes
           FROM r LEFT JOIN pg_class c ON c.relfilenode::text = r.node
          WHERE r.db = (SELECT oid::text FROM pg_database WHERE datname = current_database())
          GROUP BY 1 ORDER BY 2 DESC LIMIT 14`,
        [from, to],
      );
      byRelation = b.rows.map((x) => ({ rel: x.rel, bytes: Number(x.bytes) }));
    } catch {
      // pg_walinspect not available: only the server-wide figure
    }
    return { all: Number(all.rows[0]!.n), ours, byRelation };
  });
}

/** CPU ms used so far by this database's backends (Linux /proc; last known time for gone ones). */
async function serverCpuMs(url: string, known: Map<number, number>): Promise<number> {
  const pids = await withClient(url, async (c) => {
    const r = await c.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`,
    );
    return r.rows.map((x) => x.pid);
  });
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      known.set(pid, ((Number(f[11]) + Number(f[12])) * 1000) / 100);
    } catch {
      // gone, or not Linux
    }
  }
  let ms = 0;
  for (const v of known.values()) ms += v;
  return ms;
}

async function waitForEnded(db: Executor, target: number): Promise<void> {
  const count = async () =>
    Number(
      (
        await db.query<{ n: string }>(
          `SELECT count(*) AS n FROM jobs WHERE queue_state IN ('completed', 'broken')`,
        )
      ).rows[0]!.n,
    );
  let ended = 0;
  let wake: (() => void) | null = null;
  const un = await db.listen(CHANNELS.jobEnded, () => {
    ended++;
    if (ended >= target) wake?.();
  });
  try {
    while (ended < target || (await count()) < target) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 1000);
      });
      if (ended < target) ended = Math.max(ended, await count());
    }
  } finally {
    await un();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function workload(url: string, workflow: 'noop1' | 'noop3', n: number): Promise<string> {
  await withClient(url, (c) => c.query('TRUNCATE jobs CASCADE'));
  await withClient(url, (c) => c.query('VACUUM ANALYZE'));
  await sleep(300);
  const before = await read(url);
  const store = await openStore({ databaseUrl: url });
  const counted = counting(store);
  const db = counted.db;
  const engine = await createEngine(
    testConfig({ databaseUrl: url, workflowsDir: catalog.dir, workerConcurrency: CONCURRENCY }),
    { db, catalog, logger: pino({ level: 'silent' }) },
  );
  for (let i = 0; i < n; i++) await submitAs(engine, workflow);
  const pids = new Map<number, number>();
  const pg0 = await serverCpuMs(url, pids);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await engine.start();
  await waitForEnded(store, n);
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const pg1 = await serverCpuMs(url, pids);
  await engine.stop();
  if (process.env.BENCH_SHOW_LOG) {
    const { rows } = await store.query<{
      task_id: number;
      progname: string;
      message: string;
      visible: boolean;
    }>(
      `SELECT task_id, progname, message, visible FROM logs WHERE job_id = (SELECT min(id) FROM jobs) ORDER BY id`,
    );
    console.log(rows);
  }
  await store.close();
  await sleep(1200);
  const after = await read(url);
  const wal = await walBetween(url, before.lsn, after.lsn);
  const lines: string[] = [];
  let ins = 0;
  let upd = 0;
  let hot = 0;
  for (const [name, b] of [...after.tables].sort()) {
    const a = before.tables.get(name) ?? { ins: 0, upd: 0, hot: 0, del: 0 };
    const d = { ins: b.ins - a.ins, upd: b.upd - a.upd, hot: b.hot - a.hot, del: b.del - a.del };
    if (!d.ins && !d.upd && !d.del) continue;
    ins += d.ins;
    upd += d.upd;
    hot += d.hot;
    lines.push(
      `    ${name.padEnd(22)} ins ${(d.ins / n).toFixed(2).padStart(6)}  upd ${(d.upd / n).toFixed(2).padStart(6)}  hot ${(d.hot / n).toFixed(2).padStart(6)}  del ${(d.del / n).toFixed(2).padStart(6)}`,
    );
  }
  const engineMs = (cpu.user + cpu.system) / 1000;
  return [
    `${workflow}: ${n} jobs, ${CONCURRENCY} worker slots: ${(n / secs).toFixed(0)} jobs/s (run phase ${secs.toFixed(1)} s)`,
    `  per job: rows inserted ${(ins / n).toFixed(2)}, updated ${(upd / n).toFixed(2)} (HOT ${(hot / n).toFixed(2)}), written ${((ins + upd) / n).toFixed(2)}`,
    `  WAL per job: ${(wal.all / n / 1024).toFixed(2)} KB server-wide, ${(wal.ours / n / 1024).toFixed(2)} KB in this database's records`,
    `  statements per job ${(counted.statements() / n).toFixed(2)}, transactions ${(counted.transactions() / n).toFixed(2)}, commits ${((after.commits - before.commits) / n).toFixed(2)} (pg_stat_database, includes the readings)`,
    `  CPU per job (run phase): engine ${(engineMs / n).toFixed(3)} ms + backends ${((pg1 - pg0) / n).toFixed(3)} ms`,
    ...lines,
    `  WAL per job by relation (bytes): ${wal.byRelation.map((x) => `${x.rel} ${(x.bytes / n).toFixed(0)}`).join(', ')}`,
  ].join('\n');
}

async function main(): Promise<void> {
  await withClient(BASE_URL, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${DB_NAME}`);
  });
  const url = urlFor(DB_NAME);
  const setup = await openStore({ databaseUrl: url });
  await writeSettings(setup, { max_jobs: 200, priority_slots: 0 });
  await setup.close();
  await withClient(url, (c) => c.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect')).catch(
    () => undefined,
  );
  console.log(`load average ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
  if (JOBS1 > 0) console.log(await workload(url, 'noop1', JOBS1));
  if (JOBS3 > 0) console.log(await workload(url, 'noop3', JOBS3));
  console.log(`load average ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
}

await main();
