/**
 * The process logger: pino writing one JSON object per line (`TASK_ENGINE_LOG_FORMAT=json`, the
 * default) or human-readable lines through pino-pretty (`pretty`), at `TASK_ENGINE_LOG_LEVEL`.
 *
 * Every line carries exactly one `msg` key and names a job, task and attempt as `job_id`,
 * `task_id` and `attempt_id`, whatever the call site wrote (docs/logging.md).
 */
import { pino, type Logger, type LoggerOptions } from 'pino';
import { build as buildPretty } from 'pino-pretty';

/** Output formats of the process log (`TASK_ENGINE_LOG_FORMAT`). */
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Call-site key → the key the log line carries. */
const RENAMED_KEYS: Readonly<Record<string, string>> = {
  jobId: 'job_id',
  taskId: 'task_id',
  attemptId: 'attempt_id',
  // pino writes the message as `msg` after the merged fields: a `msg` among the fields would make a
  // second `msg` key, and a JSON parser keeps only the last one.
  msg: 'detail',
};

/**
 * Renames the keys of one log line's fields (see {@link RENAMED_KEYS}); returns `fields` itself
 * when nothing needs renaming, so the common line costs no copy.
 */
export function normaliseLogFields(fields: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | null = null;
  for (const key in fields) {
    const to = RENAMED_KEYS[key];
    if (to === undefined) continue;
    out ??= { ...fields };
    if (!(to in fields)) out[to] = fields[key];
    delete out[key];
  }
  return out ?? fields;
}

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  /** pino level: fatal, error, warn, info, debug, trace, silent. */
  level: string;
  /** `json` (default) or `pretty`. */
  format?: LogFormat;
  /** File descriptor to write to; default 1 (stdout). */
  fd?: 1 | 2;
}

/**
 * Creates the process logger.
 * @returns a pino logger; `pretty` formats synchronously through pino-pretty (for a terminal, not
 * for collection).
 */
export function createLogger(opts: CreateLoggerOptions): Logger {
  const options: LoggerOptions = {
    level: opts.level,
    formatters: { log: normaliseLogFields, bindings: normaliseLogFields },
  };
  if (opts.format === 'pretty')
    return pino(options, buildPretty({ destination: opts.fd ?? 1, sync: true, colorize: false }));
  return pino(options, pino.destination({ dest: opts.fd ?? 1, sync: false }));
}
