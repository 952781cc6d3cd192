/**
 * What a handler runs with: the handler itself (loaded once per `run`), its rendered inputs and
 * its {@link HandlerContext}. A failure to load or render is a {@link PermanentSetupError}.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lastTaskName, openBackend, readStorageKinds, usesStaging } from '../../storage/client-storage.js';
import { publishStaged, removeStaging, stagedStorageContext } from '../../storage/job-staging.js';
import { createStorageContext } from '../../storage/storage.js';
import { isBuiltinHandler, resolveHandler } from '../../workflows/handlers/registry.js';
import { renderTemplate } from '../../workflows/templates.js';
import type { HandlerContext, TaskDefinition, TaskHandler } from '../../workflows/types.js';
import type { EngineContext } from '../context.js';
import { errorText } from '../controller/advance.js';
import { buildTemplateScope } from '../controller/job-scope.js';
import { PermanentSetupError } from './attempt-errors.js';
import type { ClaimedTask } from './claim.js';
import type { BufferedLogLine } from './log-buffer.js';

/** Where attempts' scratch folders are made (read once: `os.tmpdir()` reads the environment). */
const TMP_ROOT = tmpdir();

/** Loads handlers by their `run`, once each (a failed load is tried again next time). */
export type HandlerLoader = (run: string) => Promise<TaskHandler>;

/** Creates a {@link HandlerLoader} resolving module paths against `workflowsDir`. */
export function createHandlerLoader(workflowsDir: string): HandlerLoader {
  const handlers = new Map<string, Promise<TaskHandler>>();
  return (run) => {
    let h = handlers.get(run);
    if (!h) {
      h = resolveHandler(run, workflowsDir);
      handlers.set(run, h);
      h.catch(() => handlers.delete(run));
    }
    return h;
  };
}

/**
 * The module handlers (`run` paths, not built-ins) of the tasks of `workflows` that run on one of
 * `queues`, each once, in the order they first appear.
 */
export function moduleHandlerRuns(
  workflows: readonly { definition: { tasks: readonly { run: string; queue: string }[] } }[],
  queues: readonly string[],
): string[] {
  const served = new Set(queues);
  const runs = new Set<string>();
  for (const wf of workflows)
    for (const t of wf.definition.tasks) if (served.has(t.queue) && !isBuiltinHandler(t.run)) runs.add(t.run);
  return [...runs];
}

/**
 * Loads every handler of `runs` through `load`, one after another, so that the first task of each
 * does not pay for loading (and compiling) its module, and a module that cannot be loaded is
 * reported when the worker starts rather than when a task first needs it. A failed load is only
 * reported: the task that needs it tries again and fails as it would have.
 * @param onFailure - told of each `run` that could not be loaded, with the reason.
 * @param stopped - checked between loads; preloading ends once it returns true.
 * @returns how many loaded, and how long it took in ms.
 */
export async function preloadHandlers(
  load: HandlerLoader,
  runs: readonly string[],
  onFailure: (run: string, error: string) => void,
  stopped: () => boolean = () => false,
): Promise<{ loaded: number; ms: number }> {
  const t0 = performance.now();
  let loaded = 0;
  for (const run of runs) {
    if (stopped()) break;
    try {
      await load(run);
      loaded += 1;
    } catch (err) {
      onFailure(run, errorText(err));
    }
  }
  return { loaded, ms: performance.now() - t0 };
}

/**
 * Loads the task's handler and renders its `with` against the job's scope.
 * @throws PermanentSetupError when the handler cannot be loaded or the inputs cannot be rendered.
 */
export async function prepareHandler(
  ctx: EngineContext,
  load: HandlerLoader,
  task: ClaimedTask,
  def: TaskDefinition,
): Promise<{ handler: TaskHandler; inputs: Record<string, unknown> }> {
  const handler = await load(def.run).catch((err: unknown) => {
    throw new PermanentSetupError(`handler "${def.run}" cannot be loaded: ${errorText(err)}`);
  });
  const scope = buildTemplateScope(task.job, task.outputs, ctx.config.storageRoot);
  try {
    const rendered = renderTemplate(def.with ?? {}, scope);
    const inputs = rendered && typeof rendered === 'object' ? (rendered as Record<string, unknown>) : {};
    return { handler: withStagedStorage(ctx, task, def, handler), inputs };
  } catch (err) {
    throw new PermanentSetupError(`inputs of task '${task.name}' cannot be rendered: ${errorText(err)}`);
  }
}

