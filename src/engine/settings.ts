import type { Executor, Queryable } from '../store/executor.js';
import {
  lockSettings,
  readSettingRows,
  settingExists,
  upsertSetting,
  type SettingRow,
} from '../store/queries/settings.js';
import { EngineError } from '../errors/catalogue.js';
import { readNumericString } from '../workflows/numeric-string.js';
import type { Clock } from './clock.js';
import { CHANNELS, notify } from './signals.js';

/**
 * Known settings with defaults (SPEC section 9; `max_jobs` … `retry_limit` from the seed).
 * Durations are in seconds.
 */
export const SETTING_DEFAULTS = {
  max_jobs: 2,
  priority_slots: 0,
  priority_threshold: 5,
  schedule_interval: 60,
  retry_delay: 5,
  retry_limit: 3,
  retention_days: 30,
  callback_retry_limit: 5,
  stall_timeout: 30,
  /** Seconds a `job.idempotency_key` answers with its job (24 h). */
  idempotency_retention: 86_400,
  /** Seconds `GET /events` can resume from (`Last-Event-ID`): older events are deleted (15 min). */
  event_retention: 900,
} as const;

export type KnownSetting = keyof typeof SETTING_DEFAULTS;
/** The known settings resolved to numbers. */
export type EngineSettings = { [K in KnownSetting]: number };

/** Lower bounds of known settings (inclusive). */
const MINIMUMS: Record<KnownSetting, number> = {
  max_jobs: 1,
  priority_slots: 0,
  priority_threshold: 1,
  schedule_interval: 1,
  retry_delay: 0,
  retry_limit: 0,
  retention_days: 1,
  callback_retry_limit: 0,
  stall_timeout: 1,
  idempotency_retention: 1,
  event_retention: 10,
};

/**
 * Upper bounds of known settings (inclusive): far beyond any sensible value, but small enough that
 * every value stays a safe integer and every duration stays a valid date offset.
 */
const MAXIMUMS: Record<KnownSetting, number> = {
  max_jobs: 100_000,
  priority_slots: 100_000,
  priority_threshold: 10,
  schedule_interval: 86_400,
  retry_delay: 86_400,
  retry_limit: 1_000,
  retention_days: 36_500,
  callback_retry_limit: 100,
  stall_timeout: 86_400,
  idempotency_retention: 31_536_000,
  event_retention: 604_800,
};

/** Whether `name` is a known setting. */
export function isKnownSetting(name: string): name is KnownSetting {
  return Object.hasOwn(SETTING_DEFAULTS, name);
}

/** Every setting: the known ones as numbers (defaults filled in), plus the raw rows by name. */
export interface ParsedSettings {
  known: EngineSettings;
  all: Record<string, string>;
}

/** Reads every setting and parses it with {@link parseSettings}. */
export async function readSettings(db: Queryable): Promise<ParsedSettings> {
  return parseSettings(await readSettingRows.rows(db, {}));
}

/**
 * Parses stored setting rows. Pure; exported for tests and for callers that read the rows in a
 * larger statement (admission). A known setting takes its stored value when that is an integer
 * (a safe one, optionally negative) and its default otherwise; bounds are checked on write, by
 * {@link validateSetting}, not here.
 */
export function parseSettings(rows: readonly SettingRow[]): ParsedSettings {
  // No prototype: a setting may be named "__proto__" or "constructor" like any other.
  const all: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const r of rows) all[r.name] = r.value;
  const known = { ...SETTING_DEFAULTS } as EngineSettings;
  for (const name of Object.keys(SETTING_DEFAULTS) as KnownSetting[]) {
    const raw = all[name];
    if (raw !== undefined && /^-?\d+$/.test(raw) && Number.isSafeInteger(Number(raw)))
      known[name] = Number(raw);
  }
  return { known, all };
}

/**
 * Validates a new value for a setting against the current ones.
 * Accepts integers and integer strings for known names (`"4"` → 4); any string for unknown names.
 * @returns the value to store, as text.
 * @throws {EngineError} `VALIDATION_FAILED` saying what is accepted.
 */
