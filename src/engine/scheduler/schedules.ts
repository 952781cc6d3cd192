/**
 * The schedules (SPEC section 8): their definitions, their persisted switch and run times, and
 * the `GET /schedules` / `PUT /scheduler` operations. The leader-elected loop that runs them is
 * `scheduler-service.ts`.
 */
import type { Queryable } from '../../store/executor.js';
import {
  listScheduleStates,
  setScheduleSwitch,
  type ScheduleStateRow,
} from '../../store/queries/schedules.js';
import { EngineError } from '../../errors/catalogue.js';
import type { EngineContext } from '../context.js';
import { readSettings } from '../settings.js';
import { CHANNELS, notify } from '../signals.js';

/** Every schedule, in listing order. */
export const SCHEDULE_NAMES = [
  'queue_scheduled_jobs',
  'push_jobs',
  'recover_stalled_tasks',
  'cleanup_jobs',
] as const;
/** A schedule's name. */
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];

/** A schedule's fixed definition (the resque-scheduler shape the seed shows). */
export interface ScheduleDefinition {
  /** The seed's `class`. */
  class: string;
  /** Seconds between runs, or the setting that holds them (read at every run). */
  every: number | 'schedule_interval';
  /** Seconds from the moment an engine becomes the scheduler leader (or the schedule is switched on) to the first run. */
  firstIn: number;
  description: string;
}

/** The four schedules (SPEC section 8). The description of `queue_scheduled_jobs` is the seed's. */
export const SCHEDULES: Readonly<Record<ScheduleName, ScheduleDefinition>> = {
  queue_scheduled_jobs: {
    class: 'QueueJobs',
    every: 'schedule_interval',
    firstIn: 5,
    description: 'Enqueues scheduled jobs that have a run_at time in the past.',
  },
  push_jobs: {
    class: 'PushJobs',
    every: 30,
    firstIn: 10,
    description:
      'Pushes queued jobs into free execution slots (a safety net: admission also runs on every change).',
  },
  recover_stalled_tasks: {
    class: 'RecoverStalledTasks',
    every: 15,
    firstIn: 15,
    description:
      'Retries task attempts whose worker stopped heart-beating for stall_timeout seconds, and deletes events (GET /events) older than event_retention seconds.',
  },
  cleanup_jobs: {
    class: 'CleanupJobs',
    every: 3600,
    firstIn: 60,
    description:
      'Deletes completed and broken jobs finished more than retention_days ago, with their tasks, logs and callbacks, unless persist is set.',
  },
};

/** Whether `name` is a schedule. */
export function isScheduleName(name: unknown): name is ScheduleName {
  return typeof name === 'string' && (SCHEDULE_NAMES as readonly string[]).includes(name);
}

/** One schedule as `GET /schedules` lists it (seed shape plus `active`, `last_run_at`, `next_run_at`). */
export interface ScheduleRecord {
  class: string;
  every: [number, { first_in: number }];
  queue: 'scheduler';
  description: string;
  active: boolean;
  /** ISO UTC with ms, or null when it never ran. */
  last_run_at: string | null;
  /** ISO UTC with ms, or null when inactive or not planned yet (no scheduler leader running). */
  next_run_at: string | null;
}

/** A row of the `schedules` table; a schedule without a row is active and has never run. */
export interface ScheduleRow {
  name: ScheduleName;
  active: boolean;
  last_run_at: Date | null;
  next_run_at: Date | null;
}

/** Reads the persisted state of every schedule, filling in defaults for schedules without a row. */
export async function readScheduleRows(q: Queryable): Promise<Record<ScheduleName, ScheduleRow>> {
  const rows = await listScheduleStates.rows(q, {});
  const out = {} as Record<ScheduleName, ScheduleRow>;
  for (const name of SCHEDULE_NAMES) out[name] = { name, active: true, last_run_at: null, next_run_at: null };
  for (const r of rows) {
    const row = toScheduleRow(r);
    if (row) out[row.name] = row;
  }
  return out;
}

