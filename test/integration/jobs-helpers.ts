/**
 * Shared set-up of the job service tests: an engine context over a real test store and a real
 * workflow catalog (the job fixtures copied into a private folder, so other fixtures added to
 * `test/fixtures/workflows` never change these tests), a clock the test moves, and row factories.
 */
import { createGuardedFetch } from '../../src/engine/egress/guarded-fetch.js';
import { DEFAULT_EGRESS } from '../../src/engine/egress/rules.js';
import { cp, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { EngineConfig } from '../../src/config/schema.js';
import { systemClock, type Clock, type ClockTimer } from '../../src/engine/clock.js';
import type { EngineContext } from '../../src/engine/context.js';
import type { Viewer } from '../../src/engine/jobs/records.js';
import type { Executor } from '../../src/store/executor.js';
import { loadCatalog } from '../../src/workflows/catalog.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/workflows/', import.meta.url));

/** A clock that stands still until the test moves it (its timers run on real time: these tests run no service). */
export class TestClock implements Clock {
  constructor(public current = new Date('2030-01-01T12:00:00.000Z')) {}
  now(): Date {
    return new Date(this.current.getTime());
  }
  setTimeout(fn: () => void, ms: number): ClockTimer {
    return systemClock.setTimeout(fn, ms);
  }
  advance(ms: number): void {
    this.current = new Date(this.current.getTime() + ms);
  }
}

/** A test context and a function that removes its temporary folder. */
export interface JobsTestContext {
  ctx: EngineContext;
  clock: TestClock;
  cleanup(): Promise<void>;
}

/** Builds an engine context over `db` with the job fixtures (`jobs_*` workflows, and acme's copy). */
export async function createJobsContext(db: Executor, clock = new TestClock()): Promise<JobsTestContext> {
  const dir = await mkdtemp(path.join(tmpdir(), 'te-jobs-wf-'));
  for (const folder of ['common', 'acme']) {
    const files = (await readdir(path.join(FIXTURES, folder))).filter((f) => f.startsWith('jobs_'));
    await mkdir(path.join(dir, folder), { recursive: true });
    for (const f of files) await cp(path.join(FIXTURES, folder, f), path.join(dir, folder, f), {});
  }
  const catalog = await loadCatalog(dir);
  const ctx: EngineContext = {
    config: { workflowsDir: dir } as EngineConfig,
    db,
    clock,
    logger: pino({ level: 'silent' }),
    catalog,
    version: '9.9.9-test',
    egress: DEFAULT_EGRESS,
    fetch: createGuardedFetch().fetch,
  };
  return { ctx, clock, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export const ADMIN: Viewer = { client: 'admin', admin: true };
export const DEMO: Viewer = { client: 'demo-client', admin: false };
export const ACME: Viewer = { client: 'acme', admin: false };

/** A submission request as the API hands it over. */
export const REQUEST = {
  path: 'POST /job',
  remoteAddr: '127.0.0.1',
  headers: { 'content-type': 'application/json', client: 'demo-client', 'api-key': 'k'.repeat(28) + '3e2d' },
};

/**
 * A job row as the jobs tests read it: the columns they read typed, any other `unknown`. The
 * timestamps are typed as set: tests read them after the step that sets them.
 */
export interface StoredJob {
  [column: string]: unknown;
  definition: { name: string; tasks: unknown[] };
  queued_at: Date;
  run_at: Date;
  finished_at: Date;
  updated_at: Date;
}

/** A task row as the jobs tests read it. */
export interface StoredTask {
  [column: string]: unknown;
  name: string;
  state: string;
  queue: string;
  needs: string[];
  position: number;
  error: string | null;
}

/** The row of a job as stored. */
export async function jobRow(db: Executor, id: number): Promise<StoredJob> {
  const { rows } = await db.query<StoredJob>('SELECT * FROM jobs WHERE id = $1', [id]);
  return rows[0]!;
}

/** The tasks of a job, in definition order. */
export async function taskRows(db: Executor, id: number): Promise<StoredTask[]> {
  const { rows } = await db.query<StoredTask>('SELECT * FROM tasks WHERE job_id = $1 ORDER BY position', [
    id,
  ]);
  return rows;
}

/** Sets columns of a job directly (a factory for states the API cannot reach by itself). */
export async function setJob(db: Executor, id: number, fields: Record<string, unknown>): Promise<void> {
  const names = Object.keys(fields);
  // Test-only: column names come from the test's own literals.
  const set = names.map((n, i) => `${n} = $${i + 2}`).join(', ');
  await db.query(`UPDATE jobs SET ${set} WHERE id = $1`, [id, ...names.map((n) => fields[n])]);
}

/** Counts rows of a table (test-only; the name is a literal in the test). */
export async function count(
  db: Executor,
  table: string,
  where = 'true',
  params: unknown[] = [],
): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${table} WHERE ${where}`,
    params,
  );
  return rows[0]!.n;
}

/** Shared by every test file; re-exported for the jobs tests, which take their helpers from here. */
export { rejects } from '../helpers/assertions.js';
