/**
 * Task Engine as a library: create an engine over a configuration, start it, stop it.
 *
 * ```ts
 * import { createEngine, loadConfig } from 'task-engine';
 * const engine = await createEngine(loadConfig(process.env));
 * await engine.start();
 * // … later
 * await engine.stop();
 * ```
 */
export { createEngine, ENGINE_VERSION, type Engine, type EngineOptions } from './engine/engine.js';
export { loadConfig, ConfigError } from './config/load-config.js';
export { ROLES, type EngineConfig, type Role } from './config/schema.js';
export type { EngineContext, Service } from './engine/context.js';
export { systemClock, ManualClock, sleep, type Clock, type ClockTimer } from './engine/clock.js';
export { admitJobs } from './engine/controller/admission.js';
export { advanceJob } from './engine/controller/advance.js';
export { recoverStalledAttempts } from './engine/maintenance/recover-stalled.js';
export { EngineError, ERROR_CATALOGUE, type ErrorCode } from './errors/catalogue.js';
export { PermanentTaskError, RetryAfterError } from './errors/task-errors.js';
export { SETTING_DEFAULTS, type EngineSettings } from './engine/settings.js';
export { JOB_STATES, type JobState } from './engine/jobs/transitions.js';
export type { Executor } from './store/executor.js';
export { openStore, type StoreTarget } from './store/open-store.js';
export type {
  HandlerContext,
  StorageContext,
  TaskDefinition,
  TaskHandler,
  WorkflowCatalog,
  WorkflowDefinition,
} from './workflows/types.js';
