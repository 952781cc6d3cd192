/**
 * API clients (tenants): creation, listing, revocation, authentication and the start-up
 * bootstrap of an admin client (SPEC sections 3 and 4).
 *
 * Keys are 32 random bytes (base64url), shown once and stored only as SHA-256 hashes; a request's
 * key is hashed and compared with `timingSafeEqual`. Each client also gets a signing secret for
 * its callbacks (SPEC section 7), stored as is because the engine must sign with it.
 */
import { EngineError } from '../../errors/catalogue.js';
import type { Executor, Queryable } from '../../store/executor.js';
import {
  activeAdminExists,
  dropPreviousSigningSecret,
  insertOrReactivateClient,
  listClientRows,
  lockActiveAdmins,
  lockClient,
  readClientKey,
  revokeClientRow,
  rotateClientSigningSecret,
  upsertAdminClient,
  type ClientRow,
} from '../../store/queries/clients.js';
import { type Clock, systemClock } from '../clock.js';
import { CHANNELS, notify } from '../signals.js';
import { apiKeyMatches, generateSecret, hashApiKey, keyLast4 } from './keys.js';

/** The authenticated caller of a request. Non-admins see only their own jobs. */
export interface Viewer {
  client: string;
  admin: boolean;
}

/** Client names: `[a-z0-9][a-z0-9_-]{0,62}` (SPEC section 4). */
export const CLIENT_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Human wording of {@link CLIENT_NAME_PATTERN}, used in error messages. */
export const CLIENT_NAME_RULE =
  '1 to 63 characters: lowercase letters, digits, "_" and "-", starting with a letter or digit';

/** Name of the admin client created on the first embedded start when none is configured. */
export const DEMO_CLIENT_NAME = 'demo-client';

/** A client as listed (no secrets): the store's row as it is. Timestamps are Dates (the API serialises them as ISO UTC). */
export type ClientRecord = ClientRow;

/** A newly created client with its secrets (shown once). */
export interface CreatedClient {
  name: string;
  admin: boolean;
  api_key: string;
  signing_secret: string;
}

/**
 * Checks a client name.
 * @throws {EngineError} `VALIDATION_FAILED` naming the rule.
 */
export function assertClientName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !CLIENT_NAME_PATTERN.test(name))
    throw new EngineError(
      'VALIDATION_FAILED',
      `client name ${JSON.stringify(name)} is not accepted; a name is ${CLIENT_NAME_RULE}`,
    );
  if (RESERVED_CLIENT_NAMES.includes(name))
    throw new EngineError(
      'VALIDATION_FAILED',
      `client name "${name}" is reserved (it names a folder of the workflows directory); choose another name`,
    );
}

/** Names that would collide with folders of the workflows directory (SPEC section 11). */
export const RESERVED_CLIENT_NAMES: readonly string[] = ['common', 'handlers'];

/**
 * Creates a client with a fresh API key and signing secret. A name that was revoked may be added
 * again: it becomes active with new secrets (and sees the jobs of that name again).
 * @throws {EngineError} `VALIDATION_FAILED` for a bad name; `CONFLICT` when an active client of
 * that name exists.
 */
export async function createClient(
  db: Queryable,
  input: { name: string; admin?: boolean },
  clock: Clock = systemClock,
): Promise<CreatedClient> {
  assertClientName(input.name);
  const admin = input.admin === true;
  const apiKey = generateSecret();
  const signingSecret = generateSecret();
  // One statement: insert, or re-activate a revoked row; an active row is left alone (no row back).
  const rows = await insertOrReactivateClient.rows(db, {
    name: input.name,
    keyHash: hashApiKey(apiKey),
    keyLast4: keyLast4(apiKey),
    admin,
    signingSecret,
    now: clock.now(),
  });
  if (rows.length === 0)
    throw new EngineError(
      'CONFLICT',
      `client "${input.name}" already exists; revoke it first to issue new keys, or choose another name`,
    );
  await announceClientChange(db, input.name);
  return { name: input.name, admin, api_key: apiKey, signing_secret: signingSecret };
}

