/**
 * Statements on `settings` (SPEC section 9): one row per name, values as text. Parsing and
 * validation are the engine's (src/engine/settings.ts); these only read and write rows.
 */
import { defineQuery } from './define-query.js';

/** A stored setting. */
export interface SettingRow {
  name: string;
  value: string;
}

/** Reads every stored setting. No locks. */
export const readSettingRows = defineQuery<Record<string, never>, SettingRow>(
  'read-setting-rows',
  'SELECT name, value FROM settings',
);

/**
 * Takes the table lock that serialises setting changes (SHARE ROW EXCLUSIVE: readers go on, a
 * second writer waits), so two changes cannot together break a rule between settings.
 */
export const lockSettings = defineQuery('lock-settings', 'LOCK TABLE settings IN SHARE ROW EXCLUSIVE MODE');

/** Whether a row named `name` exists. No locks beyond the caller's. */
export const settingExists = defineQuery<{ name: string }, { existed: boolean }>(
  'setting-exists',
  'SELECT EXISTS (SELECT 1 FROM settings WHERE name = $name) AS existed',
);

/** Creates or updates one setting at `now` (row lock on that name). */
export const upsertSetting = defineQuery<{ name: string; value: string; now: Date }>(
  'upsert-setting',
  `INSERT INTO settings (name, value, created_at, updated_at) VALUES ($name, $value, $now, $now)
   ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = $now`,
);
