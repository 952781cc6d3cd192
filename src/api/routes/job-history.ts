/**
 * What happened to one job: `GET /jobs/<id>/attempts` (every attempt of its tasks) and
 * `GET /jobs/<id>/callbacks` (its callback deliveries). Visibility as `GET /jobs/<id>`.
 */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import { getJobAttempts, getJobCallbacks } from '../../engine/jobs/history.js';
import { viewerOf } from '../plugins/auth.js';
import { authErrors, describeOnly, errorSchema, jobIdParams } from '../schemas.js';

const timestamp = { type: 'string', format: 'date-time' } as const;
const nullableTimestamp = { type: ['string', 'null'], format: 'date-time' } as const;

/** An attempt of a task (`GET /jobs/<id>/attempts`). */
export const attemptSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    task_id: { type: 'integer' },
    task: { type: 'string', description: "the task's name" },
    number: { type: 'integer', description: '1-based attempt number of the task' },
    run: { type: 'integer', description: "the job's run (1, then +1 per retry of the job)" },
    worker_id: { type: ['string', 'null'], description: 'the worker process that ran it' },
    state: { type: 'string', enum: ['running', 'succeeded', 'failed', 'cancelled', 'stalled'] },
    started_at: timestamp,
    finished_at: nullableTimestamp,
    heartbeat_at: { ...timestamp, description: 'the last heartbeat of its worker' },
    error: { type: ['string', 'null'] },
  },
} as const;

/** A callback delivery (`GET /jobs/<id>/callbacks`). */
export const callbackDeliverySchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    task_id: { type: 'integer', description: '0 for the job-end callback' },
    kind: { type: 'string', enum: ['task', 'job'] },
    event: { type: 'string', description: 'start, complete, fail (task); completed, failed (job)' },
    target: {
      type: 'string',
      description: 'the target URL without user or password; a query string is shown as ?…',
    },
    state: { type: 'string', enum: ['pending', 'delivering', 'delivered', 'failed'] },
    attempts: { type: 'integer', description: 'attempts made so far' },
    last_status: { type: ['integer', 'null'], description: 'HTTP status of the last attempt' },
    last_error: { type: ['string', 'null'] },
    created_at: timestamp,
    delivered_at: nullableTimestamp,
    next_attempt_at: { ...timestamp, description: 'when the next attempt is due (while pending)' },
    run: { type: 'integer', description: "the job's run it belongs to" },
  },
} as const;

/** Registers `GET /jobs/<id>/attempts` and `GET /jobs/<id>/callbacks`. */
export function registerJobHistoryRoutes(app: FastifyInstance, ctx: EngineContext): void {
  app.get(
    '/jobs/:id/attempts',
    {
      ...describeOnly,
      schema: {
        summary: "Every attempt of a job's tasks",
        description: 'Ordered by started_at, then id. Non-admins see only their own jobs (404 otherwise).',
        tags: ['jobs'],
        params: jobIdParams,
        response: {
          200: { type: 'array', items: attemptSchema },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
        },
      },
    },
    async (request) => getJobAttempts(ctx, viewerOf(request), (request.params as { id: string }).id),
  );

  app.get(
    '/jobs/:id/callbacks',
    {
      ...describeOnly,
      schema: {
        summary: "A job's callback deliveries",
        description:
          'Every callback the job enqueued (task events and the job-end callback), in the order enqueued, with its delivery state. Targets are shown without credentials or query values.',
        tags: ['jobs'],
        params: jobIdParams,
        response: {
          200: { type: 'array', items: callbackDeliverySchema },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
        },
      },
    },
    async (request) => getJobCallbacks(ctx, viewerOf(request), (request.params as { id: string }).id),
  );
}
