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

/** A client's own value of a setting (`client_settings`, migration 0010). */
export interface ClientSettingRow {
  client: string;
  name: string;
  value: string;
}

/** Reads the own settings of `client`, or of every client when null. No locks. */
export const readClientSettingRows = defineQuery<{ client: string | null }, ClientSettingRow>(
  'read-client-setting-rows',
  'SELECT client, name, value FROM client_settings WHERE $client::text IS NULL OR client = $client ORDER BY client, name',
);

/** Whether a client named `client` exists (active or revoked). No locks. */
export const clientNameExists = defineQuery<{ client: string }, { existed: boolean }>(
  'client-name-exists',
  'SELECT EXISTS (SELECT 1 FROM clients WHERE name = $client) AS existed',
);

/** Creates or updates `client`'s own value of setting `name` at `now` (row lock on it). */
export const upsertClientSetting = defineQuery<{ client: string; name: string; value: string; now: Date }>(
  'upsert-client-setting',
  `INSERT INTO client_settings (client, name, value, created_at, updated_at) VALUES ($client, $name, $value, $now, $now)
   ON CONFLICT (client, name) DO UPDATE SET value = EXCLUDED.value, updated_at = $now`,
);

/** Deletes `client`'s own value of setting `name`; returns the row when there was one. */
export const deleteClientSettingRow = defineQuery<{ client: string; name: string }, { name: string }>(
  'delete-client-setting-row',
  'DELETE FROM client_settings WHERE client = $client AND name = $name RETURNING name',
);