/**
 * Rotates a client's callback signing secret (SPEC section 7, Standard Webhooks rotation): a new
 * secret becomes current; with `keepPrevious` (the default) the old one stays valid and every
 * callback carries a signature with each, so receivers can switch at their own pace, until
 * {@link endSigningSecretOverlap} or the next rotation (which keeps only the one it replaces).
 * @returns the new secret (shown once).
 * @throws {EngineError} `VALIDATION_FAILED` for a bad name; `NOT_FOUND` for an unknown or revoked client.
 */
export async function rotateSigningSecret(
  db: Queryable,
  name: string,
  options: { keepPrevious?: boolean } = {},
  clock: Clock = systemClock,
): Promise<{ name: string; signing_secret: string; previous_valid: boolean }> {
  assertClientName(name);
  const signingSecret = generateSecret();
  const keepPrevious = options.keepPrevious !== false;
  const row = await rotateClientSigningSecret.first(db, {
    name,
    signingSecret,
    keepPrevious,
    now: clock.now(),
  });
  if (!row) throw new EngineError('NOT_FOUND', `no active client named "${name}"`);
  return { name, signing_secret: signingSecret, previous_valid: keepPrevious };
}

/**
 * Ends a rotation's overlap: the client's previous signing secret stops being used.
 * @returns whether there was one.
 * @throws {EngineError} `VALIDATION_FAILED` for a bad name; `NOT_FOUND` for an unknown or revoked client.
 */
export async function endSigningSecretOverlap(
  db: Queryable,
  name: string,
  clock: Clock = systemClock,
): Promise<boolean> {
  assertClientName(name);
  const row = await dropPreviousSigningSecret.first(db, { name, now: clock.now() });
  if (!row) throw new EngineError('NOT_FOUND', `no active client named "${name}"`);
  return row.dropped;
}

/** Every client, active and revoked, ordered by name. No secrets. */
export async function listClients(db: Queryable): Promise<ClientRecord[]> {
  return listClientRows.rows(db, {});
}

/**
 * Revokes a client: its key stops working at once (every process forgets the keys it verified;
 * see {@link authenticateClientCached}); its jobs stay. Revoking a revoked client
 * changes nothing. The last active admin client cannot be revoked (nobody could manage clients
 * over the API afterwards).
 * @returns the client's record after the change.
 * @throws {EngineError} `VALIDATION_FAILED` for a bad name, `NOT_FOUND` for an unknown client,
 * `CONFLICT` for the last active admin.
 */
export async function revokeClient(
  db: Executor,
  name: string,
  clock: Clock = systemClock,
): Promise<ClientRecord> {
  assertClientName(name);
  const record = await db.transaction(async (tx) => {
    // Lock the active admin rows first: two concurrent revocations of the last two admins then
    // run one after the other, and the second sees that it would leave none.
    const admins = await lockActiveAdmins.rows(tx, {});
    const row = await lockClient.first(tx, { name });
    if (!row) throw new EngineError('NOT_FOUND', `no client named "${name}"`);
    if (row.revoked_at !== null) return row;
    if (row.admin && admins.every((a) => a.name === name))
      throw new EngineError(
        'CONFLICT',
        `client "${name}" is the last active admin client and cannot be revoked; add another admin client first`,
      );
    const revoked = await revokeClientRow.first(tx, { name, now: clock.now() });
    await notify(tx, CHANNELS.clients, name);
    return revoked ?? row;
  });
  // After the commit: a key verified from here on is verified against the revoked row.
  forgetVerifiedKeys();
  return record;
}

/** Whether a name and key could belong to a client at all (checked before any database work). */
function plausibleCredentials(name: string, apiKey: string): boolean {
  return CLIENT_NAME_PATTERN.test(name) && apiKey.length > 0 && apiKey.length <= 512;
}

/**
 * Finds the active client that `apiKey` belongs to. Unknown names, revoked clients and wrong keys
 * all answer null, after the same hash-and-compare work (no timing hint of which it was).
 */
