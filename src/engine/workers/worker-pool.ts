/**
 * The task workers of one engine process: `concurrency` slots over a set of queues.
 */
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createStorageContext } from '../../storage/storage.js';
import { resolveHandler } from '../../workflows/handlers/registry.js';
import { renderTemplate } from '../../workflows/templates.js';
import type { Queryable } from '../../store/executor.js';
import type { HandlerContext, TaskHandler } from '../../workflows/types.js';
import type { EngineContext, Service } from '../context.js';
import { errorText } from '../controller/advance.js';
import { buildTemplateScope, taskDefinition } from '../controller/job-scope.js';
import { CHANNELS } from '../signals.js';
import { claimTasks, msUntilNextDue, type ClaimedTask } from './claim.js';
import { createLogBuffer, type LogBuffer } from './log-buffer.js';
import { createResultWriter, type ResultWriter } from './result-writer.js';
import { closeLostAttempt, writeFailure, writeHandBack, type AttemptRef } from './results.js';

/** Claim passes one worker pool keeps in flight at most (see `wake`). */
const MAX_CLAIMS_IN_FLIGHT = 2;

/** Where attempts' scratch folders are made (read once: `os.tmpdir()` reads the environment). */
const TMP_ROOT = tmpdir();

/** Options of {@link createWorkerPool}. */
export interface WorkerPoolOptions {
  /** This process's id in `workers` (stored in `attempts.worker_id`). */
  workerId: string;
  /** Queues to take tasks from. */
  queues: string[];
  /** Tasks run at once. */
  concurrency: number;
  /** Attempt heartbeat period in ms; default 2 000 (keep well under `stall_timeout`). */
  heartbeatIntervalMs?: number;
  /** Safety-net claim poll in ms, for wake-ups that never came; default 5 000. */
  pollIntervalMs?: number;
  /** At stop, how long running attempts may go on before they are aborted and handed back; default 10 000 ms. */
  shutdownGraceMs?: number;
  /** After an abort, how long to wait for a handler to settle before the slot is freed anyway; default 12 000 ms. */
  abortSettleMs?: number;
}

/** Why an attempt was aborted. */
type AbortReason = 'timeout' | 'cancel' | 'shutdown' | 'lost';

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
  /** Resolves when the attempt's slot is free again. */
  done: Promise<void>;
}

/** The worker pool service, with hooks for tests and the engine. */
export interface WorkerPool extends Service {
  /** Asks for a claim pass soon. */
  wake(): void;
  /** Attempt ids running in this process now. */
  activeAttempts(): number[];
  /**
   * Replaces the queues tasks are taken from (duplicates dropped), for the next claim pass and
   * the `CHANNELS.tasks` filter, and asks for a claim pass (which also re-reads the earliest
   * delayed retry). Attempts already running are not touched.
   */
  setQueues(queues: string[]): void;
}

/**
 * Creates the worker pool: claims ready tasks (one statement per pass, up to the free slots),
 * runs each attempt's handler with a rendered `with`, a scratch workdir (made on first use), the
 * client's storage, an abort signal and the task's `timeout`, and writes the result through the
 * result writer (`success`, or {@link writeFailure}), group-committed (stale results are dropped).
 *
 * Wake-ups: `CHANNELS.tasks` notifications for its queues, a freed slot, a timer armed for the
 * earliest delayed retry, and a slow safety poll. `CHANNELS.cancel` (a job broken) aborts that
 * job's attempts; the heartbeat (one UPDATE per period for every running attempt) aborts any
 * attempt found no longer `running` (broken, recovered as stalled). Loops never throw out.
 */
