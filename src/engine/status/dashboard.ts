/**
 * `GET /dashboard` (seed "GET: /dashboard"): the slot settings, the started, queued and scheduled
 * jobs, and the version; beside the seed's keys, the `paused` and `pending` jobs (waiting for a
 * resume, or for their semaphore). Queued jobs come in admission order (the order the controller
 * starts them); the other lists by id. Each row is the job record without `parameters`, with its
 * `position` in its list; rows of jobs that wait also say why (`waiting`).
 */
import {
  listClientQueuedJobs,
  listClientStateJobs,
  listQueuedJobs,
  listStateJobs,
} from '../../store/queries/jobs.js';
import { listDashboardJobs } from '../../store/queries/status.js';
import type { EngineContext } from '../context.js';
import { EngineError } from '../../errors/catalogue.js';
import {
  computePositions,
  type DashboardJobRecord,
  getPositionMethod,
  type JobRow,
  toDashboardRecord,
  type Viewer,
} from '../jobs/records.js';
import { readSettings } from '../settings.js';
import type { WaitingJobRow } from '../../store/queries/admission.js';
import { explainJobs, explainRows, type Waiting } from './waiting.js';

/**
 * Most rows of `started` (jobs that hold a slot: at most `max_jobs` of them in practice, so the
 * list is whole and its length is the slots in use).
 */
export const DASHBOARD_LIST_LIMIT = 1000;

/**
 * Most rows of each list of waiting jobs (queued, scheduled, paused, pending): the head of each,
 * the jobs that start next. The whole of a list is paged with `GET /jobs?state=…&order_by=position&asc=1`
 * (same order, same positions); its length is in `/health`. Bounded so that `/dashboard` costs the
 * same at any depth of the queue (each row also carries its `waiting`).
 */
export const DASHBOARD_WAITING_LIST_LIMIT = 100;

/** A `/dashboard` row: rows of waiting jobs say why they wait (`waiting`, src/engine/status/waiting.ts). */
export type DashboardRow = DashboardJobRecord & { waiting?: Waiting | null };

/** The states `/dashboard` lists, each under its own key: the seed's three, then paused and pending. */
export const DASHBOARD_STATES = ['started', 'queued', 'scheduled', 'paused', 'pending'] as const;

/** The `/dashboard` reply: the seed's shape plus `paused` and `pending`. */
export interface Dashboard {
  max_jobs: number;
  priority_slots: number;
  started: DashboardRow[];
  queued: DashboardRow[];
  scheduled: DashboardRow[];
  /** Paused jobs (`PATCH queue_state: paused`), by id; not part of the seed's reply. */
  paused: DashboardRow[];
  /** Jobs waiting for their `semaphore_url`, by id; not part of the seed's reply. */
  pending: DashboardRow[];
  version: string;
}

/**
 * Reads one `/dashboard` list: the first {@link DASHBOARD_LIST_LIMIT} started jobs or
 * {@link DASHBOARD_WAITING_LIST_LIMIT} jobs of another `state` (of `client`
 * only unless null) in the state's list order, each list along its own index (queued jobs along
 * the admission indexes, the others by id), so the cost is the rows shown, not the state's size.
 * With the `window` position method (the former way, for comparison) one statement with a
 * computed order serves every list instead.
 */
async function readDashboardList(
  ctx: EngineContext,
  state: (typeof DASHBOARD_STATES)[number],
  client: string | null,
): Promise<Record<string, unknown>[]> {
  const limit = state === 'started' ? DASHBOARD_LIST_LIMIT : DASHBOARD_WAITING_LIST_LIMIT;
  if (getPositionMethod() === 'window') return listDashboardJobs.rows(ctx.db, { state, client, limit });
  if (state === 'queued')
    return client === null
      ? listQueuedJobs.rows(ctx.db, { limit })
      : listClientQueuedJobs.rows(ctx.db, { client, limit });
  return client === null
    ? listStateJobs.rows(ctx.db, { state, limit })
    : listClientStateJobs.rows(ctx.db, { state, client, limit });
}

/**
 * Builds the dashboard. Admins see every client's jobs and may narrow to one with `?client=`;
 * any other client sees its own jobs. `position` is the job's rank among all jobs of its state
 * (the admission order is engine-wide), so a client's own queued jobs may show positions 3 and 7.
 * @throws {EngineError} `VALIDATION_FAILED` (400) for an unknown query parameter or a bad client;
 * `FORBIDDEN` (403) when a non-admin asks for another client.
 */
export async function getDashboard(
  ctx: EngineContext,
  viewer: Viewer,
  query: Record<string, unknown> = {},
): Promise<Dashboard> {
  const unknown = Object.keys(query).filter((k) => k !== 'client');
  if (unknown.length > 0)
    throw new EngineError(
      'VALIDATION_FAILED',
      `unknown query parameter${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}; accepted: client (admins)`,
    );
  let client: string | null = viewer.admin ? null : viewer.client;
  const asked = query.client;
  if (asked !== undefined && asked !== '') {
    if (typeof asked !== 'string')
      throw new EngineError('VALIDATION_FAILED', 'client must be given once, as a client name');
    if (!viewer.admin && asked !== viewer.client)
      throw new EngineError(
        'FORBIDDEN',
        `the client filter is for admins; client "${viewer.client}" sees only its own jobs`,
      );
    client = asked;
  }
  // Each list's rows carry what `waiting` needs (WAITING_EXTRA_COLUMNS), but for the former way.
  const read: { row: WaitingJobRow; position: number }[][] = [];
  const list = async (state: (typeof DASHBOARD_STATES)[number]): Promise<DashboardJobRecord[]> => {
    const rows = (await readDashboardList(ctx, state, client)) as unknown as (Omit<JobRow, 'parameters'> &
      WaitingJobRow)[];
    // Unfiltered, the rank is the place in the list; filtered, it is the engine-wide rank.
    const positions = client === null ? null : await computePositions(ctx.db, rows);
    const records = rows.map((r, i) =>
      toDashboardRecord(r, positions ? (positions.get(Number(r.id)) ?? i + 1) : i + 1),
    );
    read.push(records.map((rec, i) => ({ row: rows[i]!, position: rec.position })));
    return records;
  };
  const [settings, started, queued, scheduled, paused, pending] = await Promise.all([
    readSettings(ctx.db),
    list('started'),
    list('queued'),
    list('scheduled'),
    list('paused'),
    list('pending'),
  ]);
  // Why each waiting row waits, from one read of the admission state for all of them.
  // Started rows too: a started job whose ready task does not run says why.
  const waitingRows = [...started, ...queued, ...scheduled, ...paused, ...pending];
  const now = ctx.clock.now();
  const waiting =
    getPositionMethod() === 'window'
      ? await explainJobs(ctx.db, waitingRows, now)
      : await explainRows(ctx.db, read.flat(), now);
  for (const row of waitingRows as DashboardRow[]) row.waiting = waiting.get(row.id) ?? null;
  return {
    max_jobs: settings.known.max_jobs,
    priority_slots: settings.known.priority_slots,
    started,
    queued,
    scheduled,
    version: ctx.version,
    paused,
    pending,
  };
}
