/**
 * Running claimed attempts: each attempt's handler with its rendered inputs and context, its
 * cancellation (timeout, a broken job, shutdown, an attempt found superseded) and the pool's slot
 * accounting. An ended attempt is handed to the attempt outcome, which writes its result.
 */
import { rm } from 'node:fs/promises';
import type { Clock, ClockTimer } from '../clock.js';
import type { EngineContext } from '../context.js';
import { taskDefinition } from '../controller/job-scope.js';
import { CHANNELS } from '../signals.js';
import { AttemptAbortedError, PermanentSetupError, type AbortReason } from './attempt-errors.js';
import type { AttemptOutcome, HandlerOutcome } from './attempt-outcome.js';
import type { ClaimedTask } from './claim.js';
import { createHandlerLoader, handlerContext, prepareHandler, type HandlerLoader } from './handler-setup.js';
import type { BufferedLogLine, LogBuffer } from './log-buffer.js';
import type { ProgressWriter } from './progress-writer.js';
import { readStoredJobSpan, type AttemptSpan } from '../tracing/tracing.js';
import type { AttemptRef } from './results.js';

/** Options of {@link createAttemptRunner}. */
export interface AttemptRunnerOptions {
  /** The pool's capacity in slots: running attempts' `slots` add up to at most this. */
  concurrency: number;
  /** After an abort, how long to wait for a handler to settle before its slot is freed anyway (ms). */
  abortSettleMs: number;
  /** Where handlers' `ctx.log` lines go. */
  logs: LogBuffer;
  /** Where handlers' `ctx.progress` reports go (settled before each result is written). */
  progress: ProgressWriter;
  /** Where ended attempts go. */
  outcome: AttemptOutcome;
  /**
   * Told when an attempt gave its slots back (its handler ended, or it was stopped); returns a
   * token for {@link AttemptRunnerOptions.onAttemptDone}. The claim loop's `slotFreed`.
   */
  onSlotFreed: () => number;
  /**
   * Told when an attempt's result is recorded (or its bookkeeping failed) and it has left the
   * runner: `token` is what `onSlotFreed` returned for it; `boundFreed` is true when its leaving
   * raised the free-slot count by itself (the bound on ended attempts was the limit). The claim
   * loop's `attemptDone`.
   */
  onAttemptDone: (token: number, boundFreed: boolean) => void;
  /** Loads handlers by `run`; default a new {@link createHandlerLoader} over the workflows folder. */
  loadHandler?: HandlerLoader;
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
  /** Whether the attempt still holds its slots (released when its handler has ended). */
  slotHeld: boolean;
  /** How many of the pool's slots it holds (the task's `slots`). */
  slots: number;
  /** What `onSlotFreed` returned when its slots were given back (0 before). */
  freedToken: number;
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
  /**
   * Ends the grace period of a `stop` in progress (or of the next one) at once: the attempts
   * still running are aborted and handed back now. For a second shutdown signal.
   */
  hurry(): void;
  /** Starts running `task` in a slot (the claim loop asked for it). */
  run(task: ClaimedTask): void;
  /**
   * Slots a claim may fill now: free slots (capacity minus the `slots` of attempts holding theirs),
   * bounded so that at most `concurrency` ended attempts wait for their results to be written.
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
  /** Resolved by `hurry()`: the grace period of a stop ends at once. */
  let endGrace: () => void = () => undefined;
  const hurried = new Promise<void>((resolve) => (endGrace = resolve));
  const concurrency = Math.max(1, options.concurrency);
  const { logs, outcome } = options;
  const active = new Map<number, ActiveAttempt>();
  const loadHandler = options.loadHandler ?? createHandlerLoader(ctx.catalog.dir);
  /** Slots held by attempts whose handler runs, or is being stopped. */
  let slotsHeld = 0;
  /** Set once a stop's grace period is over: attempts are handed back, new ones at once. */
  let handingBack = false;
  let unlisten: (() => Promise<void>) | null = null;

