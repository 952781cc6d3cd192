/**
 * Shapes of workflow definitions (SPEC section 11) and of task handlers (SPEC section 12).
 * Shared by the loader, the job service (submission), the controller and the workers.
 */
import type { Logger } from 'pino';

/** One task of a workflow definition, as validated from the file. */
export interface TaskDefinition {
  /** Unique in the workflow: `[a-z][a-z0-9_]*`. */
  name: string;
  /** Free text for people reading the workflow. */
  description?: string;
  /** A built-in handler (`exec`, `http`, `sleep`, `fail`) or a module path relative to the workflows dir. */
  run: string;
  /** Handler inputs; may hold `{{ … }}` templates, rendered just before the attempt starts. */
  with?: Record<string, unknown>;
  /** Names of tasks that must end first. Omitted in the file = the task above (none for the first). Resolved here. */
  needs: string[];
  /** Queue the task runs on; default `work`. */
  queue: string;
  /** A template; the task is skipped when it renders falsy. */
  if?: string;
  /** Seconds; an attempt running longer fails. Omitted = no limit. */
  timeout?: number;
  /** Retries after the first attempt; omitted = the `retry_limit` setting. */
  retry_limit?: number;
  /** Seconds between attempts; omitted = the `retry_delay` setting. */
  retry_delay?: number;
  /** When true, a final failure of this task does not fail the job; dependants still run. */
  continue_on_error?: boolean;
  /**
   * A cleanup task: it waits until every task without `when` has ended, and its own `needs`
   * have ended in any state; then `always` runs whatever the outcome, `failed` only when the job
   * failed or was broken (else it is skipped). Its own failure never changes the job's outcome.
   */
  when?: 'always' | 'failed';
  /**
   * Worker slots the task takes while it runs (1..1000); omitted = 1. A worker's concurrency is its
   * capacity in slots (docs/task-slots-and-concurrency.md).
   */
  slots?: number;
  /** At most `limit` running tasks hold the rendered `key` at once, across every engine process. */
  concurrency?: TaskConcurrency;
}

/**
 * A task's concurrency key: `key` is a template rendered at submission against the job's
 * parameters and `job.client`, `job.workflow`, `job.priority`; `limit` is at least 1.
 */
export interface TaskConcurrency {
  key: string;
  limit: number;
}

/** A whole workflow definition, as validated from `<dir>/<common|client>/<name>.yaml|json`. */
export interface WorkflowDefinition {
  /** Equals the file name without extension. */
  name: string;
  description?: string;
  /** JSON Schema (draft 2020-12 subset that Ajv accepts) for `job.parameters`; defaults allowed. */
  parameters: Record<string, unknown>;
  tasks: TaskDefinition[];
  /** Templates rendered at job end and merged into the job-end callback body. */
  outputs?: Record<string, unknown>;
  /** At most `limit` started jobs hold the rendered `key` at once (see {@link JobConcurrency}). */
  concurrency?: JobConcurrency;
}

/**
 * A workflow's job-level concurrency limit: `key` is a template rendered at submission with the
 * job's parameters and `job.client`, `job.workflow`, `job.priority` (not `job.id`, not tasks or
 * storage); at most `limit` jobs with the same rendered key (across every workflow and client)
 * hold a slot at once. Rendered like a task's key (src/workflows/task-concurrency.ts): a key that
 * renders empty is the key `""`, shared by every such job.
 */
export interface JobConcurrency {
  key: string;
  /** 1 … 100 000. */
  limit: number;
}

/** A definition found for a client: its own copy (`client`) or the shared one (`common`). */
export interface ResolvedWorkflow {
  definition: WorkflowDefinition;
  source: 'client' | 'common';
  /** Absolute path of the file it came from. */
  file: string;
}

/** The loaded set of workflow definitions. */
export interface WorkflowCatalog {
  /** The workflow `name` as `client` sees it (its own copy first), or null. */
  resolve(client: string, name: string): ResolvedWorkflow | null;
  /** Every workflow `client` may submit, client copies replacing common ones. */
  list(client: string): ResolvedWorkflow[];
  /** Every queue named by any loaded workflow (plus `work`). */
  queues(): string[];
  /** Re-reads the folder; on any bad file keeps the old set and throws. */
  reload(): Promise<void>;
  /**
   * Registers `listener`, called after every successful `reload()` (the new set is in place),
   * before that `reload()` resolves; not called when a reload fails. Listeners run one after
   * another; one that throws or rejects does not undo the reload (its error is ignored, so it
   * logs its own). Optional: a catalog that never changes need not implement it.
   * @returns a function that removes the listener.
   */
  onReload?(listener: () => void | Promise<void>): () => void;
  /** The workflows folder (absolute). */
  readonly dir: string;
}

/** Result of validating submitted parameters against a workflow's schema. */
export type ParameterValidation =
  { ok: true; resolved: Record<string, unknown> } | { ok: false; problems: string[] };

/** What a handler gets for one attempt (SPEC section 12). */
export interface HandlerContext {
  /** The job's resolved parameters (defaults applied). */
  parameters: Record<string, unknown>;
  job: { id: number; client: string; workflow: string; priority: number };
  task: { id: number; name: string; queue: string };
  attempt: { id: number; number: number };
  /** The task's `with`, rendered. */
  inputs: Record<string, unknown>;
  /** Writes a line to the job's log (progname `worker`); severity 0 DEBUG … 4 FATAL, default 1. */
  log(message: string, severity?: number): void;
  /**
   * Reports how far the attempt has got: `fraction` from 0 to 1 (clamped; a value that is not a
   * finite number is ignored with one warning in the job log), an optional short `message`
   * (trimmed, at most 200 characters) and optional `detail`, a small JSON object (at most 2 KiB
   * as JSON; e.g. `{ fps, speed, eta_seconds }`). Shown as the task's `progress`,
   * `progress_message` and `progress_detail`. Cheap to call often: the latest value is written
   * every half second or so (each write also counts as the attempt's heartbeat). Never throws.
   */
  progress(fraction: number, message?: string, detail?: Record<string, unknown>): void;
  /** Aborted when the job is broken, the attempt times out, or the worker shuts down hard. */
  signal: AbortSignal;
  /** A scratch folder for this attempt (removed after it ends). */
  workdir: string;
  /** The client's storage (SPEC section 13). */
  storage: StorageContext;
  /** Outputs of tasks that ended before this one, by task name. */
  tasks: Record<string, { output: unknown; state: string }>;
  /** Process logger for the worker's own diagnostics. */
  logger: Logger;
  /**
   * `fetch` for the handler's outbound requests, under the engine's egress rules
   * (`TASK_ENGINE_EGRESS`): every connection, redirects included, is checked.
   */
  fetch: (url: string | URL, init?: RequestInit) => Promise<Response>;
  /**
   * The W3C `traceparent` of this attempt's span (docs/tracing.md); absent when tracing is off.
   * `exec` passes it as `TRACEPARENT`, `http` as the `traceparent` header.
   */
  traceparent?: string;
}

/** The client's storage root and a path resolver that refuses escapes. */
export interface StorageContext {
  /** Absolute root: `<TASK_ENGINE_STORAGE_ROOT>/<client>`. */
  root: string;
  /**
   * Resolves a client-relative path to an absolute one inside `root`.
   * @throws PermanentTaskError when the path is absolute, climbs out with `..`, or a symlink leads out.
   */
  resolve(relative: string): Promise<string>;
}

/** A task handler: returns the task's output (any JSON value). Throwing fails the attempt. */
export type TaskHandler = (ctx: HandlerContext) => Promise<unknown>;
