/**
 * Gauges of the shared state, read from the database at scrape time: one statement
 * ({@link readMetricsSnapshot}) whose answer is kept for {@link SNAPSHOT_TTL_MS}, so scrapes at
 * any rate cost at most one bounded, index-only read every few seconds.
 *
 * Every engine process on one database reports the same values for these gauges: aggregate them
 * with `max` (never `sum`) across instances (docs/observability.md).
 */
import { readMetricsSnapshot, type MetricsSnapshotRow } from '../../store/queries/metrics.js';
import type { Executor } from '../../store/executor.js';
import type { Clock } from '../clock.js';
import { readSettings } from '../settings.js';
import { scrapeGauge, type EngineMetrics } from './metrics.js';

/** How long one database snapshot serves scrapes (ms). */
export const SNAPSHOT_TTL_MS = 5_000;

/** A worker registration counts as alive while it heart-beat within this many seconds (as `/health`). */
const ALIVE_SECONDS = 30;

/** The live job states a gauge reports (finished ones are counted by `task_engine_jobs_finished_total`). */
export const LIVE_JOB_STATES = ['queued', 'started', 'scheduled', 'paused', 'pending'] as const;

interface Snapshot {
  row: MetricsSnapshotRow;
  maxJobs: number;
  prioritySlots: number;
}

/** What {@link registerDbGauges} needs of the engine. */
export interface DbGaugeSource {
  db: Executor;
  clock: Clock;
  /** The task queues to report even when empty (the catalog's, plus `work`). */
  queues(): readonly string[];
}

/**
 * Adds the database gauges to `metrics.registry`: `task_engine_jobs{state}`,
 * `task_engine_slots_used`, `task_engine_max_jobs`, `task_engine_priority_slots`,
 * `task_engine_queue_depth{queue}` (ready tasks), `task_engine_tasks_running{queue}`,
 * `task_engine_workers{queue}` (alive processes serving the queue, `callback` included),
 * `task_engine_callback_backlog{state}`, `task_engine_callback_oldest_due_seconds`,
 * `task_engine_attempts_reporting_progress`, and the pool gauges `task_engine_db_pool_connections{state}`
 * (in-process, `pg` only). A failed read leaves the database gauges out of that scrape (and
 * `task_engine_db_snapshot_up` 0) rather than failing it.
 */
export function registerDbGauges(metrics: EngineMetrics, src: DbGaugeSource): void {
  let cached: { at: number; value: Promise<Snapshot | null> } | null = null;
  const snapshot = (): Promise<Snapshot | null> => {
    const now = performance.now();
    if (cached && now - cached.at < SNAPSHOT_TTL_MS) return cached.value;
    const value = (async (): Promise<Snapshot | null> => {
      try {
        const [row, settings] = await Promise.all([
          readMetricsSnapshot.first(src.db, { now: src.clock.now(), aliveSeconds: ALIVE_SECONDS }),
          readSettings(src.db),
        ]);
        if (!row) return null;
        return { row, maxJobs: settings.known.max_jobs, prioritySlots: settings.known.priority_slots };
      } catch {
        return null;
      }
    })();
    cached = { at: now, value };
    return value;
  };
  const reg = metrics.registry;
  const withSnapshot =
    <L extends string>(
      fill: (s: Snapshot, set: (labels: Partial<Record<L, string>>, v: number) => void) => void,
    ) =>
    async (g: import('prom-client').Gauge<L>): Promise<void> => {
      g.reset();
      const s = await snapshot();
      if (s) fill(s, (labels, v) => g.set(labels, v));
    };

  scrapeGauge(
    reg,
    'task_engine_db_snapshot_up',
    'Whether the last read of the database gauges answered (1) or not (0).',
    [],
    async (g) => {
      g.set((await snapshot()) ? 1 : 0);
    },
  );
  scrapeGauge(
    reg,
    'task_engine_jobs',
    'Jobs in each live state (queued, started, scheduled, paused, pending), engine-wide from the database.',
    ['state'],
    withSnapshot<'state'>((s, set) => {
      for (const state of LIVE_JOB_STATES) set({ state }, s.row.jobs?.find((j) => j.state === state)?.n ?? 0);
    }),
  );
  scrapeGauge(
    reg,
    'task_engine_slots_used',
    'Job slots held (started jobs, and paused ones with a task still running), engine-wide.',
    [],
    withSnapshot((s, set) => set({}, s.row.slots_used)),
  );
  scrapeGauge(
    reg,
    'task_engine_max_jobs',
    'The max_jobs setting.',
    [],
    withSnapshot((s, set) => set({}, s.maxJobs)),
  );
  scrapeGauge(
    reg,
    'task_engine_priority_slots',
    'The priority_slots setting (slots reserved for priority jobs).',
    [],
    withSnapshot((s, set) => set({}, s.prioritySlots)),
  );
  const taskCount = (s: Snapshot, queue: string, state: string): number =>
    s.row.tasks?.find((t) => t.queue === queue && t.state === state)?.n ?? 0;
  const queuesOf = (s: Snapshot): string[] =>
    [...new Set([...src.queues(), ...(s.row.tasks ?? []).map((t) => t.queue)])].sort();
  scrapeGauge(
    reg,
    'task_engine_queue_depth',
    'Ready tasks waiting for a worker, per queue, engine-wide.',
    ['queue'],
    withSnapshot<'queue'>((s, set) => {
      for (const queue of queuesOf(s)) set({ queue }, taskCount(s, queue, 'ready'));
    }),
  );
  scrapeGauge(
    reg,
    'task_engine_tasks_running',
    'Running tasks per queue, engine-wide.',
    ['queue'],
    withSnapshot<'queue'>((s, set) => {
      for (const queue of queuesOf(s)) set({ queue }, taskCount(s, queue, 'running'));
    }),
  );
  scrapeGauge(
    reg,
    'task_engine_workers',
    'Alive engine processes (heartbeat within 30 s) serving each queue, callback included, engine-wide.',
    ['queue'],
    withSnapshot<'queue'>((s, set) => {
      const workers = s.row.workers ?? [];
      for (const queue of [...queuesOf(s), 'callback'])
        set({ queue }, workers.filter((w) => w.queues.includes(queue)).length);
    }),
  );
  scrapeGauge(
    reg,
    'task_engine_callback_backlog',
    'Callback deliveries due and not yet sent (due) or being sent (delivering), engine-wide.',
    ['state'],
    withSnapshot<'state'>((s, set) => {
      set({ state: 'due' }, s.row.callbacks_due);
      set({ state: 'delivering' }, s.row.callbacks_delivering);
    }),
  );
  scrapeGauge(
    reg,
    'task_engine_callback_oldest_due_seconds',
    'Seconds the oldest due callback delivery has waited (0 when none), engine-wide.',
    [],
    withSnapshot((s, set) => set({}, Number(s.row.callbacks_oldest_due_seconds))),
  );
  scrapeGauge(
    reg,
    'task_engine_attempts_reporting_progress',
    'Running tasks whose attempt has reported progress, engine-wide.',
    [],
    withSnapshot((s, set) => set({}, s.row.progress_reporting)),
  );
  const pool = src.db.poolStats?.bind(src.db);
  if (pool)
    scrapeGauge(
      reg,
      'task_engine_db_pool_connections',
      "This process's database pool: open, idle, waiting (requests queued for a connection) and max.",
      ['state'],
      (g) => {
        const p = pool();
        g.set({ state: 'open' }, p.total);
        g.set({ state: 'idle' }, p.idle);
        g.set({ state: 'waiting' }, p.waiting);
        g.set({ state: 'max' }, p.max);
      },
    );
}