export function createWorkerPool(ctx: EngineContext, options: WorkerPoolOptions): WorkerPool {
  let queues = [...new Set(options.queues)];
  const concurrency = Math.max(1, options.concurrency);
  const heartbeatMs = options.heartbeatIntervalMs ?? 2_000;
  const pollMs = options.pollIntervalMs ?? 5_000;
  const graceMs = options.shutdownGraceMs ?? 10_000;
  const settleMs = options.abortSettleMs ?? 12_000;
  let queueSet = new Set(queues);
  const active = new Map<number, ActiveAttempt>();
  const handlers = new Map<string, Promise<TaskHandler>>();
  let logs: LogBuffer | null = null;
  let writer: ResultWriter | null = null;
  let stopped = true;
  /** Attempts whose handler holds a slot (runs, or is being stopped). */
  let handlersRunning = 0;
  let claimsInFlight = 0;
  /** Slots asked for by claim passes in flight. */
  let reserved = 0;
  const claimPasses = new Set<Promise<void>>();
  let again = false;
  let claimFailures = 0;
  let dueTimer: NodeJS.Timeout | null = null;
  let dueAt = Infinity;
  /** Set when a retry was scheduled: the next under-full claim re-reads the earliest due time. */
  let dueCheck = true;
  let lastDueCheck = 0;
  let pollTimer: NodeJS.Timeout | null = null;
  let heartbeatTimer: NodeJS.Timeout | null = null;
  let heartbeatRunning = false;
  const unlisteners: (() => Promise<void>)[] = [];

  /**
   * Claims run as passes, up to {@link MAX_CLAIMS_IN_FLIGHT} at once: a slot that comes free
   * while a pass is on its way to the database starts another pass instead of waiting for it, so
   * under load claiming never becomes the one serial step. Each pass asks for the slots that are
   * free and not already asked for by a pass in flight (`reserved`). A wake-up that finds every
   * free slot reserved, or the most passes in flight, is kept (`again`) and acted on when a pass
   * ends, so a task made ready during a pass is never left waiting for the safety poll.
   */
  const wake = (): void => {
    if (stopped) return;
    // A slot is held while a handler runs; results of ended attempts are written in the
    // background, at most `concurrency` of them waiting at once.
    const free = Math.min(concurrency - handlersRunning, 2 * concurrency - active.size) - reserved;
    if (claimsInFlight > 0 && (free <= 0 || claimsInFlight >= MAX_CLAIMS_IN_FLIGHT)) {
      again = true;
      return;
    }
    if (free <= 0) return;
    claimsInFlight++;
    reserved += free;
    const pass: Promise<void> = claimPass(free).finally(() => {
      claimsInFlight--;
      reserved -= free;
      claimPasses.delete(pass);
      if (again) {
        again = false;
        wake();
      }
    });
    claimPasses.add(pass);
  };

  const armDueTimer = (ms: number): void => {
    const at = Date.now() + ms;
    if (dueTimer && dueAt <= at) return;
    if (dueTimer) clearTimeout(dueTimer);
    dueAt = at;
    dueTimer = setTimeout(
      () => {
        dueTimer = null;
        dueAt = Infinity;
        wake();
      },
      Math.min(ms + 2, 2_147_000_000),
    );
    dueTimer.unref();
  };

  /** One claim pass for `free` slots; never rejects. */
  const claimPass = async (free: number): Promise<void> => {
    let claimed: ClaimedTask[];
    try {
      claimed = await claimTasks(ctx.db, queues, free, options.workerId);
      claimFailures = 0;
    } catch (err) {
      claimFailures++;
      again = false;
      ctx.logger.error({ err }, 'claiming tasks failed; retrying');
      armDueTimer(Math.min(5_000, 100 * 2 ** Math.min(claimFailures, 6)));
      return;
    }
    for (const task of claimed) startAttempt(task);
    if (claimed.length === free) again = true;
    else if (dueCheck || Date.now() - lastDueCheck > pollMs) {
      dueCheck = false;
      lastDueCheck = Date.now();
      try {
        const ms = await msUntilNextDue(ctx.db, queues);
        if (ms !== null) armDueTimer(ms);
      } catch (err) {
        ctx.logger.warn({ err }, 'reading the next retry time failed');
      }
    }
  };

  const startAttempt = (task: ClaimedTask): void => {
    const controller = new AbortController();
    const entry: ActiveAttempt = {
      ref: { attemptId: task.attemptId, taskId: task.taskId, jobId: task.job.id },
      controller,
      finishing: false,
      reason: null,
      logged: false,
      slotHeld: true,
      done: Promise.resolve(),
    };
    active.set(task.attemptId, entry);
    handlersRunning++;
    entry.done = runAttempt(task, entry)
      .catch((err: unknown) => {
        ctx.logger.error({ err, attemptId: task.attemptId }, 'attempt bookkeeping failed');
      })
      .finally(() => {
        releaseSlot(entry);
        active.delete(task.attemptId);
        wake();
      });
  };

  /** Gives the attempt's slot back (once) and looks for more work. */
  const releaseSlot = (entry: ActiveAttempt): void => {
    if (!entry.slotHeld) return;
    entry.slotHeld = false;
    handlersRunning--;
    wake();
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
    const { ref } = entry;
    const def = taskDefinition(task.job, task.name);
    const signal = entry.controller.signal;
    let outcome: { ok: true; output: unknown } | { ok: false; error: unknown };
    let handlerSettled: Promise<unknown> = Promise.resolve();
    let workdir: string | null = null;
    let timeoutTimer: NodeJS.Timeout | null = null;
    try {
      if (!def) throw new PermanentSetupError(`task '${task.name}' is not in the job's workflow definition`);
      const handler = await handlerFor(def.run).catch((err: unknown) => {
        throw new PermanentSetupError(`handler "${def.run}" cannot be loaded: ${errorText(err)}`);
      });
      const scope = buildTemplateScope(task.job, task.outputs, ctx.config.storageRoot);
      let inputs: Record<string, unknown>;
      try {
        const rendered = renderTemplate(def.with ?? {}, scope);
        inputs = rendered && typeof rendered === 'object' ? (rendered as Record<string, unknown>) : {};
      } catch (err) {
        throw new PermanentSetupError(`inputs of task '${task.name}' cannot be rendered: ${errorText(err)}`);
      }
      // The scratch folder is made when a handler first asks for it: most tasks never do, and
      // making and removing a folder per attempt is a large share of a short task's cost.
      const scratch = (): string =>
        (workdir ??= mkdtempSync(path.join(TMP_ROOT, `task-engine-${task.taskId}-`)));
      const hctx: HandlerContext = {
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
          logs?.add({
            jobId: ref.jobId,
            taskId: ref.taskId,
            severity: severity ?? 1,
            message: String(message),
          });
        },
        signal,
        get workdir() {
          return scratch();
        },
        storage: createStorageContext(ctx.config.storageRoot, task.job.client),
        tasks: task.outputs,
        logger: ctx.logger.child({ jobId: ref.jobId, taskId: ref.taskId, attemptId: ref.attemptId }),
      };
      if (def.timeout !== undefined && def.timeout > 0) {
        timeoutTimer = setTimeout(() => abort(entry, 'timeout'), def.timeout * 1000);
      }
      const run = Promise.resolve().then(() => handler(hctx));
      handlerSettled = run.then(
        () => undefined,
        () => undefined,
      );
      const aborted = new Promise<never>((_, reject) => {
        if (signal.aborted) reject(signal.reason as Error);
        signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
      });
      outcome = { ok: true, output: await Promise.race([run, aborted]) };
    } catch (error) {
      outcome = { ok: false, error };
    } finally {
      if (timeoutTimer) clearTimeout(timeoutTimer);
    }
    entry.finishing = true;
    // The handler has ended: its slot may take the next task while the result is written. An
    // aborted attempt keeps its slot until its handler has really stopped (below).
    if (!entry.reason) releaseSlot(entry);
    try {
      // The handler's own lines go in before the result's "completed"/"failed" line.
      if (entry.logged) await logs?.flush();
      await writeResult(task, entry, outcome, def?.timeout);
    } finally {
      // Keep the slot until the handler has really stopped (a child process killed on abort),
      // bounded so a handler that ignores its signal cannot hold the slot forever.
      if (entry.reason) await settleWithin(handlerSettled, settleMs);
      if (workdir) await rm(workdir, { recursive: true, force: true }).catch(() => undefined);
    }
  };

  const writeResult = async (
    task: ClaimedTask,
    entry: ActiveAttempt,
    outcome: { ok: true; output: unknown } | { ok: false; error: unknown },
    timeoutSeconds: number | undefined,
  ): Promise<void> => {
    const { ref } = entry;
    const reason = entry.reason;
    let apply: (tx: Queryable) => Promise<string>;
    if (reason === 'shutdown') apply = (tx) => writeHandBack(tx, ref);
    else if (reason === 'lost')
      apply = async (tx) => {
        await closeLostAttempt(tx, ref.attemptId, 'attempt superseded');
        return 'stale';
      };
    else if (reason === 'timeout')
      apply = (tx) => writeFailure(tx, ctx, ref, { error: `timed out after ${timeoutSeconds ?? '?'}s` });
    else if (reason === 'cancel') apply = (tx) => writeFailure(tx, ctx, ref, { error: 'attempt cancelled' });
    else if (outcome.ok) {
      let json: string | null = null;
      let problem = '';
      try {
        json = JSON.stringify(outcome.output === undefined ? null : outcome.output);
      } catch (err) {
        problem = errorText(err);
      }
      if (json !== null) {
        const outputJson = json;
        await writeWithRetries(ref, () => writer!.success({ ...ref, outputJson }), task);
        return;
      }
      apply = (tx) =>
        writeFailure(tx, ctx, ref, {
          error: `the handler's output is not JSON: ${problem}`,
          permanent: true,
        });
    } else {
      const failure = describeFailure(outcome.error);
      apply = (tx) => writeFailure(tx, ctx, ref, failure);
    }
    await writeWithRetries(ref, () => writer!.write(ref.jobId, apply), task);
  };

  /**
   * A result that cannot be written (database unreachable) is tried again a few times; if it
   * still fails, the attempt stops heart-beating and stall recovery retries the task.
   */
  const writeWithRetries = async (
    ref: AttemptRef,
    write: () => Promise<string>,
    task: ClaimedTask,
  ): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        logStale(task, await write());
        return;
      } catch (err) {
        if (attempt >= 5) throw err;
        ctx.logger.warn({ err, attemptId: ref.attemptId }, 'writing an attempt result failed; retrying');
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  };

  const logStale = (task: ClaimedTask, result: string): void => {
    if (result === 'stale')
      ctx.logger.debug(
        { jobId: task.job.id, taskId: task.taskId, attemptId: task.attemptId },
        'attempt result dropped: the attempt is no longer the running one',
      );
  };

  const heartbeat = async (): Promise<void> => {
    if (heartbeatRunning) return;
    const ids = [...active.values()].filter((a) => !a.finishing && !a.reason).map((a) => a.ref.attemptId);
    if (ids.length === 0) return;
    heartbeatRunning = true;
    try {
      // SKIP LOCKED: a row locked by a result being written is not waited for (waiting could
      // deadlock with a batch of results); every attempt is then checked without a lock.
      await ctx.db.query(
        `UPDATE attempts a SET heartbeat_at = now()
          WHERE a.id IN (SELECT id FROM attempts WHERE id = ANY($1::bigint[]) AND state = 'running'
                          ORDER BY id FOR UPDATE SKIP LOCKED)`,
        [ids],
      );
      // An attempt is still live when it is `running` and its task still runs it.
      const { rows } = await ctx.db.query<{ id: number }>(
        `SELECT a.id FROM attempts a JOIN tasks t ON t.id = a.task_id
          WHERE a.id = ANY($1::bigint[]) AND a.state = 'running' AND t.current_attempt_id = a.id AND t.state = 'running'`,
        [ids],
      );
      const alive = new Set(rows.map((r) => r.id));
      for (const id of ids) {
        const entry = active.get(id);
        if (entry && !alive.has(id)) {
          ctx.logger.info(
            { attemptId: id, jobId: entry.ref.jobId },
            'attempt is no longer running; aborting it',
          );
          abort(entry, 'lost');
        }
      }
    } catch (err) {
      ctx.logger.warn({ err }, 'attempt heartbeat failed');
    } finally {
      heartbeatRunning = false;
    }
  };

  return {
    name: 'workers',
    wake,
    activeAttempts: () => [...active.keys()],
    setQueues(next) {
      queues = [...new Set(next)];
      queueSet = new Set(queues);
      dueCheck = true;
      wake();
    },
    async start() {
      if (!stopped) return;
      stopped = false;
      logs = createLogBuffer(ctx.db, ctx.logger);
      writer = createResultWriter(ctx);
      unlisteners.push(
        await ctx.db.listen(CHANNELS.tasks, (payload) => {
          // Payload: `<queue>`, or `<queue> retry` when a task was put back with a delay.
          const [queue = '', note] = payload.split(' ');
          if (queue !== '' && !queueSet.has(queue)) return;
          if (note === 'retry') dueCheck = true;
          wake();
        }),
      );
      unlisteners.push(
        await ctx.db.listen(CHANNELS.cancel, (payload) => {
          const jobId = Number(payload);
          for (const entry of active.values()) if (entry.ref.jobId === jobId) abort(entry, 'cancel');
        }),
      );
      pollTimer = setInterval(wake, pollMs);
      pollTimer.unref();
      heartbeatTimer = setInterval(() => void heartbeat(), heartbeatMs);
      heartbeatTimer.unref();
      wake();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (pollTimer) clearInterval(pollTimer);
      if (dueTimer) clearTimeout(dueTimer);
      pollTimer = dueTimer = null;
      await Promise.all([...claimPasses]);
      // Graceful: running attempts may finish within the grace period (heartbeats go on).
      const all = () => Promise.all([...active.values()].map((a) => a.done));
      await settleWithin(all(), graceMs);
      for (const entry of active.values()) abort(entry, 'shutdown');
      await all();
      await writer?.drain();
      if (heartbeatTimer) clearInterval(heartbeatTimer);
      heartbeatTimer = null;
      for (const un of unlisteners.splice(0)) await un().catch(() => undefined);
      await logs?.close();
    },
  };
}

