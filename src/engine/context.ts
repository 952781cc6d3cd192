/**
 * What every engine service shares in one process, and the contract of long-lived loops.
 */
import type { Logger } from 'pino';
import type { EngineConfig } from '../config/schema.js';
import type { Executor } from '../store/executor.js';
import type { WorkflowCatalog } from '../workflows/types.js';
import type { Clock } from './clock.js';

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
