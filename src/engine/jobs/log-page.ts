/**
 * One page of a job's log (`GET /logs/<id>?offset=&limit=&severity=`), for readers of long logs
 * (the console's log view pages through a job with 100 000 entries). Without `offset`, `limit`
 * and `severity` the route answers the whole log as before ({@link getJobLogs}).
 */
import { countJobLogEntries, readJobLogPage } from '../../store/queries/console.js';
import { EngineError } from '../../errors/catalogue.js';
import type { EngineContext } from '../context.js';
import { parseInteger, parseJobId } from './input.js';
import { findVisibleJob, type LogRecord, toLogRecord, type Viewer } from './records.js';

/** Largest `limit` of a log page. */
export const MAX_LOG_PAGE = 5000;
/** Largest `offset` of a log page. */
export const MAX_LOG_OFFSET = 100_000_000;

/** The query parameters that ask for a page. */
export const LOG_PAGE_FIELDS = ['offset', 'limit', 'severity'] as const;

/** What a page request asks for. */
export interface LogPageRequest {
  showAll: boolean;
  /** Raw query values; undefined when not given. */
  offset?: unknown;
  limit?: unknown;
  severity?: unknown;
}

/** A page and the number of entries the filter selects in the whole log. */
export interface LogPage {
  entries: LogRecord[];
  total: number;
}

/** Whether a `/logs` query asks for a page (any of {@link LOG_PAGE_FIELDS} given). */
export function isLogPageQuery(query: Record<string, unknown>): boolean {
  return LOG_PAGE_FIELDS.some((k) => query[k] !== undefined && query[k] !== '');
}

const SEVERITY_WORDS = ['DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];

/** Reads `severity`: 0–4 or its name (DEBUG, INFO, WARN, ERROR, FATAL; any case). */
function parseSeverity(value: unknown): number {
  if (typeof value === 'string') {
    const i = SEVERITY_WORDS.indexOf(value.trim().toUpperCase());
    if (i >= 0) return i;
  }
  try {
    return parseInteger('severity', value, 0, 4);
  } catch {
    throw new EngineError(
      'VALIDATION_FAILED',
      `severity is the lowest severity shown: 0 (DEBUG), 1 (INFO), 2 (WARN), 3 (ERROR) or 4 (FATAL), the number or the name; got ${JSON.stringify(value)}`,
    );
  }
}

/**
 * Reads one page of a job's log: the entries from the `offset`-th (0-based, default 0) on, at most
 * `limit` (default and largest {@link MAX_LOG_PAGE}), of at least `severity` (default 0), hidden
 * (DEBUG, `visible: false`) entries only with `showAll`; and how many entries that filter selects.
 * @throws {EngineError} `VALIDATION_FAILED` (400) for a bad id, offset, limit or severity (a
 * repeated parameter too); `JOB_NOT_FOUND` (404) for a job the viewer cannot see.
 */
export async function getJobLogPage(
  ctx: EngineContext,
  viewer: Viewer,
  idText: string,
  request: LogPageRequest,
): Promise<LogPage> {
  const id = parseJobId(idText);
  for (const k of LOG_PAGE_FIELDS)
    if (Array.isArray(request[k]))
      throw new EngineError('VALIDATION_FAILED', `${k} was given more than once; give it once`);
  const given = (v: unknown): boolean => v !== undefined && v !== '';
  const offset = given(request.offset) ? parseInteger('offset', request.offset, 0, MAX_LOG_OFFSET) : 0;
  const limit = given(request.limit) ? parseInteger('limit', request.limit, 1, MAX_LOG_PAGE) : MAX_LOG_PAGE;
  const minSeverity = given(request.severity) ? parseSeverity(request.severity) : 0;
  await findVisibleJob(ctx.db, viewer, id);
  const filter = { jobId: id, showAll: request.showAll, minSeverity };
  const [rows, count] = await Promise.all([
    readJobLogPage.rows(ctx.db, { ...filter, limit, offset }),
    countJobLogEntries.first(ctx.db, filter),
  ]);
  return { entries: rows.map(toLogRecord), total: Number(count?.n ?? 0) };
}
