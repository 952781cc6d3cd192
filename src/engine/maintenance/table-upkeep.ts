/**
 * Table upkeep: the engine vacuums and analyses its own busy tables (jobs, tasks, attempts, logs,
 * events, …) where nothing else does. Every job updates and deletes rows; PostgreSQL reclaims the
 * dead ones and refreshes the planner's statistics through autovacuum. Embedded PGlite runs no
 * autovacuum daemon at all, and a server may run with `autovacuum = off` (or a table with
 * `autovacuum_enabled = false`): there, without upkeep, dead rows pile up in the claim and
 * admission indexes and the plans of a fresh database stay those of empty tables, and throughput
 * falls run after run (bench/RESULTS.md, "Table upkeep").
 *
 * Run by the scheduler leader (one process at a time), every {@link TABLE_UPKEEP_INTERVAL_MS}.
 * `TASK_ENGINE_TABLE_UPKEEP` (docs/configuration.md): `auto` (default) acts only on tables that
 * autovacuum does not look after; `off` never acts.
 */
import type { Logger } from 'pino';
import type { Executor } from '../../store/executor.js';
import {
  UPKEEP_TABLES,
  flushOwnStatistics,
  readTableUpkeepStats,
  upkeepTable,
  type TableUpkeepStatsRow,
  type UpkeepTable,
} from '../../store/queries/table-upkeep.js';
import type { ClockTimer } from '../clock.js';
import type { EngineContext } from '../context.js';
import { BackgroundWork } from '../scheduler/background.js';

/** From election to the first pass (ms): soon, so a fresh database gets statistics early. */
export const TABLE_UPKEEP_FIRST_IN_MS = 5_000;

/** How often the scheduler leader looks at the statistics (ms). */
export const TABLE_UPKEEP_INTERVAL_MS = 30_000;

/**
 * The thresholds, PostgreSQL's own autovacuum defaults (PostgreSQL manual, "Routine Vacuuming",
 * "The Autovacuum Daemon": `autovacuum_vacuum_threshold` 50, `autovacuum_vacuum_scale_factor`
 * 0.2, `autovacuum_analyze_threshold` 50, `autovacuum_analyze_scale_factor` 0.1): a table is
 * vacuumed when its dead rows exceed `50 + 0.2 × reltuples`, analysed when the rows changed since
 * the last analyse exceed `50 + 0.1 × reltuples`. (The insert threshold of PostgreSQL 13+ is left
 * out: inserts alone leave no dead rows, and the analyse rule covers their statistics.)
 */
export const UPKEEP_THRESHOLDS = {
  vacuumBase: 50,
  vacuumScale: 0.2,
  analyzeBase: 50,
  analyzeScale: 0.1,
} as const;

/** Passes a table is left out after its VACUUM or ANALYZE failed (10 × 30 s = 5 minutes). */
export const FAILED_TABLE_SKIP_PASSES = 10;

/** `TASK_ENGINE_TABLE_UPKEEP`. */
export type TableUpkeepMode = 'auto' | 'off';

/** One step the upkeep takes. */
export interface UpkeepStep {
  table: UpkeepTable;
  /** `vacuum` = `VACUUM (ANALYZE)`; `analyze` = `ANALYZE` alone. */
  action: 'vacuum' | 'analyze';
  /** Why, in words, for the process log. */
  reason: string;
}

/**
 * Decides which tables to vacuum or analyse from their statistics (pure).
 * @param rows - the statistics of the engine's tables ({@link readTableUpkeepStats}).
 * @param options.noDaemon - true when no autovacuum daemon runs whatever the settings say (PGlite).
 * @returns the steps, in {@link UPKEEP_TABLES} order; a table autovacuum looks after gets none.
 */
export function planTableUpkeep(rows: TableUpkeepStatsRow[], options: { noDaemon: boolean }): UpkeepStep[] {
  const steps: UpkeepStep[] = [];
  const byName = new Map(rows.map((r) => [r.table, r]));
  for (const table of UPKEEP_TABLES) {
    const r = byName.get(table);
    if (!r || (r.autovacuum && !options.noDaemon)) continue;
    const tuples = Math.max(0, r.reltuples);
    const vacuumAt = UPKEEP_THRESHOLDS.vacuumBase + UPKEEP_THRESHOLDS.vacuumScale * tuples;
    const analyzeAt = UPKEEP_THRESHOLDS.analyzeBase + UPKEEP_THRESHOLDS.analyzeScale * tuples;
    if (r.dead_rows > vacuumAt)
      steps.push({
        table,
        action: 'vacuum',
        reason: `${Math.round(r.dead_rows)} dead rows (threshold ${Math.round(vacuumAt)})`,
      });
    else if (r.modified_rows > analyzeAt)
      steps.push({
        table,
        action: 'analyze',
        reason: `${Math.round(r.modified_rows)} rows changed since the last analyse (threshold ${Math.round(analyzeAt)})`,
      });
  }
  return steps;
}

/** What one upkeep pass did. */
export interface UpkeepPass {
  steps: Array<UpkeepStep & { ms: number }>;
  /** Steps whose statement failed (logged at warn); the pass went on with the next table. */
  failed: Array<{ table: UpkeepTable; error: string }>;
}

