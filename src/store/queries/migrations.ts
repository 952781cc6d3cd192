/** Statements of the schema migrator (`src/store/migrate.ts`) and of `task-engine migrate`. */
import { defineQuery, type NoParams } from './define-query.js';

/**
 * Takes the transaction advisory lock `key` (the migrations key), waiting for it: several engines
 * starting at once migrate one after the other. Held until the transaction ends.
 */
export const lockMigrations = defineQuery<{ key: number }>(
  'lock-migrations',
  'SELECT pg_advisory_xact_lock($key)',
);

/** Creates the table of applied migrations on a new database. No locks beyond DDL's own. */
export const createSchemaMigrations = defineQuery(
  'create-schema-migrations',
  `CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
);

/** A row of `schema_migrations`. */
export interface AppliedMigrationRow {
  version: number;
  name: string;
  applied_at: Date;
}

/** The applied migrations, oldest first. Read only. */
export const listAppliedMigrations = defineQuery<NoParams, AppliedMigrationRow>(
  'list-applied-migrations',
  'SELECT version, name, applied_at FROM schema_migrations ORDER BY version',
);

/**
 * Records migration `version` as applied (applied_at: the database's time, the column's default;
 * a migration has no engine clock). Inside the migration's transaction.
 */
export const recordMigration = defineQuery<{ version: number; name: string }>(
  'record-migration',
  'INSERT INTO schema_migrations (version, name) VALUES ($version, $name)',
);
