/**
 * Statements on user schedules (`cron_schedules`, migration 0005; issue 11 part 4): a workflow
 * submitted on a cron expression in a time zone. `next_run_at` is each schedule's cursor, the
 * earliest slot not yet handled; only the scheduler leader moves it, with the row locked and in
 * the same transaction as the submissions for the slots it passes. The jobs such a transaction
 * submits are stamped with `schedule` and `scheduled_for` (unique together).
 */
import { defineQuery } from './define-query.js';

/** A row of `cron_schedules`. */
export interface CronScheduleRow {
  name: string;
  client: string;
  cron: string;
  timezone: string;
  workflow: string;
  parameters: Record<string, unknown>;
  priority: number;
  overlap: string;
  catch_up: string;
  description: string | null;
  active: boolean;
  next_run_at: Date | null;
  last_run_at: Date | null;
  last_slot: Date | null;
  last_job_id: number | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `name, client, cron, timezone, workflow, parameters, priority, overlap, catch_up, description,
  active, next_run_at, last_run_at, last_slot, last_job_id, created_at, updated_at`;

/** Parameters of {@link insertCronSchedule}. */
export interface InsertCronScheduleParams {
  name: string;
  client: string;
  cron: string;
  timezone: string;
  workflow: string;
  /** JSON text of the parameters as given. */
  parameters: string;
  priority: number;
  overlap: string;
  catchUp: string;
  description: string | null;
  /** The first slot after `now`. */
  next: Date;
  now: Date;
}

/**
 * Creates an active schedule planned at `next`; a name already taken answers no row. Locks: the
 * new row (a concurrent insert of the same name waits, then answers no row).
 */
export const insertCronSchedule = defineQuery<InsertCronScheduleParams, CronScheduleRow>(
  'insert-cron-schedule',
  `INSERT INTO cron_schedules (name, client, cron, timezone, workflow, parameters, priority, overlap, catch_up,
                               description, active, next_run_at, created_at, updated_at)
   VALUES ($name, $client, $cron, $timezone, $workflow, $parameters::jsonb, $priority, $overlap, $catchUp,
           $description, true, $next, $now, $now)
   ON CONFLICT (name) DO NOTHING
   RETURNING ${COLUMNS}`,
);

/**
 * Deletes schedule `name` when the caller may see it (an admin, or its own client). Jobs it
 * submitted keep their `schedule` and `scheduled_for`. Row lock on the one row (waits for a
 * firing in progress).
 */
export const deleteCronSchedule = defineQuery<
  { name: string; admin: boolean; client: string },
  { name: string }
>(
  'delete-cron-schedule',
  `DELETE FROM cron_schedules WHERE name = $name AND ($admin OR client = $client) RETURNING name`,
);

/** The schedules the caller may see (all for an admin, else its own), by name. No locks. */
export const listCronSchedules = defineQuery<{ admin: boolean; client: string }, CronScheduleRow>(
  'list-cron-schedules',
  `SELECT ${COLUMNS} FROM cron_schedules WHERE $admin OR client = $client ORDER BY name`,
);

/**
 * `PUT /scheduler` on a user schedule: switches it on or off. Off clears the cursor; on keeps it
 * when already on, else starts from `next` (the first slot after now: nothing missed while off
 * is caught up). Row lock on the one row.
 */
export const setCronScheduleSwitch = defineQuery<
  { name: string; active: boolean; next: Date | null; now: Date },
  { name: string }
>(
  'set-cron-schedule-switch',
  `UPDATE cron_schedules
   SET next_run_at = CASE WHEN NOT $active THEN NULL WHEN active THEN next_run_at ELSE $next::timestamptz END,
       active = $active, updated_at = $now
   WHERE name = $name RETURNING name`,
);

/** The earliest cursor among active schedules (the leader's timer), or null. No locks. */
export const readNextCronRunAt = defineQuery<Record<string, never>, { next_run_at: Date | null }>(
  'read-next-cron-run-at',
  `SELECT min(next_run_at) AS next_run_at FROM cron_schedules WHERE active`,
);

/** Names of the active schedules with a slot due at `now`, earliest first. No locks. */
export const listDueCronSchedules = defineQuery<{ now: Date }, { name: string }>(
  'list-due-cron-schedules',
  `SELECT name FROM cron_schedules WHERE active AND next_run_at <= $now ORDER BY next_run_at, name`,
);

/**
 * Reads schedule `name` and locks its row (`FOR UPDATE`) for the firing transaction: another
 * engine firing the same schedule waits, then sees the cursor moved.
 */
export const lockCronSchedule = defineQuery<{ name: string }, CronScheduleRow>(
  'lock-cron-schedule',
  `SELECT ${COLUMNS} FROM cron_schedules WHERE name = $name FOR UPDATE`,
);

/** The state of job `id` (the previous run of a schedule, for `overlap: skip`), if it still exists. No locks. */
export const readScheduledJobState = defineQuery<{ id: number }, { queue_state: string }>(
  'read-scheduled-job-state',
  `SELECT queue_state FROM jobs WHERE id = $id`,
);

/**
 * Stamps jobs just submitted by schedule `name` with it and their slots (`ids[i]` for
 * `slots[i]`). No state edge. The unique index `jobs_schedule_slot_idx` makes a second job for a
 * slot fail the transaction instead of committing.
 */
export const stampScheduledJobs = defineQuery<{ name: string; ids: number[]; slots: Date[] }>(
  'stamp-scheduled-jobs',
  `UPDATE jobs j SET schedule = $name, scheduled_for = s.slot
   FROM unnest($ids::bigint[], $slots::timestamptz[]) AS s(id, slot)
   WHERE j.id = s.id`,
);

/**
 * Records a firing of `name`: the cursor moves to `next`, and when a job was submitted, its time,
 * slot and id (null values keep the previous run's). Row lock on the one row (already held).
 */
export const recordCronScheduleFiring = defineQuery<{
  name: string;
  next: Date | null;
  lastRunAt: Date | null;
  lastSlot: Date | null;
  lastJobId: number | null;
  now: Date;
}>(
  'record-cron-schedule-firing',
  `UPDATE cron_schedules
   SET next_run_at = $next, last_run_at = COALESCE($lastRunAt, last_run_at),
       last_slot = COALESCE($lastSlot, last_slot), last_job_id = COALESCE($lastJobId, last_job_id),
       updated_at = $now
   WHERE name = $name`,
);
