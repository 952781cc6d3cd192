import type { Executor, Queryable } from '../store/executor.js';
import {
  clientNameExists,
  deleteClientSettingRow,
  lockSettings,
  readClientSettingRows,
  readSettingRows,
  settingExists,
  upsertClientSetting,
  upsertSetting,
  type ClientSettingRow,
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
  /** A client's share of the slots under fair share; the global value is every client's default. */
  weight: 1,
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
  weight: 1,
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
  weight: 1_000,
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

/** The settings a client may have its own value of (`POST /settings {"client": …}`). */
export const CLIENT_SETTING_NAMES = [
  'max_jobs',
  'weight',
  'priority_slots',
  'priority_threshold',
  'retry_limit',
  'retry_delay',
] as const;
/** One of {@link CLIENT_SETTING_NAMES}. */
export type ClientSettingName = (typeof CLIENT_SETTING_NAMES)[number];
/** A client's own values (only those it has; the others take the global value). */
export type ClientOverrides = Partial<Record<ClientSettingName, number>>;

/** Whether `name` may be set per client. */
export function isClientSetting(name: string): name is ClientSettingName {
  return (CLIENT_SETTING_NAMES as readonly string[]).includes(name);
}

/**
 * Parses `client_settings` rows into each client's own values. Pure. A value that is not a safe
 * integer, or a name that is not a {@link CLIENT_SETTING_NAMES} entry, is ignored (the global
 * value applies), as {@link parseSettings} does for global rows.
 */
export function parseClientSettings(rows: readonly ClientSettingRow[]): Map<string, ClientOverrides> {
  const out = new Map<string, ClientOverrides>();
  for (const r of rows) {
    if (!isClientSetting(r.name) || !/^-?\d+$/.test(r.value) || !Number.isSafeInteger(Number(r.value)))
      continue;
    let own = out.get(r.client);
    if (!own) out.set(r.client, (own = {}));
    own[r.name] = Number(r.value);
  }
  return out;
}

/** Reads the own settings of `client` (every client when null), parsed by {@link parseClientSettings}. */
export async function readClientSettings(
  db: Queryable,
  client: string | null,
): Promise<Map<string, ClientOverrides>> {
  return parseClientSettings(await readClientSettingRows.rows(db, { client }));
}

/**
 * Validates a client's own value of a setting, against the global settings and the client's other
 * own values: the bounds of the global setting, and `priority_slots <= max_jobs` within the
 * client (its own `max_jobs`, else the global one; its own `priority_slots`, else none).
 * @returns the value to store, as text.
 * @throws {EngineError} `VALIDATION_FAILED` saying what is accepted.
 */
export function validateClientSetting(
  name: string,
  value: unknown,
  global: EngineSettings,
  own: ClientOverrides,
): string {
  if (!isClientSetting(name))
    throw new EngineError(
      'VALIDATION_FAILED',
      `setting "${name}" cannot be set for one client; per-client settings: ${CLIENT_SETTING_NAMES.join(', ')}`,
    );
  const current: EngineSettings = {
    ...global,
    max_jobs: own.max_jobs ?? global.max_jobs,
    priority_slots: own.priority_slots ?? 0,
  };
  return validateSetting(name, value, current);
}

/** The reply of `POST /settings` (seed "Settings Endpoints"). */
export interface SettingReply {
  result: 'ok';
  /** `<name> setting created` or `<name> setting updated`. */
  message: string;
  /** The client the value was set for, when the body named one. */
  client?: string;
}

/**
 * Creates or updates one setting (`POST /settings {"name", "setting"}`, SPEC section 9), or, with
 * `"client"`, that client's own value of it. The admin check is the API's. Known names are
 * validated by {@link validateSetting} (per client: {@link validateClientSetting}) against the
 * current values, under a table lock so two concurrent changes (say `max_jobs` and
 * `priority_slots`) cannot together break `priority_slots <= max_jobs`. Wakes admission (and the
 * scheduler when `schedule_interval` changes) so the change takes effect at once.
 * @returns `<name> setting created` only for a name that is neither a known setting nor stored
 *   already (so a mistyped name shows), else `<name> setting updated`.
 * @throws {EngineError} `VALIDATION_FAILED` (400) for a bad body or value; `NOT_FOUND` (404) for a
 *   `client` that does not exist.
 */
export async function postSetting(ctx: { db: Executor; clock: Clock }, body: unknown): Promise<SettingReply> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new EngineError(
      'VALIDATION_FAILED',
      'the body must be a JSON object like {"name": "max_jobs", "setting": 4} (optionally with "client": "<client name>")',
    );
  const { name, setting, client } = body as Record<string, unknown>;
  if (typeof name !== 'string' || name.trim() === '' || name.length > MAX_SETTING_NAME_LENGTH)
    throw new EngineError(
      'VALIDATION_FAILED',
      `name must be a setting name (text of 1 to ${MAX_SETTING_NAME_LENGTH} characters), e.g. ${Object.keys(SETTING_DEFAULTS).join(', ')}`,
    );
  if (setting === undefined || setting === null)
    throw new EngineError('VALIDATION_FAILED', `setting (the value for "${name}") is required`);
  if (client !== undefined && client !== null) return postClientSetting(ctx, name, setting, client);
  const created = await ctx.db.transaction(async (tx) => {
    await lockSettings.run(tx, {});
    const { known } = await readSettings(tx);
    const value = validateSetting(name, setting, known);
    const existed = isKnownSetting(name) || ((await settingExists.first(tx, { name }))?.existed ?? false);
    await upsertSetting.run(tx, { name, value, now: ctx.clock.now() });
    await notify(tx, CHANNELS.admission, 'setting');
    if (name === 'schedule_interval') await notify(tx, CHANNELS.scheduler, 'queue_scheduled_jobs');
    return !existed;
  });
  return { result: 'ok', message: `${name} setting ${created ? 'created' : 'updated'}` };
}

