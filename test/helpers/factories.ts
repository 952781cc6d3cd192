/**
 * Row factories for integration tests: insert jobs, clients and callback deliveries in any state
 * straight into the store, and build an {@link EngineContext} around a test store.
 */
import { createGuardedFetch } from '../../src/engine/egress/guarded-fetch.js';
import { DEFAULT_EGRESS } from '../../src/engine/egress/rules.js';
import os from 'node:os';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load-config.js';
import type { EngineConfig } from '../../src/config/schema.js';
import type { Clock } from '../../src/engine/clock.js';
import { systemClock } from '../../src/engine/clock.js';
import type { EngineContext } from '../../src/engine/context.js';
import type { Executor, Queryable } from '../../src/store/executor.js';
import { SEARCHABLE_JOB } from '../../src/store/queries/jobs.js';
import type { WorkflowCatalog } from '../../src/workflows/types.js';

/** Columns {@link insertJob} sets; everything else takes the table's default. */
export interface JobFields {
  client?: string;
  workflow?: string;
  /** Default `queued`. */
  queue_state?: 'queued' | 'started' | 'completed' | 'pending' | 'broken' | 'scheduled' | 'paused';
  priority?: number;
  run_at?: Date;
  semaphore_url?: string | null;
  persist?: boolean;
  failed?: boolean;
  queued_at?: Date | null;
  started_at?: Date | null;
  finished_at?: Date | null;
  /** As submitted; `content_id` is copied to the column. Default `{}`. */
  parameters?: Record<string, unknown>;
  /** The frozen workflow definition. Default `{name: workflow, tasks: []}`. */
  definition?: Record<string, unknown>;
  definition_source?: 'common' | 'client';
}

/**
 * Inserts one job row as given (no validation, no tasks), with its search row as submission writes
 * it (none for a job with nothing to search: `SEARCHABLE_JOB`).
 * @returns the new job id.
 */
export async function insertJob(db: Queryable, f: JobFields = {}): Promise<number> {
  const workflow = f.workflow ?? 'demo';
  const state = f.queue_state ?? 'queued';
  const parameters = f.parameters ?? {};
  const contentId = typeof parameters.content_id === 'string' ? parameters.content_id : null;
  const { rows } = await db.query<{ id: number }>(
    `WITH j AS (
       INSERT INTO jobs (client, workflow, priority, queue_state, failed, persist, parameters, resolved_parameters,
                         definition, definition_source, content_id, run_at, semaphore_url, queued_at, started_at, finished_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $7::jsonb, $8::jsonb, $9, $10, COALESCE($11, now()), $12, $13, $14, $15)
       RETURNING id, content_id, parameters
     ), s AS (
       INSERT INTO job_search (job_id, content_id, parameters_text)
       SELECT id, content_id, parameters::text FROM j WHERE ${SEARCHABLE_JOB}
     )
     SELECT id FROM j`,
    [
      f.client ?? 'test-client',
      workflow,
      f.priority ?? 5,
      state,
      f.failed ?? false,
      f.persist ?? false,
      JSON.stringify(parameters),
      JSON.stringify(f.definition ?? { name: workflow, tasks: [] }),
      f.definition_source ?? 'common',
      contentId,
      f.run_at ?? null,
      f.semaphore_url ?? null,
      f.queued_at !== undefined ? f.queued_at : state === 'queued' ? new Date() : null,
      f.started_at ?? null,
      f.finished_at !== undefined
        ? f.finished_at
        : state === 'completed' || state === 'broken'
          ? new Date()
          : null,
    ],
  );
  return rows[0]!.id;
}

/** Inserts (or replaces) a client row; the key hash is a placeholder (no API login with it). */
export async function insertClient(
  db: Queryable,
  f: { name: string; admin?: boolean; signing_secret?: string | null },
): Promise<void> {
  await db.query(
    `INSERT INTO clients (name, key_hash, key_last4, admin, signing_secret) VALUES ($1, 'test-hash', 'test', $2, $3)
     ON CONFLICT (name) DO UPDATE SET admin = EXCLUDED.admin, signing_secret = EXCLUDED.signing_secret`,
    [f.name, f.admin ?? false, f.signing_secret ?? null],
  );
}

/** Columns {@link insertDelivery} sets. */
export interface DeliveryFields {
  job_id: number;
  target_url: string;
  task_id?: number;
  kind?: 'task' | 'job';
  event?: string;
  body?: Record<string, unknown>;
  state?: 'pending' | 'delivering' | 'delivered' | 'failed';
  attempts?: number;
  next_attempt_at?: Date;
  locked_until?: Date | null;
}

/**
 * Inserts one callback delivery (no NOTIFY: start or wake the dispatcher yourself).
 * @returns the delivery id.
 */
export async function insertDelivery(db: Queryable, f: DeliveryFields): Promise<number> {
  const kind = f.kind ?? 'task';
  const event = f.event ?? (kind === 'job' ? 'completed' : 'start');
  const body = f.body ?? { job_id: f.job_id, task_id: f.task_id ?? 0, event, time: new Date().toISOString() };
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO callback_deliveries (job_id, task_id, kind, event, target_url, body, state, attempts, next_attempt_at, locked_until)
     VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, COALESCE($9, now()), $10) RETURNING id`,
    [
      f.job_id,
      f.task_id ?? 0,
      kind,
      event,
      f.target_url,
      JSON.stringify(body),
      f.state ?? 'pending',
      f.attempts ?? 0,
      f.next_attempt_at ?? null,
      f.locked_until ?? null,
    ],
  );
  return rows[0]!.id;
}

/** Sets one setting row (as POST /settings would store it, without its validation). */
export async function putSetting(db: Queryable, name: string, value: string | number): Promise<void> {
  await db.query(
    `INSERT INTO settings (name, value) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
    [name, String(value)],
  );
}

/** A catalog with no workflows (for services that never look one up). */
export const EMPTY_CATALOG: WorkflowCatalog = {
  resolve: () => null,
  list: () => [],
  queues: () => ['work'],
  reload: () => Promise.resolve(),
  dir: os.tmpdir(),
};

/**
 * An {@link EngineContext} around a test store: default configuration (data under the OS temp
 * folder), a silent logger (`TEST_LOG_LEVEL` to see it), the empty catalog, the system clock.
 */
export function testContext(
  db: Executor,
  overrides: { config?: Partial<EngineConfig>; clock?: Clock; catalog?: WorkflowCatalog } = {},
): EngineContext {
  const config = { ...loadConfig({ TASK_ENGINE_DATA_DIR: os.tmpdir() }, os.tmpdir()), ...overrides.config };
  return {
    config,
    db,
    clock: overrides.clock ?? systemClock,
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    catalog: overrides.catalog ?? EMPTY_CATALOG,
    version: 'test',
    egress: DEFAULT_EGRESS,
    fetch: createGuardedFetch().fetch,
  };
}

/** Log entries of a job, in order. */
export async function jobLogs(
  db: Queryable,
  jobId: number,
): Promise<{ severity: number; progname: string; message: string; task_id: number }[]> {
  const { rows } = await db.query<{ severity: number; progname: string; message: string; task_id: number }>(
    'SELECT severity, progname, message, task_id FROM logs WHERE job_id = $1 ORDER BY id',
    [jobId],
  );
  return rows;
}
