/**
 * Running claimed attempts: each attempt's handler with its rendered inputs and context, its
 * cancellation (timeout, a broken job, shutdown, an attempt found superseded) and the pool's slot
 * accounting. An ended attempt is handed to the attempt outcome, which writes its result.
 */
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createStorageContext } from '../../storage/storage.js';
import { resolveHandler } from '../../workflows/handlers/registry.js';
import { renderTemplate } from '../../workflows/templates.js';
import type { HandlerContext, TaskDefinition, TaskHandler } from '../../workflows/types.js';
import type { ClockTimer } from '../clock.js';
import type { EngineContext } from '../context.js';
import { errorText } from '../controller/advance.js';
import { buildTemplateScope, taskDefinition } from '../controller/job-scope.js';
import { CHANNELS } from '../signals.js';
import { AttemptAbortedError, PermanentSetupError, type AbortReason } from './attempt-errors.js';
import type { AttemptOutcome, HandlerOutcome } from './attempt-outcome.js';
import type { ClaimedTask } from './claim.js';
import type { LogBuffer } from './log-buffer.js';
import type { AttemptRef } from './results.js';

/** Where attempts' scratch folders are made (read once: `os.tmpdir()` reads the environment). */
const TMP_ROOT = tmpdir();

/** Options of {@link createAttemptRunner}. */
export interface AttemptRunnerOptions {
  /** Handlers run at once. */
  concurrency: number;
  /** After an abort, how long to wait for a handler to settle before its slot is freed anyway (ms). */
  abortSettleMs: number;
  /** Where handlers' `ctx.log` lines go. */
  logs: LogBuffer;
  /** Where ended attempts go. */
  outcome: AttemptOutcome;
  /** Told whenever a slot may have come free (to look for more work). */
  onSlotFreed: () => void;
}

/** One attempt this process runs. */
interface ActiveAttempt {
  ref: AttemptRef;
  controller: AbortController;
  /** Set once the result is being written: heartbeats no longer judge it. */
  finishing: boolean;
  reason: AbortReason | null;
  /** Whether the handler wrote job log lines (then they are flushed before the result). */
  logged: boolean;
  /** Whether the attempt still holds one of the pool's slots (released when its handler has ended). */
  slotHeld: boolean;
  /** Resolves when the attempt's result is recorded and its slot is free again. */
  done: Promise<void>;
}

/** Runs attempts in the pool's slots. */
export interface AttemptRunner {
  /** Listens for broken jobs (`CHANNELS.cancel`), whose attempts it aborts. */
  start(): Promise<void>;
  /**
   * Lets running attempts finish within `graceMs`, then aborts the rest (`shutdown`: handed
   * back) and waits until every attempt is recorded; then stops listening.
   */
  stop(graceMs: number): Promise<void>;
  /** Starts running `task` in a slot (the claim loop asked for it). */
  run(task: ClaimedTask): void;
  /**
   * Slots a claim may fill now: free slots, bounded so that at most `concurrency` ended attempts
   * wait for their results to be written.
   */
  freeSlots(): number;
  /** Attempt ids of this process now (running, or their result being written). */
  attemptIds(): number[];
  /** Attempt ids whose handler runs and is not aborted (the ones heart-beating). */
  liveAttemptIds(): number[];
  /**
   * Aborts attempt `attemptId` for `reason`, unless it is already ending.
   * @returns the attempt, or null when this process does not run it (any more).
   */
  abort(attemptId: number, reason: AbortReason): AttemptRef | null;
}

