/**
 * A per-process buffer of job log lines written by task handlers (`ctx.log`). Lines are written
 * in batches (one INSERT for many lines) but always in the order they were logged: batches are
 * written one after another, and inside a batch `unnest` yields rows in array order, so the
 * `bigserial` ids follow the order of the calls.
 */
import type { Logger } from 'pino';
import type { Queryable } from '../../store/executor.js';
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
 */
export function createLogBuffer(
  db: Queryable,
  logger: Logger,
  options: { flushIntervalMs?: number; maxBatch?: number } = {},
): LogBuffer {
  const interval = options.flushIntervalMs ?? 100;
  const maxBatch = options.maxBatch ?? 500;
  let pending: BufferedLogLine[] = [];
  let chain: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | null = null;

  const write = async (lines: BufferedLogLine[]): Promise<void> => {
    for (let i = 0; i < lines.length; i += maxBatch) {
      const batch = lines.slice(i, i + maxBatch);
      try {
        await insertLogLines(db, batch);
      } catch (err) {
        // A batch fails as a whole (e.g. one job was deleted meanwhile): write line by line so
        // the others are kept.
        for (const line of batch) {
          try {
            await insertLogLines(db, [line]);
          } catch (lineErr) {
            logger.warn({ err: lineErr, jobId: line.jobId, cause: err }, 'job log line dropped');
          }
        }
      }
    }
  };

  const flush = (): Promise<void> => {
    if (timer) {
      clearTimeout(timer);
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
      else if (!timer) {
        timer = setTimeout(() => void flush(), interval);
        timer.unref();
      }
    },
    flush,
    close: flush,
  };
}

/** Writes `lines` (progname `worker`) in one INSERT, in order. */
export async function insertLogLines(db: Queryable, lines: BufferedLogLine[]): Promise<void> {
  if (lines.length === 0) return;
  await db.query(
    `INSERT INTO logs (job_id, task_id, severity, progname, message, visible)
     SELECT j, t, s, 'worker', m, s > ${SEVERITY.DEBUG}
       FROM unnest($1::bigint[], $2::bigint[], $3::smallint[], $4::text[]) AS u(j, t, s, m)`,
    [
      lines.map((l) => l.jobId),
      lines.map((l) => l.taskId),
      lines.map((l) => clampSeverity(l.severity)),
      lines.map((l) => fitLogMessage(l.message)),
    ],
  );
}

function clampSeverity(s: number): number {
  return Number.isInteger(s) && s >= 0 && s <= 4 ? s : SEVERITY.INFO;
}