export function validateSetting(name: string, value: unknown, current: EngineSettings): string {
  if (!isKnownSetting(name)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
      return String(value);
    throw new EngineError('VALIDATION_FAILED', `setting "${name}" takes a string, number or boolean value`);
  }
  const read = typeof value === 'string' ? readNumericString(value) : null;
  const n = typeof value === 'number' ? value : read?.ok ? read.value : NaN;
  if (!Number.isInteger(n))
    throw new EngineError(
      'VALIDATION_FAILED',
      `setting "${name}" must be a whole number (got ${JSON.stringify(value)})`,
    );
  const min = MINIMUMS[name];
  const max = MAXIMUMS[name];
  if (n < min || n > max)
    throw new EngineError(
      'VALIDATION_FAILED',
      `setting "${name}" must be at least ${min} and at most ${max} (got ${JSON.stringify(value)})`,
    );
  if (name === 'priority_slots' && n > current.max_jobs)
    throw new EngineError(
      'VALIDATION_FAILED',
      `priority_slots must not exceed max_jobs (${current.max_jobs}); got ${n}`,
    );
  if (name === 'max_jobs' && n < current.priority_slots)
    throw new EngineError(
      'VALIDATION_FAILED',
      `max_jobs must be at least priority_slots (${current.priority_slots}); got ${n}`,
    );
  return String(n);
}

/** Longest setting name accepted. */
export const MAX_SETTING_NAME_LENGTH = 100;

/** The reply of `POST /settings` (seed "Settings Endpoints"). */
export interface SettingReply {
  result: 'ok';
  /** `<name> setting created` or `<name> setting updated`. */
  message: string;
}

/**
 * Creates or updates one setting (`POST /settings {"name", "setting"}`, SPEC section 9). The
 * admin check is the API's. Known names are validated by {@link validateSetting} against the
 * current values, under a table lock so two concurrent changes (say `max_jobs` and
 * `priority_slots`) cannot together break `priority_slots <= max_jobs`. Wakes admission (and the
 * scheduler when `schedule_interval` changes) so the change takes effect at once.
 * @returns `created` when no row existed before (also for a known setting still at its default).
 * @throws {EngineError} `VALIDATION_FAILED` (400) for a bad body or value.
 */
export async function postSetting(ctx: { db: Executor; clock: Clock }, body: unknown): Promise<SettingReply> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new EngineError(
      'VALIDATION_FAILED',
      'the body must be a JSON object like {"name": "max_jobs", "setting": 4}',
    );
  const { name, setting } = body as Record<string, unknown>;
  if (typeof name !== 'string' || name.trim() === '' || name.length > MAX_SETTING_NAME_LENGTH)
    throw new EngineError(
      'VALIDATION_FAILED',
      `name must be a setting name (text of 1 to ${MAX_SETTING_NAME_LENGTH} characters), e.g. ${Object.keys(SETTING_DEFAULTS).join(', ')}`,
    );
  if (setting === undefined || setting === null)
    throw new EngineError('VALIDATION_FAILED', `setting (the value for "${name}") is required`);
  const created = await ctx.db.transaction(async (tx) => {
    await lockSettings.run(tx, {});
    const { known } = await readSettings(tx);
    const value = validateSetting(name, setting, known);
    const existed = (await settingExists.first(tx, { name }))?.existed ?? false;
    await upsertSetting.run(tx, { name, value, now: ctx.clock.now() });
    await notify(tx, CHANNELS.admission, 'setting');
    if (name === 'schedule_interval') await notify(tx, CHANNELS.scheduler, 'queue_scheduled_jobs');
    return !existed;
  });
  return { result: 'ok', message: `${name} setting ${created ? 'created' : 'updated'}` };
}

/** The reply of `GET /settings`. */
export interface SettingsList {
  result: 'ok';
  /** Every known setting (number; its default when never set) and every unknown one (text, as stored). */
  settings: Record<string, number | string>;
}

/** Lists every setting (`GET /settings`): known ones with defaults filled in, then unknown ones by name. */
export async function listSettings(ctx: { db: Queryable }): Promise<SettingsList> {
  const { known, all } = await readSettings(ctx.db);
  const settings: Record<string, number | string> = Object.assign(
    Object.create(null) as Record<string, number | string>,
    known,
  );
  for (const name of Object.keys(all).sort()) if (!isKnownSetting(name)) settings[name] = all[name]!;
  return { result: 'ok', settings };
}
