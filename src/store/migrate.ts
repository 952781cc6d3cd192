import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Executor, Queryable } from './executor.js';
import { LOCK_KEYS } from './executor.js';
import {
  createSchemaMigrations,
  listAppliedMigrations,
  lockMigrations,
  recordMigration,
  type AppliedMigrationRow,
} from './queries/migrations.js';

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

/** One migration file: `NNNN_name.sql`. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Reads the bundled migrations, ordered by version. */
export async function readMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (f) => ({
      version: Number(f.slice(0, 4)),
      name: f.slice(5, -4),
      sql: await readFile(path.join(dir, f), 'utf8'),
    })),
  );
}

/** Thrown when the database was migrated by a newer engine than this one. */
export class DatabaseTooNewError extends Error {
  constructor(
    readonly databaseVersion: number,
    readonly engineVersion: number,
  ) {
    super(
      `the database schema is at version ${databaseVersion} but this engine knows only up to ${engineVersion}; upgrade the engine`,
    );
  }
}

/**
 * Applies every migration not yet applied, each in its own transaction, under the migrations
 * advisory lock (so several engines starting at once migrate exactly once).
 * @returns the versions applied by this call.
 * @throws {@link DatabaseTooNewError} when the database is ahead of this engine.
 */
export async function migrate(db: Executor): Promise<number[]> {
  const migrations = await readMigrations();
  const latest = migrations.at(-1)?.version ?? 0;
  return db.transaction(async (tx) => {
    await lockMigrations.run(tx, { key: LOCK_KEYS.migrations });
    await createSchemaMigrations.run(tx, {});
    const rows = await listAppliedMigrations.rows(tx, {});
    const applied = new Set(rows.map((r) => r.version));
    const current = rows.at(-1)?.version ?? 0;
    if (current > latest) throw new DatabaseTooNewError(current, latest);
    const done: number[] = [];
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      await tx.exec(m.sql);
      await recordMigration.run(tx, { version: m.version, name: m.name });
      done.push(m.version);
    }
    return done;
  });
}

/** The migrations applied to the database, oldest first (what `task-engine migrate` reports). */
export async function readAppliedMigrations(db: Queryable): Promise<AppliedMigrationRow[]> {
  return listAppliedMigrations.rows(db, {});
}
