/**
 * `GET /jobs` (seed "GET: /jobs", SPEC section 5.5): reads the query string into a typed filter,
 * which `buildJobListing` (src/store/queries/jobs.ts) turns into fully parameterised SQL. Column
 * names come only from {@link ORDER_BY_COLUMNS}; every value from the request travels as a `$n`
 * parameter.
 */
import type { Queryable } from '../../store/executor.js';
import {
  buildJobListing,
  LIST_ORDER_BY_COLUMNS,
  listJobRows,
  type ListingAnchorRow,
  type ListOrderBy,
  readListingAnchor,
  SEARCH_INDEX_CHARS,
} from '../../store/queries/jobs.js';
import { EngineError } from '../../errors/catalogue.js';
import { parseFlag, parseInteger } from './input.js';
import { type JobRecord, type JobRow, toJobRecords, type Viewer } from './records.js';
import { parseTimestampIn } from './time.js';
import { JOB_STATES, type JobState } from './transitions.js';

export { LIST_ORDER_BY_COLUMNS as ORDER_BY_COLUMNS, SEARCH_INDEX_CHARS };
export type OrderBy = ListOrderBy;

/** Query parameters `GET /jobs` accepts. */
export const LIST_QUERY_FIELDS = [
  'after_id',
  'asc',
  'client',
  'failed',
  'from',
  'job_ids',
  'limit',
  'offset',
  'order_by',
  'persist',
  'search',
  'state',
  'to',
] as const;

/** Default and largest `limit`. */
export const DEFAULT_LIMIT = 10;
export const MAX_LIMIT = 1000;
/** Most ids accepted in `job_ids`. */
export const MAX_JOB_IDS = 1000;
/** Longest `search` term. */
export const MAX_SEARCH_LENGTH = 200;
/** Largest `offset` (deep paging beyond this should use `from`/`to` or `job_ids`). */
export const MAX_OFFSET = 1_000_000;

/** A parsed `GET /jobs` query. */
export interface JobListFilter {
  asc: boolean;
  /** Only this client's jobs; for non-admins always their own client. */
  client: string | null;
  failed: boolean | null;
  from: Date | null;
  to: Date | null;
  jobIds: number[] | null;
  limit: number;
  offset: number;
  /** Keyset paging: the page continues right after this job in the listing's order (null: from the start). */
  afterId: number | null;
  /** The sort column; null = not given (id, or created_at when from/to is given). */
  orderBy: OrderBy | null;
  persist: boolean | null;
  search: string | null;
  state: JobState | null;
}

function single(query: Record<string, unknown>, name: string): unknown {
  const v = query[name];
  if (Array.isArray(v)) {
    if (v.length === 1) return v[0];
    throw new EngineError('VALIDATION_FAILED', `${name} was given ${v.length} times; give it once`);
  }
  return v;
}

/**
 * Reads the query string of `GET /jobs`.
 * @param query - the raw query (string values; a repeated key may come as an array).
 * @throws {EngineError} `VALIDATION_FAILED` (400) for each bad value, saying what is accepted;
 * `FORBIDDEN` (403) when a non-admin asks for another client's jobs.
 */
export function parseListQuery(viewer: Viewer, query: Record<string, unknown>): JobListFilter {
  const unknown = Object.keys(query).filter((k) => !(LIST_QUERY_FIELDS as readonly string[]).includes(k));
  if (unknown.length > 0)
    throw new EngineError(
      'VALIDATION_FAILED',
      `unknown query parameter${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}; accepted: ${LIST_QUERY_FIELDS.join(', ')}`,
    );
  const get = (name: string): unknown => {
    const v = single(query, name);
    return v === undefined || v === '' ? undefined : v;
  };
  const f: JobListFilter = {
    asc: false,
    client: viewer.admin ? null : viewer.client,
    failed: null,
    from: null,
    to: null,
    jobIds: null,
    limit: DEFAULT_LIMIT,
    offset: 0,
    afterId: null,
    orderBy: null,
    persist: null,
    search: null,
    state: null,
  };
  const asc = get('asc');
  if (asc !== undefined) f.asc = parseFlag('asc', asc);
  const client = get('client');
  if (client !== undefined) {
    if (typeof client !== 'string')
      throw new EngineError('VALIDATION_FAILED', 'client must be a client name');
    if (!viewer.admin && client !== viewer.client)
      throw new EngineError(
        'FORBIDDEN',
        `the client filter is for admins; client "${viewer.client}" sees only its own jobs`,
      );
    f.client = client;
  }
  const failed = get('failed');
  if (failed !== undefined) f.failed = parseFlag('failed', failed);
  const from = get('from');
  if (from !== undefined) f.from = parseTimestampIn('from', from);
  const to = get('to');
  if (to !== undefined) f.to = parseTimestampIn('to', to);
  if (f.from && f.to && f.from > f.to)
    throw new EngineError(
      'VALIDATION_FAILED',
      `from (${f.from.toISOString()}) is after to (${f.to.toISOString()})`,
    );
  const jobIds = get('job_ids');
  if (jobIds !== undefined) f.jobIds = parseJobIds(jobIds);
  const limit = get('limit');
  if (limit !== undefined) f.limit = parseInteger('limit', limit, 1, MAX_LIMIT);
  const offset = get('offset');
  if (offset !== undefined) f.offset = parseInteger('offset', offset, 0, MAX_OFFSET);
  const afterId = get('after_id');
  if (afterId !== undefined) {
    f.afterId = parseInteger('after_id', afterId, 1, Number.MAX_SAFE_INTEGER);
    if (f.offset > 0)
      throw new EngineError(
        'VALIDATION_FAILED',
        `after_id and offset cannot be combined: after_id continues right after job ${f.afterId}, offset skips rows from the start; give one of them`,
      );
  }
  const orderBy = get('order_by');
  if (orderBy !== undefined) {
    if (typeof orderBy !== 'string' || !Object.hasOwn(LIST_ORDER_BY_COLUMNS, orderBy))
      throw new EngineError(
        'VALIDATION_FAILED',
        `order_by ${JSON.stringify(orderBy)} is not accepted; accepted: ${Object.keys(LIST_ORDER_BY_COLUMNS).join(', ')}`,
      );
    f.orderBy = orderBy as OrderBy;
  }
  const persist = get('persist');
  if (persist !== undefined) f.persist = parseFlag('persist', persist);
  const search = get('search');
  if (search !== undefined) {
    if (typeof search !== 'string' || search.length > MAX_SEARCH_LENGTH)
      throw new EngineError(
        'VALIDATION_FAILED',
        `search must be text of at most ${MAX_SEARCH_LENGTH} characters`,
      );
    f.search = search;
  }
  const state = get('state');
  if (state !== undefined) f.state = parseState(state);
  return f;
}