export async function authenticateClient(
  db: Queryable,
  name: string,
  apiKey: string,
): Promise<Viewer | null> {
  if (!plausibleCredentials(name, apiKey)) return null;
  const row = await readClientKey.first(db, { name });
  const matches = apiKeyMatches(apiKey, row?.key_hash ?? UNUSABLE_HASH);
  if (!row || !matches || row.revoked_at !== null) return null;
  return { client: name, admin: row.admin };
}

/** A hash no key produces in practice; compared against when the name is unknown. */
const UNUSABLE_HASH = '0'.repeat(64);

/**
 * Channel on which every change of a client's key or status is announced (payload: the client
 * name), so that every process drops the keys it verified earlier.
 */
export const CLIENTS_CHANNEL = CHANNELS.clients;

/** How long a verified key is trusted without asking the database again, in milliseconds. */
export const VERIFIED_KEY_TTL_MS = 5_000;

/** Most verified keys remembered per database (past this, the oldest are forgotten). */
export const MAX_VERIFIED_KEYS = 1_000;

/**
 * Bumped by every change of a client in this process and by every {@link CLIENTS_CHANNEL}
 * notification: a verified key remembered under an older generation is asked again.
 */
let clientsGeneration = 0;

/** Forgets every verified key (in this process, for every database). */
function forgetVerifiedKeys(): void {
  clientsGeneration++;
}

interface VerifiedKey {
  viewer: Viewer;
  generation: number;
  /** Clock time (ms) after which the key is asked again. */
  expires: number;
}

interface VerifiedKeyCache {
  keys: Map<string, VerifiedKey>;
  /** True once the {@link CLIENTS_CHANNEL} subscription is in place (no caching before). */
  listening: boolean;
  subscribing: Promise<void> | null;
}

const verifiedKeyCaches = new WeakMap<Executor, VerifiedKeyCache>();

/**
 * {@link authenticateClient} with a short memory of verified keys, for the API's per-request
 * authentication. A key is remembered by its SHA-256 hash (never the key itself), only after the
 * database verified it, and is asked again after {@link VERIFIED_KEY_TTL_MS}. Revoking a client,
 * adding one or replacing a key ({@link revokeClient}, {@link createClient},
 * {@link ensureAdminClient}, {@link ensureDemoClient}) forgets every remembered key at once in the
 * process that made the change, and in every other process as soon as the {@link CLIENTS_CHANNEL}
 * notification arrives; should that notification be lost (a dropped LISTEN connection), a revoked
 * key still stops working within {@link VERIFIED_KEY_TTL_MS}. Failed authentications are never
 * remembered.
 * @returns the viewer, or null for an unknown name, a revoked client or a wrong key.
 */
export async function authenticateClientCached(
  db: Executor,
  name: string,
  apiKey: string,
  clock: Clock = systemClock,
): Promise<Viewer | null> {
  const known = rememberedViewer(db, name, apiKey, clock);
  if (known !== undefined) return known;
  if (!plausibleCredentials(name, apiKey)) return null;
  const cache = verifiedKeyCache(db);
  if (!cache.listening) {
    const c = cache;
    c.subscribing ??= db
      .listen(CLIENTS_CHANNEL, forgetVerifiedKeys)
      .then(() => {
        c.listening = true;
      })
      .catch(() => {
        // No subscription, no memory: every request asks the database; the next one retries.
        c.subscribing = null;
      });
    return authenticateClient(db, name, apiKey);
  }
  const cacheKey = verifiedKeyOf(name, apiKey);
  const generation = clientsGeneration;
  // The time to live counts from before the database was asked.
  const askedAt = clock.now().getTime();
  const viewer = await authenticateClient(db, name, apiKey);
  cache.keys.delete(cacheKey);
  // A change made while the database was asked leaves the answer unremembered.
  if (viewer && generation === clientsGeneration) {
    if (cache.keys.size >= MAX_VERIFIED_KEYS) cache.keys.delete(cache.keys.keys().next().value!);
    cache.keys.set(cacheKey, {
      viewer,
      generation,
      expires: askedAt + VERIFIED_KEY_TTL_MS,
    });
  }
  return viewer;
}

