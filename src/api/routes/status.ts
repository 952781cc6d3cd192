/**
 * Status routes: `GET /` (reachability, no credentials), `GET /health`, `GET /dashboard`
 * (seed "Status Endpoints").
 */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import { getHealth } from '../../engine/status/health.js';
import { getDashboard } from '../../engine/status/dashboard.js';
import { viewerOf } from '../plugins/auth.js';
import { authErrors, dashboardJobSchema, describeOnly, errorSchema } from '../schemas.js';

const counter = {
  type: 'object',
  properties: { workers: { type: 'integer' }, working: { type: 'integer' }, pending: { type: 'integer' } },
} as const;

/** Registers the status routes. */
export function registerStatusRoutes(app: FastifyInstance, ctx: EngineContext): void {
  app.get(
    '/',
    {
      config: { auth: 'public' },
      schema: {
        summary: 'Is the engine reachable?',
        tags: ['status'],
        security: [],
        response: { 200: { type: 'object', properties: { result: { type: 'string', enum: ['alive'] } } } },
      },
    },
    async () => ({ result: 'alive' }),
  );

  app.get(
    '/health',
    {
      schema: {
        summary: 'Component checks, queue counters and job statistics',
        description:
          'Database status, per-queue workers/working/pending (task queues plus controller, scheduler and callback), task and job counts, and the max_jobs / priority_slots settings.',
        tags: ['status'],
        response: {
          200: {
            type: 'object',
            properties: {
              status: { type: 'string', enum: ['ok', 'degraded'] },
              reasons: { type: 'array', items: { type: 'string' } },
              checks: {
                type: 'object',
                additionalProperties: { type: 'object', additionalProperties: true },
              },
              version: { type: 'string' },
              databases: { type: 'object', additionalProperties: { type: 'string' } },
              queues: { type: 'object', additionalProperties: counter },
              tasks: {
                type: 'object',
                properties: {
                  failed: { type: 'integer' },
                  pending: { type: 'integer' },
                  processed: { type: 'integer' },
                },
              },
              jobs: {
                type: 'object',
                properties: Object.fromEntries(
                  [
                    'completed',
                    'failed',
                    'pending',
                    'broken',
                    'queued',
                    'started',
                    'scheduled',
                    'paused',
                    'superseded',
                    'superseded_failed',
                    'max_jobs',
                    'priority_slots',
                  ].map((k) => [k, { type: 'integer' }]),
                ),
              },
            },
          },
          ...authErrors,
          500: errorSchema,
        },
      },
    },
    async (request) => getHealth(ctx, viewerOf(request)),
  );

  app.get(
    '/dashboard',
    {
      ...describeOnly,
      schema: {
        summary: 'Started, queued, scheduled, paused and pending jobs, with the slot settings',
        description:
          'Jobs in admission order, without parameters. Admins may narrow to one client with `client`.',
        tags: ['status'],
        querystring: {
          type: 'object',
          properties: { client: { type: 'string', description: 'admins only: one client' } },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              max_jobs: { type: 'integer' },
              priority_slots: { type: 'integer' },
              started: { type: 'array', items: dashboardJobSchema },
              queued: { type: 'array', items: dashboardJobSchema },
              scheduled: { type: 'array', items: dashboardJobSchema },
              paused: {
                type: 'array',
                items: dashboardJobSchema,
                description: 'paused jobs, by id (beside the original keys)',
              },
              pending: {
                type: 'array',
                items: dashboardJobSchema,
                description: 'jobs waiting for their semaphore_url, by id (beside the original keys)',
              },
              version: { type: 'string' },
            },
          },
          400: errorSchema,
          ...authErrors,
        },
      },
    },
    async (request) => getDashboard(ctx, viewerOf(request), request.query as Record<string, unknown>),
  );
}