const STATE_HELP = JOB_STATES.map((s, i) => `${i} (${s})`).join(', ');

/** Reads `state`: a numeric id 0–6 as the seed lists them, or the state's name. */
export function parseState(value: unknown): JobState {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '';
  if (/^\d$/.test(text) && Number(text) < JOB_STATES.length) return JOB_STATES[Number(text)]!;
  if ((JOB_STATES as readonly string[]).includes(text)) return text as JobState;
  throw new EngineError(
    'VALIDATION_FAILED',
    `state ${JSON.stringify(value)} is not accepted; accepted: ${STATE_HELP} (the number or the name)`,
  );
}

/** Reads `job_ids`: a comma list of positive whole numbers (spaces allowed), at most {@link MAX_JOB_IDS}. */
export function parseJobIds(value: unknown): number[] {
  const help = `job_ids must be a comma-separated list of up to ${MAX_JOB_IDS} job ids (positive whole numbers), e.g. 12,15,20`;
  if (typeof value !== 'string') throw new EngineError('VALIDATION_FAILED', help);
  const parts = value.split(',').map((p) => p.trim());
  if (parts.length > MAX_JOB_IDS) throw new EngineError('VALIDATION_FAILED', `${help}; got ${parts.length}`);
  const ids: number[] = [];
  for (const p of parts) {
    if (p === '') continue;
    const n = /^\d{1,16}$/.test(p) ? Number(p) : NaN;
    if (!Number.isSafeInteger(n) || n < 1)
      throw new EngineError('VALIDATION_FAILED', `${help}; ${JSON.stringify(p)} is not a job id`);
    ids.push(n);
  }
  if (ids.length === 0) throw new EngineError('VALIDATION_FAILED', `${help}; got none`);
  return [...new Set(ids)];
}

/**
 * Builds the SQL of a listing ({@link buildJobListing}); `after` is the sort keys of job
 * `f.afterId` ({@link readListingAnchor}), null for a listing from the start.
 * @returns SQL text (identifiers from the whitelist only) and its parameters.
 */
export function buildListQuery(
  f: JobListFilter,
  after: ListingAnchorRow | null = null,
): { sql: string; params: unknown[] } {
  return buildJobListing({ ...f, after });
}

/**
 * Runs a parsed listing and maps the rows to records (with positions). With `after_id`, first
 * reads that job's sort keys (one primary-key lookup), so the page is read from the order's index
 * right after it: as cheap at any depth as the first page.
 *
 * The anchor only has to be a job the viewer can see: it need not match the filters, because a
 * job moves between states (and its priority may change) while someone pages. Its current sort
 * keys mark the place, and the page holds the jobs matching the filters that come after that place.
 * @throws {EngineError} `VALIDATION_FAILED` (400) when job `afterId` does not exist or is another
 * client's (for a non-admin viewer: the two are not told apart).
 */
export async function runListQuery(q: Queryable, viewer: Viewer, f: JobListFilter): Promise<JobRecord[]> {
  let after: ListingAnchorRow | null = null;
  if (f.afterId !== null) {
    after = await readListingAnchor.first(q, { id: f.afterId, admin: viewer.admin, client: viewer.client });
    if (after === null)
      throw new EngineError(
        'VALIDATION_FAILED',
        `after_id ${f.afterId} is not a job ${viewer.admin ? 'that exists' : `of client "${viewer.client}"`}; give the id of a job from the previous page`,
      );
  }
  const rows = await listJobRows<JobRow>(q, { ...f, after });
  return toJobRecords(q, rows);
}
