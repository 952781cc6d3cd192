/**
 * The progress writer of a worker pool: what handlers report through `ctx.progress`, throttled.
 * A report only replaces the attempt's pending value in memory; every `intervalMs` (when something
 * is pending) one statement, `writeTaskProgress`, writes the latest value of every attempt of the
 * pool that has one, and stamps those attempts' heartbeats. So a handler may call `ctx.progress`
 * thousands of times a second and its task is still written a few times a second at most.
 *
 * When an attempt ends, {@link ProgressWriter.settle} writes its last pending value (or drops it)
 * and waits for any write in flight, before the attempt's result is written: a progress write never
 * lands after its result. The statement itself is guarded by the task's `current_attempt_id` and
 * `running` state, so a superseded attempt never writes over the task.
 */
import { writeTaskProgress } from '../../store/queries/task-progress.js';
import type { HandlerContext } from '../../workflows/types.js';
import type { ClockTimer } from '../clock.js';
import type { EngineContext } from '../context.js';
import { readProgressReport, type ProgressValue } from './progress-report.js';
import type { AttemptRef } from './results.js';

/** Default of {@link ProgressWriterOptions.intervalMs}. */
export const DEFAULT_PROGRESS_INTERVAL_MS = 500;

/** Options of {@link createProgressWriter}. */
export interface ProgressWriterOptions {
  /** Least time between two writes, ms; default {@link DEFAULT_PROGRESS_INTERVAL_MS}. */
  intervalMs?: number;
}

/** Throttled progress of the attempts of one worker pool. */
export interface ProgressWriter {
  /**
   * Starts tracking attempt `ref` and returns its `ctx.progress`. `warn` gets one line the first
   * time a call is ignored or bounded (bad fraction, detail dropped).
   */
  track(ref: AttemptRef, warn: (message: string) => void): HandlerContext['progress'];
  /**
   * Ends attempt `attemptId`: its pending value is written (`write` true) or dropped, and any
   * write in flight has finished when this resolves; later reports of the attempt are ignored.
   * Never rejects (a failed write is logged).
   */
  settle(attemptId: number, write: boolean): Promise<void>;
  /** Writes everything pending and waits for it; reports after this are ignored. Never rejects. */
  close(): Promise<void>;
}

/** One tracked attempt. */
interface Tracked {
  ref: AttemptRef;
  pending: ProgressValue | null;
  /** The last value written (as compared text), so an unchanged report is not written again. */
  written: string | null;
  /** Whether a value was ever accepted (an attempt that never reported has nothing to settle). */
  reported: boolean;
  warned: boolean;
  warn: (message: string) => void;
}

/** Creates the {@link ProgressWriter} of a worker pool. */
export function createProgressWriter(
  ctx: EngineContext,
  options: ProgressWriterOptions = {},
): ProgressWriter {
  const intervalMs = Math.max(10, options.intervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS);
  const tracked = new Map<number, Tracked>();
  let timer: ClockTimer | null = null;
  /** Writes run one after another: a settle waits for the one in flight. */
  let chain: Promise<void> = Promise.resolve();
  let closed = false;

  const write = async (entries: Tracked[]): Promise<void> => {
    const batch: { t: Tracked; v: ProgressValue; key: string }[] = [];
    for (const t of entries) {
      const v = t.pending;
      t.pending = null;
      if (!v) continue;
      const key = `${v.fraction}\u0000${v.message ?? ''}\u0000${v.detail ?? ''}`;
      if (key !== t.written) batch.push({ t, v, key });
    }
    if (batch.length === 0) return;
    try {
      await writeTaskProgress.run(ctx.db, {
        taskIds: batch.map((b) => b.t.ref.taskId),
        attemptIds: batch.map((b) => b.t.ref.attemptId),
        fractions: batch.map((b) => b.v.fraction),
        messages: batch.map((b) => b.v.message),
        details: batch.map((b) => b.v.detail),
        now: ctx.clock.now(),
      });
      for (const b of batch) b.t.written = b.key;
      ctx.metrics?.progressWrites.inc(batch.length);
    } catch (err) {
      // Progress is advisory: a lost write is replaced by the next report.
      ctx.logger.warn({ err, attempts: batch.length }, 'writing task progress failed');
    }
  };

  const enqueue = (entries: Tracked[]): Promise<void> => {
    chain = chain.then(() => write(entries));
    return chain;
  };

  const arm = (): void => {
    if (timer || closed) return;
    timer = ctx.clock.setTimeout(() => {
      timer = null;
      void enqueue([...tracked.values()]);
    }, intervalMs);
  };

  return {
    track(ref, warn) {
      const entry: Tracked = { ref, pending: null, written: null, reported: false, warned: false, warn };
      tracked.set(ref.attemptId, entry);
      return (fraction, message, detail) => {
        if (tracked.get(ref.attemptId) !== entry) return;
        const { value, problems } = readProgressReport(fraction, message, detail);
        if (problems.length > 0 && !entry.warned) {
          entry.warned = true;
          entry.warn(`${problems.join('; ')} (reported once per attempt)`);
        }
        if (!value) return;
        entry.pending = value;
        entry.reported = true;
        arm();
      };
    },
    async settle(attemptId, writePending) {
      const entry = tracked.get(attemptId);
      tracked.delete(attemptId);
      if (!entry?.reported) return;
      if (!writePending) entry.pending = null;
      await (entry.pending ? enqueue([entry]) : chain);
    },
    async close() {
      closed = true;
      timer?.cancel();
      timer = null;
      const rest = [...tracked.values()];
      tracked.clear();
      await enqueue(rest);
    },
  };
}