/** A `schedules` row of a known schedule, or null for a name the engine does not know. */
export function toScheduleRow(r: ScheduleStateRow): ScheduleRow | null {
  const { name } = r;
  return isScheduleName(name) ? { ...r, name } : null;
}

/**
 * Seconds between runs of `name` now (`queue_scheduled_jobs` follows the `schedule_interval` setting).
 */
export function intervalSeconds(name: ScheduleName, scheduleInterval: number): number {
  const every = SCHEDULES[name].every;
  return every === 'schedule_interval' ? scheduleInterval : every;
}

/**
 * Lists every schedule for `GET /schedules`.
 * @returns `{"result": "ok", "schedules": {<name>: ScheduleRecord}}` in the seed's shape.
 */
export async function listSchedules(
  ctx: EngineContext,
): Promise<{ result: 'ok'; schedules: Record<ScheduleName, ScheduleRecord> }> {
  const [rows, settings] = await Promise.all([readScheduleRows(ctx.db), readSettings(ctx.db)]);
  const schedules = {} as Record<ScheduleName, ScheduleRecord>;
  for (const name of SCHEDULE_NAMES) {
    const def = SCHEDULES[name];
    const row = rows[name];
    schedules[name] = {
      class: def.class,
      every: [intervalSeconds(name, settings.known.schedule_interval), { first_in: def.firstIn }],
      queue: 'scheduler',
      description: def.description,
      active: row.active,
      last_run_at: row.last_run_at ? row.last_run_at.toISOString() : null,
      next_run_at: row.active && row.next_run_at ? row.next_run_at.toISOString() : null,
    };
  }
  return { result: 'ok', schedules };
}

/**
 * Switches one schedule on or off for `PUT /scheduler` (admin only; the caller checks).
 * The switch is stored in the `schedules` table, so it survives restarts, and the scheduler
 * leader is woken through `CHANNELS.scheduler`: switching off stops the schedule (and, for
 * `queue_scheduled_jobs`, the run_at timer and semaphore checks); switching on plans its next run
 * `first_in` seconds later.
 * @param body - `{"schedule": <name>, "active": true | false | "true" | "false"}`.
 * @returns `{"result": "ok", "schedules": [names of the active schedules]}`.
 * @throws {EngineError} `VALIDATION_FAILED` (400) naming the known schedules or the accepted values.
 */
export async function setSchedule(
  ctx: EngineContext,
  body: unknown,
): Promise<{ result: 'ok'; schedules: ScheduleName[] }> {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new EngineError(
      'VALIDATION_FAILED',
      `the body must be a JSON object {"schedule": <name>, "active": true|false}; known schedules: ${SCHEDULE_NAMES.join(', ')}`,
    );
  const { schedule, active } = body as { schedule?: unknown; active?: unknown };
  if (schedule === undefined)
    throw new EngineError(
      'VALIDATION_FAILED',
      `"schedule" is required; known schedules: ${SCHEDULE_NAMES.join(', ')}`,
    );
  if (!isScheduleName(schedule))
    throw new EngineError(
      'VALIDATION_FAILED',
      `unknown schedule ${JSON.stringify(schedule)}; known schedules: ${SCHEDULE_NAMES.join(', ')}`,
    );
  const on = parseActive(active);
  const now = ctx.clock.now();
  return ctx.db.transaction(async (tx) => {
    await setScheduleSwitch.run(tx, { name: schedule, active: on, now });
    await notify(tx, CHANNELS.scheduler, schedule);
    const rows = await readScheduleRows(tx);
    return { result: 'ok' as const, schedules: SCHEDULE_NAMES.filter((n) => rows[n].active) };
  });
}

/**
 * Reads the `active` of `PUT /scheduler`: a boolean, or the string "true" / "false".
 * @throws {EngineError} `VALIDATION_FAILED` (400) saying what is accepted.
 */
export function parseActive(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const v = value.trim().toLowerCase();
    if (v === 'true') return true;
    if (v === 'false') return false;
  }
  throw new EngineError(
    'VALIDATION_FAILED',
    `"active" must be true or false (also accepted as the strings "true" / "false"); got ${value === undefined ? 'nothing' : JSON.stringify(value)}`,
  );
}
