/** `GET /logs/<job id>` (seed "Log Endpoints", SPEC section 10). */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import { EngineError } from '../../errors/catalogue.js';
import { getJobLogs } from '../../engine/jobs/service.js';
import { viewerOf } from '../plugins/auth.js';
import { authErrors, describeOnly, errorSchema, jobIdParams, logSchema } from '../schemas.js';

/**
 * Reads the `show_all` flag: `1`/`true` shows DEBUG entries too; `0`/`false`/absent does not.
 * @throws {EngineError} `VALIDATION_FAILED` for any other value.
 */
export function parseShowAll(value: unknown): boolean {
  if (value === undefined) return false;
  if (value === '1' || value === 'true') return true;
  if (value === '0' || value === 'false') return false;
  throw new EngineError(
    'VALIDATION_FAILED',
    `show_all accepts 1 (or true) and 0 (or false); got ${JSON.stringify(value)}`,
  );
}

/** Registers the log route. */
export function registerLogRoutes(app: FastifyInstance, ctx: EngineContext): void {
  app.get(
    '/logs/:id',
    {
      ...describeOnly,
      schema: {
        summary: "A job's log entries, in order",
        description: 'Entries with visible=false (DEBUG) appear only with show_all=1.',
        tags: ['logs'],
        params: jobIdParams,
        querystring: {
          type: 'object',
          properties: { show_all: { type: 'string', enum: ['1', '0', 'true', 'false'] } },
        },
        response: {
          200: { type: 'array', items: logSchema },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
        },
      },
    },
    async (request) =>
      getJobLogs(ctx, viewerOf(request), (request.params as { id: string }).id, {
        showAll: parseShowAll((request.query as Record<string, unknown>).show_all),
      }),
  );
}
