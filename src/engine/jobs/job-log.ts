/**
 * Per-job log entries (SPEC section 10).
 */
import type { Queryable } from '../../store/executor.js';
import { appendJobLog } from '../../store/queries/jobs.js';

/** Log severities (Ruby Logger scale, as the seed's `severity: 1 INFO`). */
export const SEVERITY = { DEBUG: 0, INFO: 1, WARN: 2, ERROR: 3, FATAL: 4 } as const;
export const SEVERITY_NAMES = ['DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL', 'UNKNOWN'] as const;

/** Which part of the engine wrote an entry. */
export type Progname = 'api' | 'controller' | 'worker' | 'callback' | 'scheduler';

/** One entry to append. */
export interface LogEntryInput {
  jobId: number;
  /** 0 for job-level entries. */
  taskId?: number;
  /** 0..4; default 1 (INFO). DEBUG entries are written with `visible: false`. */
  severity?: number;
  progname: Progname;
  message: string;
  /** When the entry is written: the engine clock's time (`ctx.clock.now()`). */
  now: Date;
}

/** Longest message stored; longer ones are cut with a note (keeps one bad task from filling the table). */
export const MAX_LOG_MESSAGE_CHARS = 16_384;

/**
 * A message as stored: cut at {@link MAX_LOG_MESSAGE_CHARS} characters with a note of how many
 * more there were, else unchanged.
 */
export function fitLogMessage(message: string): string {
  if (message.length <= MAX_LOG_MESSAGE_CHARS) return message;
  return `${message.slice(0, MAX_LOG_MESSAGE_CHARS)}… [cut: ${message.length - MAX_LOG_MESSAGE_CHARS} more characters]`;
}

/** Appends one entry to a job's log. */
export async function appendLog(q: Queryable, e: LogEntryInput): Promise<void> {
  const severity = e.severity ?? SEVERITY.INFO;
  const message = fitLogMessage(e.message);
  await appendJobLog.run(q, {
    jobId: e.jobId,
    taskId: e.taskId ?? 0,
    severity,
    progname: e.progname,
    message,
    visible: severity > SEVERITY.DEBUG,
    now: e.now,
  });
}
