/**
 * JSON Schemas of the API's requests and replies, used for the OpenAPI document (`GET
 * /openapi.json`, `/docs`). Where the engine's services validate a request themselves (jobs,
 * settings, schedules) these schemas only describe it: the route turns Fastify's validation off
 * with {@link describeOnly} so that one module owns each rule and its message.
 */

import { Ajv } from 'ajv';

/**
 * Validator for a route whose body is refused, not repaired: Fastify's own validator drops unknown
 * fields and coerces types (`null` to `false`, `"1"` to `true`), which would change the request.
 */
const strictAjv = new Ajv({
  allErrors: true,
  removeAdditional: false,
  coerceTypes: false,
  useDefaults: false,
  // Bodies that may be left out have no `type`, and `priority` takes a number or a string.
  strictTypes: false,
});
export const strictValidator = ({ schema }: { schema: object }) => strictAjv.compile(schema);

/** Route option that keeps a request schema for the documentation but validates nothing. */
export const describeOnly = { validatorCompiler: () => () => true } as const;

const timestamp = {
  type: 'string',
  format: 'date-time',
  description: 'ISO-8601 UTC with milliseconds and Z',
};
const nullableTimestamp = { type: ['string', 'null'], format: 'date-time' };

/** `{"error": …}` (plus `id` when a job id is known, `request_id` on 500). */
export const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: { type: 'string', description: 'what was wrong and what is accepted' },
    id: { type: 'integer', description: 'the job concerned, when known' },
    request_id: { type: 'string', description: 'on 500 only: look it up in the process log' },
  },
} as const;

/** The error replies every authenticated route may give. */
export const authErrors = {
  401: { description: 'missing or wrong credentials', ...errorSchema },
  403: { description: 'the client may not do that', ...errorSchema },
} as const;

const jobFields = {
  id: { type: 'integer' },
  client: { type: 'string' },
  workflow: { type: 'string' },
  priority: { type: 'integer', minimum: 1, maximum: 10, description: '1 most urgent … 10 least' },
  position: { type: 'integer', description: "1-based rank inside its state's list as /dashboard orders it" },
  top_of_queue: { type: 'boolean' },
  created_at: timestamp,
  updated_at: timestamp,
  queue_state: {
    type: 'string',
    enum: ['queued', 'started', 'completed', 'pending', 'broken', 'scheduled', 'paused'],
  },
  failed: { type: 'boolean' },
  run_at: nullableTimestamp,
  persist: { type: 'boolean' },
  rerun_of: { type: ['integer', 'null'], description: 'the job this one reruns' },
  rerun_by: {
    type: ['integer', 'null'],
    description: 'the newest job that reran this one (this one is then broken)',
  },
  idempotency_key: { type: ['string', 'null'], description: 'the job.idempotency_key it was submitted with' },
  started_at: nullableTimestamp,
  finished_at: nullableTimestamp,
  semaphore_url: { type: ['string', 'null'] },
  run: { type: 'integer', description: '1 for the first run, +1 for each retry (POST /jobs/<id>/retry)' },
  retried_at: { ...nullableTimestamp, description: 'when the last retry was asked for' },
} as const;

/** Why a job is not running (`GET /jobs/<id>`, `/dashboard` rows); null when it waits for nothing. */
export const waitingSchema = {
  type: ['object', 'null'],
  description: 'why it is not running: a stable reason code and a sentence; null when running or ended',
  properties: {
    reason: {
      type: 'string',
      enum: [
        'starting',
        'scheduled_run_at',
        'semaphore_closed',
        'max_jobs_reached',
        'reserved_for_priority',
        'client_quota',
        'fair_share',
        'concurrency_key',
        'paused',
        'no_worker_for_queue',
        'workers_busy',
        'task_too_heavy',
      ],
    },
    detail: { type: 'string' },
    position: { type: ['integer', 'null'] },
    ahead: { type: ['integer', 'null'], description: 'queued jobs admission would start before this one' },
    estimated_start_at: {
      ...nullableTimestamp,
      description: 'from run_at or the recent rate of slots freeing',
    },
    task: { type: 'string', description: 'for a started job: the ready task that does not run' },
  },
} as const;

/** A job as `/dashboard` lists it (no parameters); queued and scheduled rows carry `waiting`. */
export const dashboardJobSchema = {
  type: 'object',
  properties: { ...jobFields, waiting: waitingSchema },
} as const;

/** A job as `/jobs` lists it. */
export const jobSchema = {
  type: 'object',
  properties: { ...jobFields, parameters: { type: 'object', description: 'the parameters as submitted' } },
} as const;

/** A task of a job (`GET /jobs/<id>`). */
export const taskSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    queue: { type: 'string' },
    state: {
      type: 'string',
      enum: ['waiting', 'ready', 'running', 'succeeded', 'failed', 'skipped', 'cancelled'],
    },
    attempts: { type: 'integer' },
    started_at: nullableTimestamp,
    finished_at: nullableTimestamp,
    error: { type: ['string', 'null'] },
    needs: { type: 'array', items: { type: 'string' }, description: 'tasks it waits for' },
    output: { description: 'what its handler returned once it succeeded; null before' },
    progress: { type: ['number', 'null'], minimum: 0, maximum: 1, description: 'fraction done' },
    progress_message: { type: ['string', 'null'] },
    progress_detail: {
      type: ['object', 'null'],
      additionalProperties: true,
      description: 'details of the last progress report, e.g. fps, speed, eta_seconds',
    },
    progress_at: nullableTimestamp,
    run_after: { type: 'string', format: 'date-time', description: 'earliest start of its next attempt' },
    created_at: { type: 'string', format: 'date-time' },
    duration_ms: { type: ['integer', 'null'], description: 'start to end, or to now while it runs' },
  },
} as const;

/** One job log entry (`GET /logs/<id>`). */
export const logSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    job_id: { type: 'integer' },
    severity: { type: 'integer', description: '0 DEBUG, 1 INFO, 2 WARN, 3 ERROR, 4 FATAL' },
    severity_description: { type: 'string' },
    progname: { type: 'string', enum: ['api', 'controller', 'worker', 'callback', 'scheduler'] },
    message: { type: 'string' },
    created_at: timestamp,
    updated_at: timestamp,
    task_id: { type: 'integer', description: '0 for job-level entries' },
    visible: { type: 'boolean' },
  },
} as const;

/** Path parameter `id` of the job routes (validated by the job service: a positive integer). */
export const jobIdParams = {
  type: 'object',
  properties: { id: { type: 'string', description: 'job id (a positive integer)' } },
} as const;