/**
 * One upkeep pass: reads the tables' statistics (on PGlite after flushing its session's own), and runs the planned
 * `VACUUM (ANALYZE)` / `ANALYZE` statements one table at a time (each its own statement outside a
 * transaction; on a server reads and writes of the table go on meanwhile, on PGlite's single
 * connection every other statement waits for each step).
 * @param db - the store.
 * @param log - the process log; each step is logged at info with its reason and time.
 * @param shouldGoOn - checked before each step (false once leadership is lost or the engine stops).
 * @param skip - tables to leave out of this pass (the loop's back-off after a failure).
 * @throws the driver's error when the statistics cannot be read; a failing step is logged and
 *   reported in `failed`, and the pass goes on.
 */
export async function runTableUpkeep(
  db: Executor,
  log: Logger,
  shouldGoOn: () => boolean = () => true,
  skip?: ReadonlySet<UpkeepTable>,
): Promise<UpkeepPass> {
  if (db.kind === 'pglite') await flushOwnStatistics.first(db, {});
  const rows = await readTableUpkeepStats.rows(db, { tables: [...UPKEEP_TABLES] });
  const planned = planTableUpkeep(rows, { noDaemon: db.kind === 'pglite' });
  const steps: UpkeepPass['steps'] = [];
  const failed: UpkeepPass['failed'] = [];
  for (const step of planned) {
    if (!shouldGoOn()) break;
    if (skip?.has(step.table)) continue;
    const t0 = performance.now();
    try {
      await upkeepTable(db, step.table, step.action);
    } catch (err) {
      // One table's failure (a statement_timeout, a lock) must not keep the others from their turn.
      failed.push({ table: step.table, error: (err as Error).message });
      log.warn(
        { err, table: step.table, action: step.action },
        `table upkeep: ${step.action} of ${step.table} failed`,
      );
      continue;
    }
    const ms = Math.round(performance.now() - t0);
    steps.push({ ...step, ms });
    log.info(
      { table: step.table, action: step.action, duration_ms: ms },
      `table upkeep: ${step.action === 'vacuum' ? 'vacuumed' : 'analysed'} ${step.table} (${step.reason})`,
    );
  }
  return { steps, failed };
}

/** The upkeep loop of the scheduler leader. */
export interface TableUpkeepService {
  /** Starts the timer (on election): a first pass after {@link TABLE_UPKEEP_FIRST_IN_MS}, then one every interval. */
  start(): void;
  /** Stops the timer (on lost leadership); a pass in progress ends after its current step. */
  cancel(): void;
  /** Stops the timer and waits for a pass in progress. */
  stop(): Promise<void>;
}

/**
 * Creates the upkeep loop. With `mode` `off` it never runs.
 * @param ctx - engine context (`db`, `clock`).
 * @param log - the scheduler's process log.
 * @param options.isLeader - whether this process leads the scheduler now.
 * @param options.mode - `TASK_ENGINE_TABLE_UPKEEP`.
 * @param options.intervalMs - between passes; default {@link TABLE_UPKEEP_INTERVAL_MS}.
 */
export function createTableUpkeep(
  ctx: EngineContext,
  log: Logger,
  options: { isLeader: () => boolean; mode: TableUpkeepMode; intervalMs?: number },
): TableUpkeepService {
  const background = new BackgroundWork(log, 'table upkeep');
  const intervalMs = options.intervalMs ?? TABLE_UPKEEP_INTERVAL_MS;
  let timer: ClockTimer | null = null;
  let running = false;
  let stopped = false;
  let generation = 0;
  /** Passes made, and per failed table the pass count up to which it is left out. */
  let passes = 0;
  const backoff = new Map<UpkeepTable, number>();

  const cancel = (): void => {
    generation += 1;
    timer?.cancel();
    timer = null;
  };

  const arm = (ms: number, gen: number): void => {
    if (stopped || gen !== generation || !options.isLeader()) return;
    timer = ctx.clock.setTimeout(() => {
      timer = null;
      pass(gen);
    }, ms);
  };

  const pass = (gen: number): void => {
    if (stopped || gen !== generation || !options.isLeader()) return;
    if (running) {
      // A pass of an earlier leadership is still going (its re-arm will be dropped): try later.
      arm(intervalMs, gen);
      return;
    }
    running = true;
    const skip = new Set([...backoff].filter(([, until]) => until > passes).map(([t]) => t));
    passes += 1;
    background.track(
      runTableUpkeep(ctx.db, log, () => !stopped && gen === generation && options.isLeader(), skip)
        .then((done) => {
          for (const f of done.failed) backoff.set(f.table, passes + FAILED_TABLE_SKIP_PASSES);
        })
        .finally(() => {
          running = false;
          arm(intervalMs, gen);
        }),
    );
  };

  return {
    start() {
      if (options.mode === 'off') return;
      stopped = false;
      cancel();
      arm(Math.min(TABLE_UPKEEP_FIRST_IN_MS, intervalMs), generation);
    },
    cancel,
    async stop() {
      stopped = true;
      cancel();
      await background.drain();
    },
  };
}
