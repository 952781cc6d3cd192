/**
 * User schedules (issue 11 part 4): `POST /schedules`, `DELETE /schedules/<name>`, and their place
 * in `GET /schedules` and `PUT /scheduler` beside the four maintenance schedules of
 * `schedules.ts`. A user schedule submits `workflow` with `parameters` as its client on every slot
 * of `cron` in `timezone`; the leader's `cron-runner.ts` fires them. The rules of slots, DST,
 * `catch_up` and `overlap` are in `cron-plan.ts`.
 */
import { EngineError } from '../../errors/catalogue.js';
import {
  deleteCronSchedule,
  insertCronSchedule,
  listCronSchedules,
  setCronScheduleSwitch,
  type CronScheduleRow,
} from '../../store/queries/cron-schedules.js';
import { assertJobStorage } from '../../storage/client-storage.js';
import { assertEgressAllowed, submissionUrls } from '../jobs/egress-check.js';
import { validateParameters } from '../../workflows/parameters.js';
import type { EngineContext } from '../context.js';
import { parseInteger, resolveWorkflow } from '../jobs/input.js';
import type { Viewer } from '../jobs/records.js';
import { DEFAULT_PRIORITY } from '../jobs/submit.js';
import { CHANNELS, notify } from '../signals.js';
import { isTimeZone, readCron, type CatchUp, type CronSlots, type Overlap } from './cron-plan.js';
import {
  SCHEDULE_NAMES,
  isScheduleName,
  listSchedules,
  parseActive,
  readScheduleRows,
  setSchedule,
  type ScheduleRecord,
} from './schedules.js';

/** Names of user schedules, as of client names. */
export const CRON_SCHEDULE_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,62}$';
/** {@link CRON_SCHEDULE_NAME_PATTERN} in words. */
export const CRON_SCHEDULE_NAME_RULE =
  '1 to 63 characters: lower-case letters, digits, "-" and "_", starting with a letter or digit';
/** The `class` of a user schedule in `GET /schedules`. */
export const CRON_SCHEDULE_CLASS = 'SubmitWorkflow';
/** Defaults of `POST /schedules`. */
export const CRON_DEFAULTS = { timezone: 'UTC', overlap: 'skip', catch_up: 'latest' } as const;
/** Payload prefix on `CHANNELS.scheduler` when user schedules changed (`cron:<name>`). */
export const CRON_NOTIFY_PREFIX = 'cron:';

/** A `POST /schedules` body as the route's schema lets it through. */
export interface CronScheduleInput {
  name: string;
  cron: string;
  /** IANA zone; default `UTC`. */
  timezone?: string;
  workflow: string;
  parameters?: Record<string, unknown>;
  /** 1 … 10 (a numeric string is accepted); default 5. */
  priority?: number | string;
  overlap?: Overlap;
  catch_up?: CatchUp;
  description?: string;
  /** Optional; must be the caller. */
  client?: string;
}

/** A user schedule as `GET /schedules` lists it: the seed's shape with `cron` for `every`. */
export interface CronScheduleRecord {
  class: typeof CRON_SCHEDULE_CLASS;
  cron: string;
  timezone: string;
  queue: 'scheduler';
  description: string;
  active: boolean;
  /** When the last job was submitted (ISO UTC), or null. */
  last_run_at: string | null;
  /** The next slot not yet handled (ISO UTC); null while switched off. */
  next_run_at: string | null;
  workflow: string;
  parameters: Record<string, unknown>;
  priority: number;
  overlap: Overlap;
  catch_up: CatchUp;
  /** The client the jobs are submitted as. */
  client: string;
}

/** Maps a row to its listing record. */
export function toCronScheduleRecord(row: CronScheduleRow): CronScheduleRecord {
  return {
    class: CRON_SCHEDULE_CLASS,
    cron: row.cron,
    timezone: row.timezone,
    queue: 'scheduler',
    description:
      row.description ??
      `Submits workflow ${row.workflow} for client ${row.client} on "${row.cron}" (${row.timezone}).`,
    active: row.active,
    last_run_at: row.last_run_at ? row.last_run_at.toISOString() : null,
    next_run_at: row.active && row.next_run_at ? row.next_run_at.toISOString() : null,
    workflow: row.workflow,
    parameters: row.parameters,
    priority: row.priority,
    overlap: row.overlap as Overlap,
    catch_up: row.catch_up as CatchUp,
    client: row.client,
  };
}