/** Creates the {@link AttemptRunner}. */
export function createAttemptRunner(ctx: EngineContext, options: AttemptRunnerOptions): AttemptRunner {
  const concurrency = Math.max(1, options.concurrency);
  const { logs, outcome } = options;
  const active = new Map<number, ActiveAttempt>();
  const handlers = new Map<string, Promise<TaskHandler>>();
  /** Attempts whose handler holds a slot (runs, or is being stopped). */
  let slotsHeld = 0;
  let unlisten: (() => Promise<void>) | null = null;

  /** Gives the attempt's slot back (once) and looks for more work. */
  const releaseSlot = (entry: ActiveAttempt): void => {
    if (!entry.slotHeld) return;
    entry.slotHeld = false;
    slotsHeld--;
    options.onSlotFreed();
  };

  const abort = (entry: ActiveAttempt, reason: AbortReason): void => {
    if (entry.reason || entry.finishing) return;
    entry.reason = reason;
    entry.controller.abort(new AttemptAbortedError(reason));
  };

  const handlerFor = (run: string): Promise<TaskHandler> => {
    let h = handlers.get(run);
    if (!h) {
      h = resolveHandler(run, ctx.catalog.dir);
      handlers.set(run, h);
      h.catch(() => handlers.delete(run));
    }
    return h;
  };

  /** Runs one attempt to its recorded end. Never rejects for handler errors. */
  const runAttempt = async (task: ClaimedTask, entry: ActiveAttempt): Promise<void> => {
    const def = taskDefinition(task.job, task.name);
    const workdir: { path: string | null } = { path: null };
    let handlerSettled: Promise<unknown> = Promise.resolve();
    let ended: HandlerOutcome;
    try {
      if (!def) throw new PermanentSetupError(`task '${task.name}' is not in the job's workflow definition`);
      const { handler, inputs } = await prepareHandler(task, def);
      const run = Promise.resolve().then(() => handler(handlerContext(task, entry, inputs, workdir)));
      handlerSettled = run.then(
        () => undefined,
        () => undefined,
      );
      ended = { ok: true, output: await raceWithAbort(run, entry, def.timeout) };
    } catch (error) {
      ended = { ok: false, error };
    }
    entry.finishing = true;
    // The handler has ended: its slot may take the next task while the result is written. An
    // aborted attempt keeps its slot until its handler has really stopped (below).
    if (!entry.reason) releaseSlot(entry);
    try {
      // The handler's own lines go in before the result's "completed"/"failed" line.
      if (entry.logged) await logs.flush();
      await outcome.record({
        task,
        ref: entry.ref,
        reason: entry.reason,
        outcome: ended,
        timeoutSeconds: def?.timeout,
      });
    } finally {
      // Keep the slot until the handler has really stopped (a child process killed on abort),
      // bounded so a handler that ignores its signal cannot hold the slot forever.
      if (entry.reason) await settleWithin(handlerSettled, options.abortSettleMs);
      if (workdir.path) await rm(workdir.path, { recursive: true, force: true }).catch(() => undefined);
    }
  };

  /** Loads the task's handler and renders its `with`; a failure of either is permanent. */
  const prepareHandler = async (
    task: ClaimedTask,
    def: TaskDefinition,
  ): Promise<{ handler: TaskHandler; inputs: Record<string, unknown> }> => {
    const handler = await handlerFor(def.run).catch((err: unknown) => {
      throw new PermanentSetupError(`handler "${def.run}" cannot be loaded: ${errorText(err)}`);
    });
    const scope = buildTemplateScope(task.job, task.outputs, ctx.config.storageRoot);
    try {
      const rendered = renderTemplate(def.with ?? {}, scope);
      const inputs = rendered && typeof rendered === 'object' ? (rendered as Record<string, unknown>) : {};
      return { handler, inputs };
    } catch (err) {
      throw new PermanentSetupError(`inputs of task '${task.name}' cannot be rendered: ${errorText(err)}`);
    }
  };

  /** The context a handler runs with; `workdir.path` is set when it first asks for its folder. */
  const handlerContext = (
    task: ClaimedTask,
    entry: ActiveAttempt,
    inputs: Record<string, unknown>,
    workdir: { path: string | null },
  ): HandlerContext => {
    const { ref } = entry;
    // The scratch folder is made when a handler first asks for it: most tasks never do, and
    // making and removing a folder per attempt is a large share of a short task's cost.
    const scratch = (): string =>
      (workdir.path ??= mkdtempSync(path.join(TMP_ROOT, `task-engine-${task.taskId}-`)));
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
      log: (message, severity) => {
        entry.logged = true;
        logs.add({ jobId: ref.jobId, taskId: ref.taskId, severity: severity ?? 1, message: String(message) });
      },
      signal: entry.controller.signal,
      get workdir() {
        return scratch();
      },
      storage: createStorageContext(ctx.config.storageRoot, task.job.client),
      tasks: task.outputs,
      logger: ctx.logger.child({ jobId: ref.jobId, taskId: ref.taskId, attemptId: ref.attemptId }),
    };
  };

  /**
   * Waits for the handler's `run`, or rejects with the abort reason as soon as the attempt is
   * aborted; a task `timeout` (seconds) aborts it on the engine's clock.
   */
  const raceWithAbort = async (
    run: Promise<unknown>,
    entry: ActiveAttempt,
    timeoutSeconds: number | undefined,
  ): Promise<unknown> => {
    const signal = entry.controller.signal;
    let timeout: ClockTimer | null = null;
    if (timeoutSeconds !== undefined && timeoutSeconds > 0)
      timeout = ctx.clock.setTimeout(() => abort(entry, 'timeout'), timeoutSeconds * 1000);
    const aborted = new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason as Error);
      signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
    });
    try {
      return await Promise.race([run, aborted]);
    } finally {
      timeout?.cancel();
    }
  };

  /** Waits for `p` to settle, or `ms` of the engine's clock, whichever comes first. */
  const settleWithin = (p: Promise<unknown>, ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const t = ctx.clock.setTimeout(resolve, ms);
      const done = (): void => {
        t.cancel();
        resolve();
      };
      p.then(done, done);
    });

  const all = (): Promise<unknown> => Promise.all([...active.values()].map((a) => a.done));

  return {
    async start() {
      unlisten = await ctx.db.listen(CHANNELS.cancel, (payload) => {
        const jobId = Number(payload);
        for (const entry of active.values()) if (entry.ref.jobId === jobId) abort(entry, 'cancel');
      });
    },
    async stop(graceMs) {
      // Graceful: running attempts may finish within the grace period (heartbeats go on).
      await settleWithin(all(), graceMs);
      for (const entry of active.values()) abort(entry, 'shutdown');
      await all();
      await outcome.drain();
      await unlisten?.().catch(() => undefined);
      unlisten = null;
    },
    run(task) {
      const entry: ActiveAttempt = {
        ref: { attemptId: task.attemptId, taskId: task.taskId, jobId: task.job.id },
        controller: new AbortController(),
        finishing: false,
        reason: null,
        logged: false,
        slotHeld: true,
        done: Promise.resolve(),
      };
      active.set(task.attemptId, entry);
      slotsHeld++;
      entry.done = runAttempt(task, entry)
        .catch((err: unknown) => {
          ctx.logger.error({ err, attemptId: task.attemptId }, 'attempt bookkeeping failed');
        })
        .finally(() => {
          releaseSlot(entry);
          active.delete(task.attemptId);
          options.onSlotFreed();
        });
    },
    freeSlots: () => Math.min(concurrency - slotsHeld, 2 * concurrency - active.size),
    attemptIds: () => [...active.keys()],
    liveAttemptIds: () =>
      [...active.values()].filter((a) => !a.finishing && !a.reason).map((a) => a.ref.attemptId),
    abort(attemptId, reason) {
      const entry = active.get(attemptId);
      if (!entry) return null;
      abort(entry, reason);
      return entry.ref;
    },
  };
}