/**
 * For a job with object storage (docs/storage.md): after the last task succeeds, its staged
 * outputs are published (a failed publish fails the attempt); after a cleanup task, the staging
 * folder of the failed job is removed. Other jobs get `handler` unchanged.
 */
function withStagedStorage(
  ctx: EngineContext,
  task: ClaimedTask,
  def: TaskDefinition,
  handler: TaskHandler,
): TaskHandler {
  const kinds = readStorageKinds(task.job.resolved_parameters ?? {});
  if (typeof kinds === 'string' || !usesStaging(kinds)) return handler;
  const { client, id } = task.job;
  const root = ctx.config.storageRoot;
  const isLast = lastTaskName(task.job.definition?.tasks ?? []) === def.name;
  if (!isLast && !def.when) return handler;
  return async (hctx) => {
    const output = await handler(hctx);
    if (def.when) await removeStaging(root, client, id);
    else {
      const destination = await openBackend(ctx.db, ctx.egress, root, client, kinds.destination);
      await publishStaged(
        root,
        client,
        id,
        destination,
        () => openBackend(ctx.db, ctx.egress, root, client, kinds.source),
        (line) => hctx.log(line),
        hctx.signal,
      );
    }
    return output;
  };
}

/** What {@link handlerContext} needs from the attempt runner. */
export interface AttemptHooks {
  signal: AbortSignal;
  /** Takes one `ctx.log` line. */
  log: (line: BufferedLogLine) => void;
  /** Set to the scratch folder when the handler first asks for it (the runner removes it). */
  workdir: { path: string | null };
  /** The attempt's `ctx.progress` (throttled by the pool's progress writer). */
  progress: HandlerContext['progress'];
  /** The attempt span's W3C `traceparent` (tracing on). */
  traceparent?: string;
}

/** The job's `ctx.storage`: the client folder, or the staging folder of a job with object storage. */
function storageFor(ctx: EngineContext, task: ClaimedTask, hooks: AttemptHooks): HandlerContext['storage'] {
  const { client, id } = task.job;
  const kinds = readStorageKinds(task.job.resolved_parameters ?? {});
  if (typeof kinds === 'string' || !usesStaging(kinds))
    return createStorageContext(ctx.config.storageRoot, client);
  return stagedStorageContext(
    ctx.config.storageRoot,
    client,
    id,
    () => openBackend(ctx.db, ctx.egress, ctx.config.storageRoot, client, kinds.source),
    (message) => hooks.log({ jobId: id, taskId: task.taskId, severity: 1, message }),
    hooks.signal,
  );
}

/** The context a handler of `task` runs with. */
export function handlerContext(
  ctx: EngineContext,
  task: ClaimedTask,
  inputs: Record<string, unknown>,
  hooks: AttemptHooks,
): HandlerContext {
  const ids = { jobId: task.job.id, taskId: task.taskId, attemptId: task.attemptId };
  // The scratch folder is made when a handler first asks for it: most tasks never do, and
  // making and removing a folder per attempt is a large share of a short task's cost.
  const scratch = (): string =>
    (hooks.workdir.path ??= mkdtempSync(path.join(TMP_ROOT, `task-engine-${task.taskId}-`)));
  return {
    parameters: task.job.resolved_parameters ?? {},
    job: {
      id: task.job.id,
      client: task.job.client,
      workflow: task.job.workflow,
      priority: task.job.priority,
    },
    task: { id: task.taskId, name: task.name, queue: task.queue },
    attempt: { id: task.attemptId, number: task.number },
    inputs,
    log: (message, severity) =>
      hooks.log({ jobId: ids.jobId, taskId: ids.taskId, severity: severity ?? 1, message: String(message) }),
    progress: hooks.progress,
    signal: hooks.signal,
    get workdir() {
      return scratch();
    },
    storage: storageFor(ctx, task, hooks),
    tasks: task.outputs,
    logger: ctx.logger.child(ids),
    fetch: ctx.fetch,
    ...(hooks.traceparent ? { traceparent: hooks.traceparent } : {}),
  };
}
