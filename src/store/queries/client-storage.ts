/**
 * Statements on `client_storage` (migration 0013): a client's configured object storage back-ends.
 * `settings` is what may be shown; `secrets` is read only by {@link selectClientStorage} for the
 * workers and the submission check, never by a listing.
 */
import { defineQuery } from './define-query.js';

/** A configured back-end as shown (no secrets). */
export interface ClientStorageRow {
  kind: 's3' | 'azure_blob';
  settings: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
}

/** Inserts or replaces `client`'s back-end `kind`; `settings`/`secrets` are JSON text. */
export const upsertClientStorage = defineQuery<
  { client: string; kind: string; settings: string; secrets: string; now: Date },
  { kind: string }
>(
  'upsert-client-storage',
  `INSERT INTO client_storage (client, kind, settings, secrets, created_at, updated_at)
   VALUES ($client, $kind, $settings::jsonb, $secrets::jsonb, $now, $now)
   ON CONFLICT (client, kind) DO UPDATE
     SET settings = EXCLUDED.settings, secrets = EXCLUDED.secrets, updated_at = $now
   RETURNING kind`,
);

/** `client`'s back-ends, without secrets, by kind. */
export const listClientStorage = defineQuery<{ client: string }, ClientStorageRow>(
  'list-client-storage',
  `SELECT kind, settings, created_at, updated_at FROM client_storage WHERE client = $client ORDER BY kind`,
);

/** One back-end with its secrets (for opening it), or no row. */
export const selectClientStorage = defineQuery<
  { client: string; kind: string },
  { settings: Record<string, unknown>; secrets: Record<string, unknown> }
>(
  'select-client-storage',
  `SELECT settings, secrets FROM client_storage WHERE client = $client AND kind = $kind`,
);

/** Removes `client`'s back-end `kind`. */
export const deleteClientStorage = defineQuery<{ client: string; kind: string }, { kind: string }>(
  'delete-client-storage',
  `DELETE FROM client_storage WHERE client = $client AND kind = $kind RETURNING kind`,
);
