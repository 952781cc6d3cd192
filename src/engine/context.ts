/**
 * What every engine service shares in one process, and the contract of long-lived loops.
 */
import type { GuardedFetch } from './egress/guarded-fetch.js';
import type { EgressPolicy } from './egress/rules.js';
import type { Logger } from 'pino';
import type { EngineConfig } from '../config/schema.js';
import type { Executor } from '../store/executor.js';
import type { WorkflowCatalog } from '../workflows/types.js';
import type { Clock } from './clock.js';
import type { EngineMetrics } from './metrics/metrics.js';
import type { EngineTracing } from './tracing/tracing.js';

/** Shared dependencies of the engine's services. */
export interface EngineContext {
  config: EngineConfig;
  db: Executor;
  clock: Clock;
  /** Process logger (pino). Job logs go to the database through `appendLog`. */
  logger: Logger;
  catalog: WorkflowCatalog;
  /** The engine's version (package.json), as `/health` and `/dashboard` report it. */
  version: string;
  /** The egress rules (`TASK_ENGINE_EGRESS`), for checks of URLs known at submission. */
  egress: EgressPolicy;
  /**
   * `fetch` for every outbound request (callbacks, semaphores, `http` tasks, HLS sources): each
   * connection is checked against {@link egress} (src/engine/egress/guarded-fetch.ts).
   */
  fetch: GuardedFetch;
  /** The process's Prometheus metrics; undefined with `TASK_ENGINE_METRICS=off` (src/engine/metrics). */
  metrics?: EngineMetrics;
  /** The engine's OpenTelemetry tracing; undefined when tracing is off (src/engine/tracing). */
  tracing?: EngineTracing;
}

/**
 * A long-lived loop (controller, scheduler, workers, callback dispatcher, maintenance).
 * `start()` resolves once running; `stop()` is idempotent and waits for in-flight work.
 * Loops never throw out of their loop: they log with context, back off and continue.
 */
export interface Service {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}