/** Checks a `client` given to the settings endpoints: a client name that exists. */
async function checkSettingsClient(db: Queryable, client: unknown): Promise<string> {
  if (typeof client !== 'string' || client.trim() === '' || client.length > MAX_SETTING_NAME_LENGTH)
    throw new EngineError(
      'VALIDATION_FAILED',
      `client must be the name of a client (text of 1 to ${MAX_SETTING_NAME_LENGTH} characters); got ${JSON.stringify(client)}`,
    );
  if (!((await clientNameExists.first(db, { client }))?.existed ?? false))
    throw new EngineError(
      'NOT_FOUND',
      `no client "${client}"; per-client settings are for existing clients (GET /clients lists them)`,
    );
  return client;
}

async function postClientSetting(
  ctx: { db: Executor; clock: Clock },
  name: string,
  setting: unknown,
  clientField: unknown,
): Promise<SettingReply> {
  const client = await checkSettingsClient(ctx.db, clientField);
  await ctx.db.transaction(async (tx) => {
    // The same lock as a global change: a client's pair of values is checked against the global ones.
    await lockSettings.run(tx, {});
    const { known } = await readSettings(tx);
    const own = (await readClientSettings(tx, client)).get(client) ?? {};
    const value = validateClientSetting(name, setting, known, own);
    await upsertClientSetting.run(tx, { client, name, value, now: ctx.clock.now() });
    await notify(tx, CHANNELS.admission, 'setting');
  });
  return { result: 'ok', message: `${name} setting updated`, client };
}

/** The reply of `DELETE /settings/<name>?client=<client>`. */
export interface SettingRemovedReply {
  result: 'ok';
  message: string;
  client: string;
}

/**
 * Removes a client's own value of a setting (`DELETE /settings/<name>?client=<client>`, admin): the
 * global value applies to it again. Wakes admission.
 * @throws {EngineError} `VALIDATION_FAILED` (400) without `client` or for a name that cannot be
 *   set per client; `NOT_FOUND` (404) for an unknown client or a value the client does not have.
 */
