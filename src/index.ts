/**
 * Task Engine as a library: create an engine over a configuration, start it, submit and read
 * jobs in process (no HTTP), stop it. docs/embedding.md has the whole guide.
 *
 * ```ts
 * import { createEngine, loadConfig } from 'task-engine';
 * const engine = await createEngine(loadConfig(process.env));
 * await engine.start();
 * const jobs = engine.jobs({ client: 'acme' });
 * const { id } = await jobs.submit({ job: { workflow: 'transcode' }, parameters: { content_id: 'a1' } });
 * const job = await jobs.get(id); // job.queue_state, job.tasks, …
 * const queued = await jobs.list({ state: 'queued', limit: 50 });
 * const results = await jobs.submitBatch([{ job: { workflow: 'transcode' }, parameters: { content_id: 'a2' } }]);
 * // … later
 * await engine.stop();
 * ```
 */
export { createEngine, ENGINE_VERSION, type Engine, type EngineOptions } from './engine/engine.js';
export {
  jobsOf,
  type BatchItemResult,
  type EngineJobs,
  type JobDetail,
  type JobListQuery,
  type JobRecord,
  type JobsAs,
  type JobSubmission,
  type TaskRecord,
} from './engine/jobs-api.js';
export { MAX_BATCH_JOBS } from './engine/jobs/batch.js';
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
