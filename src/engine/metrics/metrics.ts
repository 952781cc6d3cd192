/**
 * The engine's Prometheus metrics (docs/observability.md): one `prom-client` {@link Registry} per
 * engine, never the library's global one, so several engines in one process keep apart.
 *
 * Counters and histograms count what this process did (its attempts, admissions, deliveries,
 * statements); gauges of the shared state (jobs per state, queue depth, workers) are read from the
 * database at scrape time through one bounded statement, cached for a few seconds
 * (src/engine/metrics/db-gauges.ts). With `TASK_ENGINE_METRICS=off` none of this exists:
 * `ctx.metrics` is undefined and every recording site is a skipped optional call.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Buckets of task attempt durations (seconds): 10 ms to 1 h. */
const TASK_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
/** Buckets of queued → started waits (seconds): 5 ms to 1 h. */
const WAIT_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
/** Buckets of callback requests (seconds): 5 ms to 30 s (the request timeout). */
const CALLBACK_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Buckets of database statements (seconds): 0.5 ms to 5 s. */
const QUERY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];

/** The instruments of one engine; every name starts `task_engine_`. */
export interface EngineMetrics {
  readonly registry: Registry;
  /** `{client, workflow, outcome}`: jobs this process moved `started → completed` (`outcome` `completed` or `failed`). */
  readonly jobsFinished: Counter<'client' | 'workflow' | 'outcome'>;
  /** `{client}`: jobs this process's admission passes moved `queued → started`. */
  readonly admissions: Counter<'client'>;
  /** `{client}`: seconds from `queued_at` to the admission that started the job. */
  readonly queuedToStarted: Histogram<'client'>;
  /** `{workflow, task, outcome}`: task ends written by this process's workers (`succeeded`, `failed`). */
  readonly tasksFinished: Counter<'workflow' | 'task' | 'outcome'>;
  /** `{workflow, task, outcome}`: seconds from the handler's start to its end, per written attempt (`succeeded`, `failed`, `retry`). */
  readonly taskDuration: Histogram<'workflow' | 'task' | 'outcome'>;
  /** `{workflow, task}`: attempts that failed (retried or not). */
  readonly attemptFailures: Counter<'workflow' | 'task'>;
  /** `{workflow, task}`: failed attempts whose task was made ready again for another attempt. */
  readonly retries: Counter<'workflow' | 'task'>;
  /** Running attempts that stall recovery handed back or failed (heartbeats stopped). */
  readonly stallsRecovered: Counter;
  /** `{outcome}`: callback requests sent (`delivered`, `failed`). */
  readonly callbackDeliveries: Counter<'outcome'>;
  /** `{host}`: callback requests that did not get a 2xx answer, by target host. */
  readonly callbackFailures: Counter<'host'>;
  /** `{host}`: seconds a callback request took, by target host. */
  readonly callbackDuration: Histogram<'host'>;
  /** Progress reports written (one per attempt and write). */
  readonly progressWrites: Counter;
  /** `{query}`: seconds per database statement, by its query-module name (`other` for unnamed text). */
  readonly queryDuration: Histogram<'query'>;
  /** Renders the registry in the text format. */
  render(): Promise<string>;
  /** Stops what the metrics run in the background (the event-loop monitor). */
  close(): void;
}

/** Options of {@link createEngineMetrics}. */
export interface EngineMetricsOptions {
  /** Adds the default Node.js and process metrics (event-loop lag, CPU, memory, handles); default true. */
  processMetrics?: boolean;
}

/**
 * Creates the metrics of one engine in a fresh registry. Gauges read from the database are added
 * by {@link registerDbGauges} (src/engine/metrics/db-gauges.ts).
 */
