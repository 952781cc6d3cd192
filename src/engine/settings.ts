import type { Queryable } from '../store/executor.js';
import { EngineError } from '../errors/catalogue.js';

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
};

/** Whether `name` is a known setting. */
export function isKnownSetting(name: string): name is KnownSetting {
  return Object.hasOwn(SETTING_DEFAULTS, name);
}

/**
 * Reads every setting: the known ones as numbers (defaults filled in), plus the raw rows.
 */
export async function readSettings(db: Queryable): Promise<{ known: EngineSettings; all: Record<string, string> }> {
  const { rows } = await db.query<{ name: string; value: string }>('SELECT name, value FROM settings');
  const all: Record<string, string> = {};
  for (const r of rows) all[r.name] = r.value;
  const known = { ...SETTING_DEFAULTS } as EngineSettings;
  for (const name of Object.keys(SETTING_DEFAULTS) as KnownSetting[]) {
    const raw = all[name];
    if (raw !== undefined && /^-?\d+$/.test(raw)) known[name] = Number(raw);
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
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
    throw new EngineError('VALIDATION_FAILED', `setting "${name}" takes a string, number or boolean value`);
  }
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n))
    throw new EngineError('VALIDATION_FAILED', `setting "${name}" must be a whole number (got ${JSON.stringify(value)})`);
  const min = MINIMUMS[name];
  if (n < min) throw new EngineError('VALIDATION_FAILED', `setting "${name}" must be at least ${min} (got ${n})`);
  if (name === 'priority_slots' && n > current.max_jobs)
    throw new EngineError('VALIDATION_FAILED', `priority_slots must not exceed max_jobs (${current.max_jobs}); got ${n}`);
  if (name === 'max_jobs' && n < current.priority_slots)
    throw new EngineError(
      'VALIDATION_FAILED',
      `max_jobs must be at least priority_slots (${current.priority_slots}); got ${n}`,
    );
  return String(n);
}