/**
 * Reads `cron` in `timezone`, as `POST /schedules` and the runner do.
 * @throws {EngineError} `VALIDATION_FAILED` naming `timezone` or `cron` and what is accepted.
 */
export function compileCron(cron: string, timezone: string): CronSlots {
  if (!isTimeZone(timezone))
    throw new EngineError(
      'VALIDATION_FAILED',
      `timezone ${JSON.stringify(timezone)} is not an IANA time zone; give one such as "UTC", "Europe/London" or "America/New_York"`,
    );
  const reading = readCron(cron, timezone);
  if (!reading.ok)
    throw new EngineError(
      'VALIDATION_FAILED',
      `cron ${JSON.stringify(cron)} is not accepted (${reading.problem}); give 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, e.g. "30 2 * * *"`,
    );
  return reading.slots;
}

/**
 * Creates a user schedule (`POST /schedules`): admins, and clients for the workflows they may
 * submit; the jobs are submitted as the caller. Checks the name (not one of the maintenance
 * schedules), the time zone, the cron expression (and that it ever fires), the workflow and the
 * parameters against its schema, then stores it planned at its first slot after now and wakes the
 * scheduler leader.
 * @returns `{result: "ok", name, schedule}`.
 * @throws {EngineError} `VALIDATION_FAILED` or `UNKNOWN_WORKFLOW` (400) naming the field (the
 *   parameters, and the storage they name as POST /job checks it), or naming the callback target
 *   (`parameters.rest_endpoints[i]`) the egress rules refuse;
 *   `CONFLICT` (409) when a user schedule of that name exists.
 */
export async function createCronSchedule(
  ctx: EngineContext,
  viewer: Viewer,
  input: CronScheduleInput,
): Promise<{ result: 'ok'; name: string; schedule: CronScheduleRecord }> {
  const { name } = input;
  if (input.client !== undefined && input.client !== viewer.client)
    throw new EngineError(
      'VALIDATION_FAILED',
      `client ${JSON.stringify(input.client)} does not match the authenticated client "${viewer.client}"`,
    );
  if (!new RegExp(CRON_SCHEDULE_NAME_PATTERN).test(name))
    throw new EngineError(
      'VALIDATION_FAILED',
      `name ${JSON.stringify(name)} is not accepted: ${CRON_SCHEDULE_NAME_RULE}`,
    );
  if (isScheduleName(name))
    throw new EngineError(
      'VALIDATION_FAILED',
      `name "${name}" is a maintenance schedule; choose another name (maintenance schedules: ${SCHEDULE_NAMES.join(', ')})`,
    );
  const timezone = input.timezone ?? CRON_DEFAULTS.timezone;
  const slots = compileCron(input.cron, timezone);
  const now = ctx.clock.now();
  const next = slots.next(now);
  if (!next) throw new EngineError('VALIDATION_FAILED', `cron ${JSON.stringify(input.cron)} never fires`);
  const resolved = resolveWorkflow(ctx.catalog, viewer.client, input.workflow);
  const parameters = input.parameters ?? {};
  const validation = validateParameters(resolved.definition, parameters);
  if (!validation.ok)
    throw new EngineError(
      'VALIDATION_FAILED',
      `parameters are not valid for workflow "${input.workflow}": ${validation.problems.join('; ')}`,
      { details: validation.problems },
    );
  // The storage check of POST /job: object storage the client has configured, and a workflow that
  // can publish to it. Checked again at each firing (the configuration may change).
  await assertJobStorage(ctx.db, viewer.client, validation.resolved, resolved.definition);
  // The egress check of POST /job on the callback targets every firing will post to, so a refused
  // address is a 400 now rather than a failed callback of each job later.
  await assertEgressAllowed(ctx.egress, submissionUrls(validation.resolved, null));
  const priority =
    input.priority === undefined ? DEFAULT_PRIORITY : parseInteger('priority', input.priority, 1, 10);
  const row = await ctx.db.transaction(async (tx) => {
    const created = await insertCronSchedule.first(tx, {
      name,
      client: viewer.client,
      cron: input.cron.trim(),
      timezone,
      workflow: resolved.definition.name,
      parameters: JSON.stringify(parameters),
      priority,
      overlap: input.overlap ?? CRON_DEFAULTS.overlap,
      catchUp: input.catch_up ?? CRON_DEFAULTS.catch_up,
      description: input.description ?? null,
      next,
      now,
    });
    if (created) await notify(tx, CHANNELS.scheduler, CRON_NOTIFY_PREFIX + name);
    return created;
  });
  if (!row)
    throw new EngineError(
      'CONFLICT',
      `schedule "${name}" already exists; DELETE /schedules/${name} first to replace it`,
    );
  return { result: 'ok', name, schedule: toCronScheduleRecord(row) };
}

