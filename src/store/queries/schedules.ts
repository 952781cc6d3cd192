/**
 * Statements on the `schedules` table (SPEC section 8): each schedule's persisted switch and its
 * last and next run. A schedule without a row is active and has never run. Only the scheduler
 * leader plans runs; `PUT /scheduler` flips the switch.
 */
import { defineQuery } from './define-query.js';

/** A row of `schedules` as the engine reads it. */
export interface ScheduleStateRow {
  name: string;
  active: boolean;
  last_run_at: Date | null;
  next_run_at: Date | null;
}

/** Every row of `schedules`. No locks. */
export const listScheduleStates = defineQuery<Record<string, never>, ScheduleStateRow>(
  'list-schedule-states',
  `SELECT name, active, last_run_at, next_run_at FROM schedules`,
);

/**
 * A new leader plans schedule `name` at `next` (a missing row is created active); an inactive
 * schedule keeps no plan. Row lock on the one `schedules` row.
 */
export const planScheduleOnLeadership = defineQuery<{ name: string; next: Date; now: Date }>(
  'plan-schedule-on-leadership',
  `INSERT INTO schedules (name, active, next_run_at, updated_at) VALUES ($name, true, $next, $now)
   ON CONFLICT (name) DO UPDATE
   SET next_run_at = CASE WHEN schedules.active THEN EXCLUDED.next_run_at END, updated_at = EXCLUDED.updated_at`,
);

/**
 * Plans the first run of an active schedule that has no plan (switched on, or never planned).
 * Row lock on the one `schedules` row; a schedule planned meanwhile is left alone.
 */
export const planUnplannedSchedule = defineQuery<{ name: string; next: Date }>(
  'plan-unplanned-schedule',
  `UPDATE schedules SET next_run_at = $next WHERE name = $name AND active AND next_run_at IS NULL`,
);

/**
 * Records a run of `name` that started at `startedAt` and plans the next at `next` (no plan when
 * the schedule was switched off meanwhile). Row lock on the one `schedules` row.
 */
export const recordScheduleRun = defineQuery<
  { name: string; startedAt: Date; next: Date; now: Date },
  ScheduleStateRow
>(
  'record-schedule-run',
  `UPDATE schedules SET last_run_at = $startedAt, next_run_at = CASE WHEN active THEN $next::timestamptz END, updated_at = $now
   WHERE name = $name RETURNING name, active, last_run_at, next_run_at`,
);

/** Moves the plan of an active schedule to `next`. Row lock on the one `schedules` row. */
export const replanSchedule = defineQuery<{ name: string; next: Date }, ScheduleStateRow>(
  'replan-schedule',
  `UPDATE schedules SET next_run_at = $next WHERE name = $name AND active RETURNING name, active, last_run_at, next_run_at`,
);

/**
 * `PUT /scheduler`: switches schedule `name` on or off. Off clears its plan; on keeps a plan only
 * when it was already on (else the leader plans it `first_in` from now). Row lock on the one
 * `schedules` row.
 */
export const setScheduleSwitch = defineQuery<{ name: string; active: boolean; now: Date }>(
  'set-schedule-switch',
  `INSERT INTO schedules (name, active, next_run_at, updated_at) VALUES ($name, $active, NULL, $now)
   ON CONFLICT (name) DO UPDATE
   SET active = EXCLUDED.active,
       next_run_at = CASE WHEN EXCLUDED.active AND schedules.active THEN schedules.next_run_at END,
       updated_at = EXCLUDED.updated_at`,
);
