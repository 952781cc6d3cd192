/**
 * Statements on `clients` (SPEC sections 3 and 4): API keys are stored as SHA-256 hashes, signing
 * secrets as is. Key generation, hashing and the rules (last admin, reserved names) are the
 * engine's (src/engine/clients/).
 */
import { defineQuery } from './define-query.js';

/** A client as listed (no secrets). */
export interface ClientRow {
  name: string;
  admin: boolean;
  /** Last 4 characters of the current API key, to tell keys apart. */
  api_key_last4: string;
  created_at: Date;
  updated_at: Date;
  /** When the client was revoked; null while active. */
  revoked_at: Date | null;
}

/** A new client's key hash, key tail, admin flag and signing secret, and the time. */
export interface NewClientParams {
  name: string;
  keyHash: string;
  keyLast4: string;
  admin: boolean;
  signingSecret: string;
  now: Date;
}

/**
 * Inserts client `name`, or re-activates it with new secrets when it was revoked; an active row
 * is left alone (no row back). Row lock on the client.
 */
export const insertOrReactivateClient = defineQuery<NewClientParams, { name: string }>(
  'insert-or-reactivate-client',
  `INSERT INTO clients (name, key_hash, key_last4, admin, signing_secret, created_at, updated_at)
   VALUES ($name, $keyHash, $keyLast4, $admin, $signingSecret, $now, $now)
   ON CONFLICT (name) DO UPDATE
     SET key_hash = EXCLUDED.key_hash, key_last4 = EXCLUDED.key_last4, admin = EXCLUDED.admin,
         signing_secret = EXCLUDED.signing_secret, revoked_at = NULL, updated_at = $now
     WHERE clients.revoked_at IS NOT NULL
   RETURNING name`,
);

/**
 * Inserts or replaces admin client `name` with a new key, active; `keepSigningSecret` keeps an
 * existing signing secret (the configured admin) instead of replacing it (the demo client).
 * Row lock on the client.
 */
export const upsertAdminClient = defineQuery<Omit<NewClientParams, 'admin'> & { keepSigningSecret: boolean }>(
  'upsert-admin-client',
  `INSERT INTO clients (name, key_hash, key_last4, admin, signing_secret, created_at, updated_at)
   VALUES ($name, $keyHash, $keyLast4, true, $signingSecret, $now, $now)
   ON CONFLICT (name) DO UPDATE
     SET key_hash = EXCLUDED.key_hash, key_last4 = EXCLUDED.key_last4, admin = true,
         signing_secret = CASE WHEN $keepSigningSecret::boolean
                               THEN COALESCE(clients.signing_secret, EXCLUDED.signing_secret)
                               ELSE EXCLUDED.signing_secret END,
         revoked_at = NULL, updated_at = $now`,
);

/**
 * Gives active client `name` a new signing secret; the old one becomes `previous_signing_secret`
 * when `keepPrevious` (callbacks are then signed with both), else it is dropped. No row back when
 * the client is unknown or revoked. Row lock on the client.
 */
export const rotateClientSigningSecret = defineQuery<
  { name: string; signingSecret: string; keepPrevious: boolean; now: Date },
  { name: string }
>(
  'rotate-client-signing-secret',
  `UPDATE clients
      SET previous_signing_secret = CASE WHEN $keepPrevious::boolean THEN signing_secret END,
          signing_secret = $signingSecret, updated_at = $now
    WHERE name = $name AND revoked_at IS NULL
   RETURNING name`,
);

/**
 * Ends the overlap of a rotation: drops active client `name`'s previous signing secret. Answers
 * whether one was dropped; no row back when the client is unknown or revoked. Row lock on the client.
 */
export const dropPreviousSigningSecret = defineQuery<
  { name: string; now: Date },
  { name: string; dropped: boolean }
>(
  'drop-previous-signing-secret',
  `UPDATE clients c
      SET previous_signing_secret = NULL, updated_at = $now
     FROM (SELECT name, previous_signing_secret IS NOT NULL AS had FROM clients WHERE name = $name FOR UPDATE) o
    WHERE c.name = o.name AND c.revoked_at IS NULL
   RETURNING c.name, o.had AS dropped`,
);

/** Every client, active and revoked, ordered by name. No locks. */
export const listClientRows = defineQuery<Record<string, never>, ClientRow>(
  'list-client-rows',
  `SELECT name, admin, key_last4 AS api_key_last4, created_at, updated_at, revoked_at
     FROM clients ORDER BY name`,
);

/** Locks the active admin clients (`FOR UPDATE`, by name), so revocations of admins run one at a time. */
export const lockActiveAdmins = defineQuery<Record<string, never>, { name: string }>(
  'lock-active-admins',
  'SELECT name FROM clients WHERE admin AND revoked_at IS NULL ORDER BY name FOR UPDATE',
);

/** Reads client `name` and locks its row (`FOR UPDATE`). */
export const lockClient = defineQuery<{ name: string }, ClientRow>(
  'lock-client',
  `SELECT name, admin, key_last4 AS api_key_last4, created_at, updated_at, revoked_at
     FROM clients WHERE name = $name FOR UPDATE`,
);

/** Revokes client `name` at `now` if it is active; returns it after the change. Row lock on the client. */
export const revokeClientRow = defineQuery<{ name: string; now: Date }, ClientRow>(
  'revoke-client-row',
  `UPDATE clients SET revoked_at = $now, updated_at = $now
    WHERE name = $name AND revoked_at IS NULL
    RETURNING name, admin, key_last4 AS api_key_last4, created_at, updated_at, revoked_at`,
);

/** Reads what authenticating client `name` needs. No locks. */
export const readClientKey = defineQuery<
  { name: string },
  { key_hash: string; admin: boolean; revoked_at: Date | null }
>('read-client-key', 'SELECT key_hash, admin, revoked_at FROM clients WHERE name = $name');

/** Whether an active admin client exists. No locks. */
export const activeAdminExists = defineQuery<Record<string, never>, { exists: boolean }>(
  'active-admin-exists',
  'SELECT EXISTS (SELECT 1 FROM clients WHERE admin AND revoked_at IS NULL) AS exists',
);