/** The abort reason given to a handler's signal. */
export class AttemptAbortedError extends Error {
  constructor(readonly reason: AbortReason) {
    super(
      reason === 'timeout'
        ? 'the attempt timed out'
        : reason === 'cancel'
          ? 'the job was broken'
          : reason === 'shutdown'
            ? 'the worker is shutting down'
            : 'the attempt was superseded',
    );
    this.name = 'AbortError';
  }
}

/** A failure before the handler ran (unknown handler, unrenderable inputs): never retried. */
class PermanentSetupError extends Error {
  override name = 'PermanentTaskError';
}

/**
 * Maps a thrown value to a failure: PermanentTaskError (by name, so a module handler's own copy
 * of the class counts) is not retried; RetryAfterError sets the delay.
 */
function describeFailure(err: unknown): { error: string; permanent?: boolean; retryAfterSeconds?: number } {
  const e = err as { name?: unknown; retryAfterSeconds?: unknown } | null;
  const error = errorText(err);
  if (e && e.name === 'PermanentTaskError') return { error, permanent: true };
  if (
    e &&
    e.name === 'RetryAfterError' &&
    typeof e.retryAfterSeconds === 'number' &&
    e.retryAfterSeconds >= 0
  )
    return { error, retryAfterSeconds: e.retryAfterSeconds };
  return { error };
}

function settleWithin(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    t.unref();
    p.then(
      () => {
        clearTimeout(t);
        resolve();
      },
      () => {
        clearTimeout(t);
        resolve();
      },
    );
  });
}