  /** Gives the attempt's slot back (once) and tells the claim loop. */
  const releaseSlot = (entry: ActiveAttempt): void => {
    if (!entry.slotHeld) return;
    entry.slotHeld = false;
    slotsHeld -= entry.slots;
    entry.freedToken = options.onSlotFreed();
  };
  const freeSlots = (): number => Math.min(concurrency - slotsHeld, 2 * concurrency - active.size);

  const abort = (entry: ActiveAttempt, reason: AbortReason): void => {
    if (entry.reason || entry.finishing) return;
    entry.reason = reason;
    entry.controller.abort(new AttemptAbortedError(reason));
  };

  /** Runs one attempt to its recorded end. Never rejects for handler errors. */
  const runAttempt = async (task: ClaimedTask, entry: ActiveAttempt): Promise<void> => {
    const startedMs = performance.now();
    const def = taskDefinition(task.job, task.name);
    const workdir: { path: string | null } = { path: null };
    const log = (line: BufferedLogLine): void => {
      entry.logged = true;
      logs.add(line);
    };
    let handlerSettled: Promise<unknown> = Promise.resolve();
    let ended: HandlerOutcome;
    // Tracing on: the attempt's span, parented on the stored job span (docs/tracing.md).
    const span = ctx.tracing ? await startAttemptSpan(ctx, task) : null;
    try {
      if (!def) throw new PermanentSetupError(`task '${task.name}' is not in the job's workflow definition`);
      const { handler, inputs } = await prepareHandler(ctx, loadHandler, task, def);
      const progress = options.progress.track(entry.ref, (message) =>
        log({ jobId: task.job.id, taskId: task.taskId, severity: 2, message }),
      );
      const hctx = handlerContext(ctx, task, inputs, {
        signal: entry.controller.signal,
        log,
        workdir,
        progress,
        ...(span ? { traceparent: span.traceparent } : {}),
      });
      const run = Promise.resolve().then(() => handler(hctx));
      handlerSettled = run.then(
        () => undefined,
        () => undefined,
      );
      const onTimeout = (): void => abort(entry, 'timeout');
      ended = {
        ok: true,
        output: await raceWithAbort(ctx.clock, run, entry.controller.signal, def.timeout, onTimeout),
      };
    } catch (error) {
      ended = { ok: false, error };
    }
    entry.finishing = true;
    span?.end(ended.ok ? 'succeeded' : (entry.reason ?? 'failed'), ended.ok ? undefined : ended.error);
    // The handler has ended: its slot may take the next task (the result write claims for it, or
    // a pass does). An aborted attempt keeps its slot until its handler has really stopped (below).
    if (!entry.reason) releaseSlot(entry);
    try {
      // Its last progress lands before the result (a superseded attempt's is dropped).
      await options.progress.settle(task.attemptId, entry.reason !== 'lost');
      // The handler's own lines go in before the result's "completed"/"failed" line.
      if (entry.logged) await logs.flush();
      await outcome.record({
        task,
        ref: entry.ref,
        reason: entry.reason,
        outcome: ended,
        timeoutSeconds: def?.timeout,
        durationMs: performance.now() - startedMs,
      });
    } finally {
      // Keep the slot until the handler has really stopped (a child process killed on abort),
      // bounded so a handler that ignores its signal cannot hold the slot forever.
      if (entry.reason) await settleWithin(ctx.clock, handlerSettled, options.abortSettleMs);
      if (workdir.path) await rm(workdir.path, { recursive: true, force: true }).catch(() => undefined);
    }
  };

  const all = (): Promise<unknown> => Promise.all([...active.values()].map((a) => a.done));