export async function deleteClientSetting(
  ctx: { db: Executor },
  name: string,
  query: Record<string, unknown>,
): Promise<SettingRemovedReply> {
  const unknown = Object.keys(query).filter((k) => k !== 'client');
  if (unknown.length > 0 || query.client === undefined)
    throw new EngineError(
      'VALIDATION_FAILED',
      'DELETE /settings/<name> takes ?client=<client name> (only a per-client value can be removed; the global one is changed with POST /settings)',
    );
  if (!isClientSetting(name))
    throw new EngineError(
      'VALIDATION_FAILED',
      `setting "${name}" has no per-client values; per-client settings: ${CLIENT_SETTING_NAMES.join(', ')}`,
    );
  const client = await checkSettingsClient(ctx.db, query.client);
  const removed = await ctx.db.transaction(async (tx) => {
    const row = await deleteClientSettingRow.first(tx, { client, name });
    if (row) await notify(tx, CHANNELS.admission, 'setting');
    return row !== null;
  });
  if (!removed)
    throw new EngineError(
      'NOT_FOUND',
      `client "${client}" has no own ${name}; the global value applies already`,
    );
  return {
    result: 'ok',
    message: `${name} setting removed for client ${client}; the global value applies`,
    client,
  };
}

/** The reply of `GET /settings`. */
export interface SettingsList {
  result: 'ok';
  /** Every known setting (number; its default when never set) and every unknown one (text, as stored). */
  settings: Record<string, number | string>;
}

/** One setting as `GET /settings?client=` shows it: the value in effect and where it comes from. */
export interface EffectiveSetting {
  value: number;
  source: 'client' | 'global';
}

/** The reply of `GET /settings?client=<client>`. */
export interface ClientSettingsList {
  result: 'ok';
  client: string;
  /** Each per-client setting ({@link CLIENT_SETTING_NAMES}). */
  settings: Record<ClientSettingName, EffectiveSetting>;
}

/**
 * `GET /settings`: {@link listSettings}, or with `?client=<name>` {@link listClientSettings}.
 * @throws {EngineError} `VALIDATION_FAILED` (400) for another query parameter, and what
 *   {@link listClientSettings} throws.
 */
export async function getSettings(
  ctx: { db: Queryable },
  viewer: { client: string; admin: boolean },
  query: Record<string, unknown>,
): Promise<SettingsList | ClientSettingsList> {
  const unknown = Object.keys(query).filter((k) => k !== 'client');
  if (unknown.length > 0)
    throw new EngineError(
      'VALIDATION_FAILED',
      `unknown query parameter${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}; accepted: client`,
    );
  return query.client === undefined ? listSettings(ctx) : listClientSettings(ctx, viewer, query.client);
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

/**
 * The per-client settings of `client` (`GET /settings?client=<name>`): each with the value in
 * effect for it and its `source` (`client`: its own value; `global`: the global one applies).
 * @throws {EngineError} `FORBIDDEN` (403) when a non-admin asks for another client;
 *   `VALIDATION_FAILED` (400) for a `client` that is not a name; `NOT_FOUND` (404) for an unknown one.
 */
export async function listClientSettings(
  ctx: { db: Queryable },
  viewer: { client: string; admin: boolean },
  clientField: unknown,
): Promise<ClientSettingsList> {
  if (!viewer.admin && clientField !== viewer.client)
    throw new EngineError(
      'FORBIDDEN',
      `client "${viewer.client}" may read only its own per-client settings (?client=${viewer.client})`,
    );
  const client = await checkSettingsClient(ctx.db, clientField);
  const [{ known }, clients] = await Promise.all([readSettings(ctx.db), readClientSettings(ctx.db, client)]);
  const own = clients.get(client) ?? {};
  const settings = {} as Record<ClientSettingName, EffectiveSetting>;
  for (const name of CLIENT_SETTING_NAMES) {
    const mine = own[name];
    settings[name] =
      mine === undefined ? { value: known[name], source: 'global' } : { value: mine, source: 'client' };
  }
  return { result: 'ok', client, settings };
}
