/**
 * Read-only summaries for the operator console (docs/console.md): `GET /stats` (jobs ended per
 * minute) and `GET /stats/job-count` (the total of a `/jobs` filter, for paging). Scoped to the
 * caller's client like `/jobs`.
 */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import {
  countListedJobs,
  DEFAULT_STATS_MINUTES,
  getStats,
  JOB_COUNT_CAP,
  MAX_STATS_MINUTES,
} from '../../engine/status/stats.js';
import { viewerOf } from '../plugins/auth.js';
import { authErrors, describeOnly, errorSchema } from '../schemas.js';

const count = { type: 'integer' } as const;

/** Registers the console's summary routes. */
export function registerStatsRoutes(app: FastifyInstance, ctx: EngineContext): void {
  app.get(
    '/stats',
    {
      ...describeOnly,
      schema: {
        summary: 'Jobs that ended per minute, recently',
        description: `Completed, failed and broken jobs per minute over the last \`minutes\` (default ${DEFAULT_STATS_MINUTES}, at most ${MAX_STATS_MINUTES}), oldest first. A non-admin sees its own jobs; admins every client's, or one with \`client\`.`,
        tags: ['status'],
        querystring: {
          type: 'object',
          properties: {
            minutes: { type: 'string', description: `1 to ${MAX_STATS_MINUTES}` },
            client: { type: 'string', description: 'admins only: one client' },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              now: { type: 'string', format: 'date-time' },
              minutes: count,
              bucket_seconds: count,
              client: { type: ['string', 'null'] },
              buckets: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    at: { type: 'string', format: 'date-time', description: 'start of the minute' },
                    completed: count,
                    failed: count,
                    broken: count,
                  },
                },
              },
              totals: {
                type: 'object',
                properties: { completed: count, failed: count, broken: count },
              },
            },
          },
          400: errorSchema,
          ...authErrors,
        },
      },
    },
    async (request) => getStats(ctx, viewerOf(request), request.query as Record<string, unknown>),
  );

  app.get(
    '/stats/job-count',
    {
      ...describeOnly,
      schema: {
        summary: 'How many jobs a /jobs filter selects',
        description: `Takes the query of GET /jobs (limit, offset, after_id, order_by and asc are ignored) and counts up to ${JOB_COUNT_CAP}; beyond that it answers ${JOB_COUNT_CAP} with capped: true.`,
        tags: ['jobs'],
        response: {
          200: {
            type: 'object',
            properties: { count, capped: { type: 'boolean', description: `more than ${JOB_COUNT_CAP}` } },
          },
          400: errorSchema,
          ...authErrors,
        },
      },
    },
    async (request) => countListedJobs(ctx, viewerOf(request), request.query as Record<string, unknown>),
  );
}
