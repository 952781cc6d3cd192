/**
 * Runs a suite once per store: on the PostgreSQL server named by TEST_DATABASE_URL (a fresh
 * database per suite, cloned from a migrated template) and on in-memory PGlite. Without
 * TEST_DATABASE_URL only PGlite runs, with a notice.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe } from 'node:test';
import pg from 'pg';
import type { Executor } from '../../src/store/executor.js';
import { openStore } from '../../src/store/open-store.js';
import { createPgliteExecutor, dumpPgliteExecutor } from '../../src/store/pglite-executor.js';
import { migrate } from '../../src/store/migrate.js';
import { readMigrations } from '../../src/store/migrate.js';

export type StoreKind = 'postgres' | 'pglite';

/** A fresh, migrated database for one suite. */
export interface TestStore {
  kind: StoreKind;
  /** The executor (already migrated). */
  db: Executor;
  /** For server mode: the connection string of this suite's own database (for child processes). */
  databaseUrl: string | null;
  /** Closes the executor and drops the database. */
  dispose(): Promise<void>;
}

/** The stores this run covers. */
export function storeKinds(): StoreKind[] {
  const only = process.env.TEST_STORE as StoreKind | undefined;
  const kinds: StoreKind[] = process.env.TEST_DATABASE_URL ? ['postgres', 'pglite'] : ['pglite'];
  return only ? kinds.filter((k) => k === only) : kinds;
}

/** Creates a fresh migrated database of `kind`. */
export async function createTestStore(kind: StoreKind): Promise<TestStore> {
  if (kind === 'pglite') {
    // Migrating PGlite takes seconds; every later store in this process starts from a dump.
    pgliteTemplate ??= (async () => {
      const first = await openStore({ dataDir: null });
      const dump = await dumpPgliteExecutor(first);
      await first.close();
      return dump;
    })();
    const db = await createPgliteExecutor({ loadDataDir: await pgliteTemplate });
    await migrate(db);
    return { kind, db, databaseUrl: null, dispose: () => db.close() };
  }
  const baseUrl = process.env.TEST_DATABASE_URL;
  if (!baseUrl) throw new Error('TEST_DATABASE_URL is not set');
  const template = await ensureTemplate(baseUrl);
  const name = `te_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  await withAdmin(baseUrl, (c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${template}`));
  const url = withDatabase(baseUrl, name);
  const db = await openStore({ databaseUrl: url });
  return {
    kind,
    db,
    databaseUrl: url,
    async dispose() {
      await db.close();
      await withAdmin(baseUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).catch(
        () => undefined,
      );
    },
  };
}

/**
 * Declares `describe(`${title} [${kind}]`)` for each store kind of this run ({@link storeKinds}).
 * `body` receives the kind; it creates its store in its own `before` hook
 * (`createTestStore(kind)`) and disposes it in `after`.
 */
export function forEachStore(title: string, body: (kind: StoreKind) => void): void {
  const kinds = storeKinds();
  if (!process.env.TEST_DATABASE_URL && !warned) {
    warned = true;
    process.stderr.write('note: TEST_DATABASE_URL is not set; store tests run on PGlite only\n');
  }
  for (const kind of kinds) {
    void describe(`${title} [${kind}]`, () => body(kind));
  }
}
let warned = false;
let pgliteTemplate: Promise<Blob | File> | undefined;

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function withAdmin<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Migrates a template database once per migration set; later suites clone it (fast). */
async function ensureTemplate(baseUrl: string): Promise<string> {
  const migrations = await readMigrations();
  const hash = createHash('sha256')
    .update(migrations.map((m) => m.sql).join('\n'))
    .digest('hex')
    .slice(0, 12);
  const name = `te_template_${hash}`;
  await withAdmin(baseUrl, async (c) => {
    // Serialise template creation between test processes.
    await c.query('SELECT pg_advisory_lock(7310099)');
    try {
      const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (r.rowCount) return;
      // Opening the store migrates it; a failure here throws out of ensureTemplate.
      await c.query(`CREATE DATABASE ${name}`);
      const db = await openStore({ databaseUrl: withDatabase(baseUrl, name) });
      await db.close();
    } finally {
      await c.query('SELECT pg_advisory_unlock(7310099)');
    }
  });
  return name;
}