/**
 * The viewer of a key that {@link authenticateClientCached} verified and still remembers (same
 * generation, not past {@link VERIFIED_KEY_TTL_MS}), found without waiting: the API's
 * authentication hook answers most requests with it and goes to the database (through
 * {@link authenticateClientCached}) only when it finds nothing. Pure lookup; never asks the
 * database and never remembers anything.
 * @returns the viewer, or undefined when the key is not remembered (unknown, wrong, revoked, or
 * simply not verified lately: the caller must then ask {@link authenticateClientCached}).
 */
export function rememberedViewer(
  db: Executor,
  name: string,
  apiKey: string,
  clock: Clock = systemClock,
): Viewer | undefined {
  const cache = verifiedKeyCaches.get(db);
  if (!cache?.listening || cache.keys.size === 0) return undefined;
  const known = cache.keys.get(verifiedKeyOf(name, apiKey));
  if (known && known.generation === clientsGeneration && known.expires > clock.now().getTime())
    return known.viewer;
  return undefined;
}

/** The cache of verified keys of `db`, made on first use. */
function verifiedKeyCache(db: Executor): VerifiedKeyCache {
  let cache = verifiedKeyCaches.get(db);
  if (!cache) {
    cache = { keys: new Map(), listening: false, subscribing: null };
    verifiedKeyCaches.set(db, cache);
  }
  return cache;
}

/** The map key of a verified key: the client name and the key's SHA-256 hash (never the key). */
function verifiedKeyOf(name: string, apiKey: string): string {
  return `${name}\u0000${hashApiKey(apiKey)}`;
}

/**
 * Announces a change of client `name` that was just written: forgets the verified keys of this
 * process and notifies the others (see {@link authenticateClientCached}).
 */
async function announceClientChange(db: Queryable, name: string): Promise<void> {
  forgetVerifiedKeys();
  await notify(db, CHANNELS.clients, name);
}

/**
 * Creates or updates the configured admin client (`TASK_ENGINE_ADMIN_CLIENT` /
 * `TASK_ENGINE_ADMIN_API_KEY`) so that `apiKey` authenticates it as admin. Keeps an existing
 * signing secret; re-activates a revoked client of that name.
 * @throws {EngineError} `VALIDATION_FAILED` for a bad name or an empty key.
 */
export async function ensureAdminClient(
  db: Queryable,
  name: string,
  apiKey: string,
  clock: Clock = systemClock,
): Promise<void> {
  assertClientName(name);
  if (apiKey.length === 0) throw new EngineError('VALIDATION_FAILED', 'the admin API key must not be empty');
  await upsertAdminClient.run(db, {
    name,
    keyHash: hashApiKey(apiKey),
    keyLast4: keyLast4(apiKey),
    signingSecret: generateSecret(),
    keepSigningSecret: true,
    now: clock.now(),
  });
  await announceClientChange(db, name);
}

/**
 * Creates `demo-client` (admin) when no active admin client exists, so that a first embedded start
 * is usable without configuration (SPEC section 3). Any earlier `demo-client` row is replaced.
 * @returns the new client with its key (to print once), or null when an admin already exists.
 */
export async function ensureDemoClient(
  db: Queryable,
  clock: Clock = systemClock,
): Promise<CreatedClient | null> {
  if ((await activeAdminExists.first(db, {}))?.exists) return null;
  const apiKey = generateSecret();
  const signingSecret = generateSecret();
  await upsertAdminClient.run(db, {
    name: DEMO_CLIENT_NAME,
    keyHash: hashApiKey(apiKey),
    keyLast4: keyLast4(apiKey),
    signingSecret,
    keepSigningSecret: false,
    now: clock.now(),
  });
  await announceClientChange(db, DEMO_CLIENT_NAME);
  return { name: DEMO_CLIENT_NAME, admin: true, api_key: apiKey, signing_secret: signingSecret };
}
