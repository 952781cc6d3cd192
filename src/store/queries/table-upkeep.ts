/**
 * Statements of the table upkeep (src/engine/maintenance/table-upkeep.ts): the engine vacuums and
 * analyses its own busy tables where nothing else does (embedded PGlite has no autovacuum daemon;
 * a server may run with `autovacuum = off`). Table names come from {@link UPKEEP_TABLES} only,
 * never from a request or the environment.
 */
import type { Executor } from '../executor.js';
import { defineQuery } from './define-query.js';

/**
 * The engine's tables that change with every job, in the order the upkeep looks at them: the ones
 * whose rows are updated and deleted (dead rows) and whose statistics the hot statements' plans
 * depend on.
 */
export const UPKEEP_TABLES = [
  'jobs',
  'tasks',
  'attempts',
  'logs',
  'events',
  'callback_deliveries',
  'job_search',
  'job_traces',
  'job_idempotency_keys',
  'job_state_counts',
  'task_state_counts',
  'state_count_deleted_jobs',
  'workers',
] as const;

/** One of {@link UPKEEP_TABLES}. */
export type UpkeepTable = (typeof UPKEEP_TABLES)[number];

/** What the statistics say about one table. */
export interface TableUpkeepStatsRow {
  table: string;
  /** Estimated live rows (`pg_stat_user_tables.n_live_tup`). */
  live_rows: number;
  /** Estimated dead rows (`n_dead_tup`). */
  dead_rows: number;
  /** Rows inserted, updated or deleted since the last analyse (`n_mod_since_analyze`). */
  modified_rows: number;
  /** The planner's row count (`pg_class.reltuples`); -1 before the first analyse (PostgreSQL 14+). */
  reltuples: number;
  /** Whether autovacuum would look after this table: the server's `autovacuum` on and the table's `autovacuum_enabled` not off. */
  autovacuum: boolean;
}

/**
 * Sends this session's pending statistics now (`pg_stat_force_next_flush()`, PostgreSQL 15+), so
 * the next read of the statistics views includes its own writes. Needed on PGlite, whose single
 * session otherwise flushes them only now and then; harmless on a server.
 */
export const flushOwnStatistics = defineQuery<Record<string, never>, { flushed: string }>(
  'flush-own-statistics',
  `SELECT pg_stat_force_next_flush()::text AS flushed`,
);

/**
 * Reads {@link TableUpkeepStatsRow} for `tables` in the current schema. A table that has never been
 * written since the server started has no statistics row and is left out. No locks.
 */
export const readTableUpkeepStats = defineQuery<{ tables: string[] }, TableUpkeepStatsRow>(
  'read-table-upkeep-stats',
  `SELECT s.relname AS "table",
          s.n_live_tup::float8 AS live_rows,
          s.n_dead_tup::float8 AS dead_rows,
          s.n_mod_since_analyze::float8 AS modified_rows,
          c.reltuples::float8 AS reltuples,
          (current_setting('autovacuum')::boolean
            AND NOT EXISTS (SELECT 1 FROM pg_options_to_table(c.reloptions) o
                             WHERE CASE WHEN o.option_name = 'autovacuum_enabled'
                                        THEN NOT o.option_value::boolean ELSE false END)) AS autovacuum
     FROM pg_stat_user_tables s
     JOIN pg_class c ON c.oid = s.relid
    WHERE s.schemaname = current_schema()
      AND s.relname = ANY($tables::text[])`,
);

/**
 * Runs `VACUUM (ANALYZE)` (`vacuum`) or `ANALYZE` (`analyze`) on one of the engine's tables, outside
 * any transaction (VACUUM cannot run inside one). Takes the table's `SHARE UPDATE EXCLUSIVE` lock:
 * on a server reads and writes go on meanwhile and a second VACUUM of the same table waits; on
 * PGlite's single connection every other statement waits for it.
 * @param db - the store (not a transaction handle).
 * @param table - one of {@link UPKEEP_TABLES}.
 * @param action - `vacuum` (dead rows and statistics) or `analyze` (statistics only).
 * @throws Error when `table` is not one of {@link UPKEEP_TABLES}; the driver's error otherwise.
 */
export async function upkeepTable(
  db: Executor,
  table: UpkeepTable,
  action: 'vacuum' | 'analyze',
): Promise<void> {
  if (!(UPKEEP_TABLES as readonly string[]).includes(table))
    throw new Error(`table upkeep: ${String(table)} is not one of the engine's tables`);
  await db.exec(action === 'vacuum' ? `VACUUM (ANALYZE) ${table}` : `ANALYZE ${table}`);
}