/**
 * Deletes a user schedule (`DELETE /schedules/<name>`): an admin any, a client its own. Jobs it
 * submitted stay, with their `schedule` and `scheduled_for`.
 * @throws {EngineError} `VALIDATION_FAILED` (400) for a maintenance schedule; `NOT_FOUND` (404)
 *   when no such schedule is visible to the caller.
 */
export async function removeCronSchedule(
  ctx: EngineContext,
  viewer: Viewer,
  name: string,
): Promise<{ result: 'ok'; deleted: string }> {
  if (isScheduleName(name))
    throw new EngineError(
      'VALIDATION_FAILED',
      `"${name}" is a maintenance schedule and cannot be deleted; switch it off with PUT /scheduler`,
    );
  const deleted = await ctx.db.transaction(async (tx) => {
    const row = await deleteCronSchedule.first(tx, { name, admin: viewer.admin, client: viewer.client });
    if (row) await notify(tx, CHANNELS.scheduler, CRON_NOTIFY_PREFIX + name);
    return row;
  });
  if (!deleted) throw new EngineError('NOT_FOUND', `schedule ${JSON.stringify(name)} not found`);
  return { result: 'ok', deleted: name };
}

/**
 * `GET /schedules`: the four maintenance schedules, then the user schedules the caller may see
 * (an admin all, a client its own) by name.
 */
export async function listAllSchedules(
  ctx: EngineContext,
  viewer: Viewer,
): Promise<{ result: 'ok'; schedules: Record<string, ScheduleRecord | CronScheduleRecord> }> {
  const [maintenance, rows] = await Promise.all([
    listSchedules(ctx),
    listCronSchedules.rows(ctx.db, { admin: viewer.admin, client: viewer.client }),
  ]);
  const schedules: Record<string, ScheduleRecord | CronScheduleRecord> = { ...maintenance.schedules };
  for (const row of rows) schedules[row.name] = toCronScheduleRecord(row);
  return { result: 'ok', schedules };
}

/**
 * `PUT /scheduler` (admin) for any schedule: a maintenance one as `setSchedule` switches it, a
 * user one here (on: its next slot after now, nothing missed while off is caught up; off: no
 * plan). The switch is stored, so it survives restarts, and the leader is woken.
 * @returns `{result: "ok", schedules: [names of every active schedule]}`.
 * @throws {EngineError} `VALIDATION_FAILED` (400) for a bad body or an unknown name, listing the
 *   schedules.
 */
export async function switchAnySchedule(
  ctx: EngineContext,
  body: unknown,
): Promise<{ result: 'ok'; schedules: string[] }> {
  const schedule = (body as { schedule?: unknown } | null)?.schedule;
  const cronRows = await listCronSchedules.rows(ctx.db, { admin: true, client: '' });
  const target = cronRows.find((r) => r.name === schedule);
  if (!target) {
    if (typeof schedule === 'string' && !isScheduleName(schedule))
      throw new EngineError(
        'VALIDATION_FAILED',
        `unknown schedule ${JSON.stringify(schedule)}; known schedules: ${[...SCHEDULE_NAMES, ...cronRows.map((r) => r.name)].join(', ')}`,
      );
    const done = await setSchedule(ctx, body);
    const active = cronRows.filter((r) => r.active).map((r) => r.name);
    return { result: 'ok', schedules: [...done.schedules, ...active] };
  }
  const on = parseActive((body as { active?: unknown }).active);
  const now = ctx.clock.now();
  const next = on ? compileCron(target.cron, target.timezone).next(now) : null;
  await ctx.db.transaction(async (tx) => {
    await setCronScheduleSwitch.run(tx, { name: target.name, active: on, next, now });
    await notify(tx, CHANNELS.scheduler, CRON_NOTIFY_PREFIX + target.name);
  });
  const [rows, after] = await Promise.all([
    readScheduleRows(ctx.db),
    listCronSchedules.rows(ctx.db, { admin: true, client: '' }),
  ]);
  return {
    result: 'ok',
    schedules: [
      ...SCHEDULE_NAMES.filter((n) => rows[n].active),
      ...after.filter((r) => r.active).map((r) => r.name),
    ],
  };
}
