/**
 * A per-process buffer of job log lines written by task handlers (`ctx.log`). Lines are written
 * in batches (one INSERT for many lines) but always in the order they were logged: batches are
 * written one after another, and inside a batch `unnest` yields rows in array order, so the
 * `bigserial` ids follow the order of the calls.
 */
import type { Logger } from 'pino';
import type { Queryable } from '../../store/executor.js';
import { insertWorkerLogLines } from '../../store/queries/logs.js';
import { systemClock, type Clock, type ClockTimer } from '../clock.js';
import { fitLogMessage, SEVERITY } from '../jobs/job-log.js';

/** One buffered line. */
export interface BufferedLogLine {
  jobId: number;
  taskId: number;
  severity: number;
  message: string;
}

/** A batched, ordered job log writer (progname `worker`). */
export interface LogBuffer {
  /** Queues one line; written within `flushIntervalMs`. */
  add(line: BufferedLogLine): void;
  /** Writes everything queued so far; resolves once it is in the database. Never throws. */
  flush(): Promise<void>;
  /** Flushes and stops the timer. */
  close(): Promise<void>;
}

/**
 * Creates a {@link LogBuffer} over `db`.
 * @param options.flushIntervalMs - longest time a line waits before it is written; default 100 ms.
 * @param options.maxBatch - lines per INSERT; default 500.
 * @param options.clock - the time lines are stamped with and the flush timer runs on; default the
 *   system clock (the worker pool passes `ctx.clock`).
 */
export function createLogBuffer(
  db: Queryable,
  logger: Logger,
  options: { flushIntervalMs?: number; maxBatch?: number; clock?: Clock } = {},
): LogBuffer {
  const interval = options.flushIntervalMs ?? 100;
  const maxBatch = options.maxBatch ?? 500;
  const clock = options.clock ?? systemClock;
  let pending: BufferedLogLine[] = [];
  let chain: Promise<void> = Promise.resolve();
  let timer: ClockTimer | null = null;

  const write = async (lines: BufferedLogLine[]): Promise<void> => {
    for (let i = 0; i < lines.length; i += maxBatch) {
      const batch = lines.slice(i, i + maxBatch);
      try {
        await insertLogLines(db, batch, clock.now());
      } catch (err) {
        // A batch fails as a whole (e.g. one job was deleted meanwhile): write line by line so
        // the others are kept.
        for (const line of batch) {
          try {
            await insertLogLines(db, [line], clock.now());
          } catch (lineErr) {
            logger.warn({ err: lineErr, jobId: line.jobId, cause: err }, 'job log line dropped');
          }
        }
      }
    }
  };

  const flush = (): Promise<void> => {
    if (timer) {
      timer.cancel();
      timer = null;
    }
    if (pending.length > 0) {
      const lines = pending;
      pending = [];
      chain = chain.then(() => write(lines));
    }
    return chain;
  };

  return {
    add(line) {
      pending.push(line);
      if (pending.length >= maxBatch) void flush();
      else if (!timer) timer = clock.setTimeout(() => void flush(), interval);
    },
    flush,
    close: flush,
  };
}

/** Writes `lines` (progname `worker`, stamped `now`) in one INSERT, in order. */
async function insertLogLines(db: Queryable, lines: BufferedLogLine[], now: Date): Promise<void> {
  if (lines.length === 0) return;
  await insertWorkerLogLines.run(db, {
    jobIds: lines.map((l) => l.jobId),
    taskIds: lines.map((l) => l.taskId),
    severities: lines.map((l) => clampSeverity(l.severity)),
    messages: lines.map((l) => fitLogMessage(l.message)),
    hiddenSeverity: SEVERITY.DEBUG,
    now,
  });
}

function clampSeverity(s: number): number {
  return Number.isInteger(s) && s >= 0 && s <= 4 ? s : SEVERITY.INFO;
}