export function createEngineMetrics(options: EngineMetricsOptions = {}): EngineMetrics {
  const registry = new Registry();
  const r = [registry];
  if (options.processMetrics !== false)
    collectDefaultMetrics({ register: registry, prefix: 'task_engine_', eventLoopMonitoringPrecision: 20 });
  const metrics: EngineMetrics = {
    registry,
    jobsFinished: new Counter({
      name: 'task_engine_jobs_finished_total',
      help: 'Jobs this process finished (started -> completed), by client, workflow and outcome (completed, failed).',
      labelNames: ['client', 'workflow', 'outcome'],
      registers: r,
    }),
    admissions: new Counter({
      name: 'task_engine_admissions_total',
      help: "Jobs this process's admission passes started (queued -> started), by client.",
      labelNames: ['client'],
      registers: r,
    }),
    queuedToStarted: new Histogram({
      name: 'task_engine_queued_to_started_seconds',
      help: 'Seconds from a job being queued to its admission, by client.',
      labelNames: ['client'],
      buckets: WAIT_BUCKETS,
      registers: r,
    }),
    tasksFinished: new Counter({
      name: 'task_engine_tasks_finished_total',
      help: "Task ends written by this process's workers, by workflow, task and outcome (succeeded, failed).",
      labelNames: ['workflow', 'task', 'outcome'],
      registers: r,
    }),
    taskDuration: new Histogram({
      name: 'task_engine_task_duration_seconds',
      help: 'Seconds a task attempt ran, by workflow, task and outcome (succeeded, failed, retry).',
      labelNames: ['workflow', 'task', 'outcome'],
      buckets: TASK_BUCKETS,
      registers: r,
    }),
    attemptFailures: new Counter({
      name: 'task_engine_attempt_failures_total',
      help: 'Task attempts that failed (retried or not), by workflow and task.',
      labelNames: ['workflow', 'task'],
      registers: r,
    }),
    retries: new Counter({
      name: 'task_engine_task_retries_total',
      help: 'Failed attempts whose task was made ready for another attempt, by workflow and task.',
      labelNames: ['workflow', 'task'],
      registers: r,
    }),
    stallsRecovered: new Counter({
      name: 'task_engine_stalls_recovered_total',
      help: 'Running attempts whose heartbeats stopped and that stall recovery took back.',
      registers: r,
    }),
    callbackDeliveries: new Counter({
      name: 'task_engine_callback_deliveries_total',
      help: 'Callback requests this process sent, by outcome (delivered = a 2xx answer, failed = anything else).',
      labelNames: ['outcome'],
      registers: r,
    }),
    callbackFailures: new Counter({
      name: 'task_engine_callback_failures_total',
      help: 'Callback requests without a 2xx answer, by target host.',
      labelNames: ['host'],
      registers: r,
    }),
    callbackDuration: new Histogram({
      name: 'task_engine_callback_duration_seconds',
      help: 'Seconds a callback request took, by target host.',
      labelNames: ['host'],
      buckets: CALLBACK_BUCKETS,
      registers: r,
    }),
    progressWrites: new Counter({
      name: 'task_engine_progress_writes_total',
      help: 'Task progress reports written to the database (one per attempt and write).',
      registers: r,
    }),
    queryDuration: new Histogram({
      name: 'task_engine_db_query_duration_seconds',
      help: 'Seconds per database statement, by query name (other = text without a name).',
      labelNames: ['query'],
      buckets: QUERY_BUCKETS,
      registers: r,
    }),
    render: () => registry.metrics(),
    close: () => {
      // The default metrics' event-loop histogram is a perf_hooks monitor; it stops on reset.
      registry.clear();
    },
  };
  return metrics;
}

/** The host of a URL as a metric label (`invalid` when it does not parse); never the path or query. */
export function hostLabel(url: string): string {
  try {
    return new URL(url).host || 'invalid';
  } catch {
    return 'invalid';
  }
}

/** A gauge whose value is computed at scrape time. */
export function scrapeGauge<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
  collect: (g: Gauge<L>) => Promise<void> | void,
): Gauge<L> {
  return new Gauge<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    async collect() {
      await collect(this);
    },
  });
}
