/**
 * The operator console's summary reads (docs/console.md): recent throughput (`GET /stats`) and
 * the total of a job listing (`GET /stats/job-count`). Both are scoped like `/jobs`: a non-admin
 * sees its own client's jobs, an admin every client's or one client's with `?client=`. Both are
 * bounded so that they stay cheap with millions of jobs: a time window of at most a day read
 * through an index, and a count that stops at {@link JOB_COUNT_CAP}.
 */
import { EngineError } from '../../errors/catalogue.js';
import { countFinishedJobs, countListedJobRows } from '../../store/queries/console.js';
import type { EngineContext } from '../context.js';
import { parseInteger } from '../jobs/input.js';
import { parseListQuery } from '../jobs/list.js';
import type { Viewer } from '../jobs/records.js';

/** Default and largest `minutes` of `GET /stats`. */
export const DEFAULT_STATS_MINUTES = 60;
export const MAX_STATS_MINUTES = 1440;
/** A `/stats/job-count` answer stops counting here and says `capped: true`. */
export const JOB_COUNT_CAP = 10_000;

/** One minute of {@link Stats}. */
export interface StatsBucket {
  /** Start of the minute, ISO UTC. */
  at: string;
  /** Jobs that completed without failing in it. */
  completed: number;
  /** Jobs that completed failed. */
  failed: number;
  /** Jobs that were broken. */
  broken: number;
}

/** The `GET /stats` reply. */
export interface Stats {
  /** The end of the window (the engine clock's now), ISO UTC. */
  now: string;
  minutes: number;
  bucket_seconds: number;
  /** The client the numbers are about, or null for every client. */
  client: string | null;
  /** Oldest first; one per minute of the window, zeros included. */
  buckets: StatsBucket[];
  /** Sums over the window. */
  totals: { completed: number; failed: number; broken: number };
}

const STATS_FIELDS = ['minutes', 'client'];

/** A `client` query value as `/jobs` and `/dashboard` read it: admins any client, others their own. */
function scopedClient(viewer: Viewer, asked: unknown): string | null {
  if (asked === undefined || asked === '') return viewer.admin ? null : viewer.client;
  if (typeof asked !== 'string')
    throw new EngineError('VALIDATION_FAILED', 'client must be given once, as a client name');
  if (!viewer.admin && asked !== viewer.client)
    throw new EngineError(
      'FORBIDDEN',
      `the client filter is for admins; client "${viewer.client}" sees only its own jobs`,
    );
  return asked;
}

/**
 * Jobs that ended per minute over the last `minutes` (default 60, at most 1440), split into
 * completed, failed and broken.
 * @param query - `minutes`, and for admins `client`.
 * @throws {EngineError} `VALIDATION_FAILED` (400) for an unknown parameter or a bad value;
 * `FORBIDDEN` (403) when a non-admin asks for another client.
 */
export async function getStats(
  ctx: EngineContext,
  viewer: Viewer,
  query: Record<string, unknown> = {},
): Promise<Stats> {
  const unknown = Object.keys(query).filter((k) => !STATS_FIELDS.includes(k));
  if (unknown.length > 0)
    throw new EngineError(
      'VALIDATION_FAILED',
      `unknown query parameter${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}; accepted: ${STATS_FIELDS.join(', ')} (admins)`,
    );
  const minutes =
    query.minutes === undefined || query.minutes === ''
      ? DEFAULT_STATS_MINUTES
      : parseInteger('minutes', query.minutes, 1, MAX_STATS_MINUTES);
  const client = scopedClient(viewer, query.client);
  const bucketSeconds = 60;
  const now = ctx.clock.now();
  const since = new Date(now.getTime() - minutes * bucketSeconds * 1000);
  const rows = await countFinishedJobs.rows(ctx.db, { now, since, bucketSeconds, client });
  const byAgo = new Map(rows.map((r) => [Number(r.ago), r]));
  const buckets: StatsBucket[] = [];
  const totals = { completed: 0, failed: 0, broken: 0 };
  for (let ago = minutes - 1; ago >= 0; ago--) {
    const r = byAgo.get(ago);
    const bucket: StatsBucket = {
      at: new Date(now.getTime() - (ago + 1) * bucketSeconds * 1000).toISOString(),
      completed: r?.completed ?? 0,
      failed: r?.failed ?? 0,
      broken: r?.broken ?? 0,
    };
    totals.completed += bucket.completed;
    totals.failed += bucket.failed;
    totals.broken += bucket.broken;
    buckets.push(bucket);
  }
  return { now: now.toISOString(), minutes, bucket_seconds: bucketSeconds, client, buckets, totals };
}

/** The `GET /stats/job-count` reply. */
export interface JobCount {
  /** The jobs the filter selects, or {@link JOB_COUNT_CAP} when there are more. */
  count: number;
  /** True when there are more than `count`. */
  capped: boolean;
}

/**
 * Counts the jobs a `GET /jobs` query selects (the same parameters, read by the same rules;
 * `limit`, `offset`, `after_id`, `order_by` and `asc` are accepted and ignored), up to {@link JOB_COUNT_CAP}.
 * @throws {EngineError} as `GET /jobs` does for the same query.
 */
export async function countListedJobs(
  ctx: EngineContext,
  viewer: Viewer,
  query: Record<string, unknown> = {},
): Promise<JobCount> {
  const filter = parseListQuery(viewer, query);
  const n = await countListedJobRows(ctx.db, { ...filter, after: null }, JOB_COUNT_CAP);
  return n > JOB_COUNT_CAP ? { count: JOB_COUNT_CAP, capped: true } : { count: n, capped: false };
}
