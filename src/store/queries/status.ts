/**
 * Statements behind `/health` and `/dashboard`: counts and short lists, read without locks.
 */
import { JOB_COLUMNS, STATE_LIST_ORDER_SQL } from './jobs.js';
import { defineQuery } from './define-query.js';

/** {@link JOB_COLUMNS} without `parameters` (dashboard rows). */
const JOB_COLUMNS_NO_PARAMETERS = JOB_COLUMNS.replace('j.parameters, ', '');

/**
 * Lists the jobs in `state` (of `client` only, unless null) in their state's order (queued jobs
 * in admission order, others by id), at most `limit`, without `parameters`. No locks.
 */
export const listDashboardJobs = defineQuery<{ state: string; client: string | null; limit: number }>(
  'list-dashboard-jobs',
  `SELECT ${JOB_COLUMNS_NO_PARAMETERS} FROM jobs j
   WHERE j.queue_state = $state AND ($client::text IS NULL OR j.client = $client)
   ORDER BY ${STATE_LIST_ORDER_SQL} LIMIT $limit`,
);