  return {
    async start() {
      handingBack = false;
      unlisten = await ctx.db.listen(CHANNELS.cancel, (payload) => {
        const jobId = Number(payload);
        for (const entry of active.values()) if (entry.ref.jobId === jobId) abort(entry, 'cancel');
      });
    },
    async stop(graceMs) {
      // Graceful: running attempts may finish within the grace period (heartbeats go on), unless
      // hurried (a second shutdown signal).
      await settleWithin(ctx.clock, Promise.race([all(), hurried]), graceMs);
      // From here on, an attempt still running is handed back — and so is one a hand-off claim
      // that was in flight when claiming stopped delivers while the last results are written.
      handingBack = true;
      for (const entry of active.values()) abort(entry, 'shutdown');
      await all();
      await outcome.drain();
      while (active.size > 0) {
        await all();
        await outcome.drain();
      }
      await unlisten?.().catch(() => undefined);
      unlisten = null;
    },
    hurry() {
      endGrace();
    },
    run(task) {
      const entry = newAttempt(task);
      active.set(task.attemptId, entry);
      slotsHeld += entry.slots;
      // Past a stop's grace period: handed back at once (its handler sees an aborted signal).
      if (handingBack) abort(entry, 'shutdown');
      entry.done = runAttempt(task, entry)
        .catch((err: unknown) => {
          ctx.logger.error({ err, attemptId: task.attemptId }, 'attempt bookkeeping failed');
        })
        .finally(() => {
          releaseSlot(entry);
          const before = freeSlots();
          active.delete(task.attemptId);
          options.onAttemptDone(entry.freedToken, freeSlots() > before);
        });
    },
    freeSlots,
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

/**
 * Starts the span of `task`'s attempt (see `EngineTracing.startAttempt`), parented on the job
 * span's ids the claim read with the task; reads them by job id only for a task claimed without
 * them (`task.trace` absent).
 * @returns the span, or null when the job has no trace or its trace could not be read (logged:
 *   tracing never stops an attempt).
 */
async function startAttemptSpan(ctx: EngineContext, task: ClaimedTask): Promise<AttemptSpan | null> {
  const tracing = ctx.tracing;
  if (!tracing) return null;
  try {
    const job = task.trace !== undefined ? task.trace : await readStoredJobSpan(ctx.db, task.job.id);
    return tracing.startAttempt(job, {
      jobId: task.job.id,
      client: task.job.client,
      workflow: task.job.workflow,
      task: task.name,
      queue: task.queue,
      attempt: task.number,
    });
  } catch (err) {
    ctx.logger.warn({ err, attemptId: task.attemptId }, 'could not read the trace of the job');
    return null;
  }
}

/** Waits for `p` to settle, or `ms` of `clock`'s time, whichever comes first. Never rejects. */
function settleWithin(clock: Clock, p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = clock.setTimeout(resolve, ms);
    const done = (): void => {
      t.cancel();
      resolve();
    };
    p.then(done, done);
  });
}

/**
 * Waits for the handler's `run`, or rejects with the abort reason as soon as `signal` aborts; a
 * task `timeout` (seconds) calls `onTimeout` (which aborts) after that much of `clock`'s time.
 */
async function raceWithAbort(
  clock: Clock,
  run: Promise<unknown>,
  signal: AbortSignal,
  timeoutSeconds: number | undefined,
  onTimeout: () => void,
): Promise<unknown> {
  let timeout: ClockTimer | null = null;
  if (timeoutSeconds !== undefined && timeoutSeconds > 0)
    timeout = clock.setTimeout(onTimeout, timeoutSeconds * 1000);
  const aborted = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason as Error);
    signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
  try {
    return await Promise.race([run, aborted]);
  } finally {
    timeout?.cancel();
  }
}

/** The bookkeeping of an attempt about to run (holding its slots). */
function newAttempt(task: ClaimedTask): ActiveAttempt {
  return {
    ref: { attemptId: task.attemptId, taskId: task.taskId, jobId: task.job.id },
    controller: new AbortController(),
    finishing: false,
    reason: null,
    logged: false,
    slotHeld: true,
    slots: Math.max(1, task.slots),
    freedToken: 0,
    done: Promise.resolve(),
  };
}
