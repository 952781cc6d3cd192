/** `GET /logs/<job id>` (seed "Log Endpoints", SPEC section 10). */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import { EngineError } from '../../errors/catalogue.js';
import { getJobLogPage, isLogPageQuery, MAX_LOG_PAGE } from '../../engine/jobs/log-page.js';
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
        description: `Entries with visible=false (DEBUG) appear only with show_all=1. With offset, limit or severity, one page (at most ${MAX_LOG_PAGE} entries) and the number of entries the filter selects in the x-total-count header.`,
        tags: ['logs'],
        params: jobIdParams,
        querystring: {
          type: 'object',
          properties: {
            show_all: { type: 'string', enum: ['1', '0', 'true', 'false'] },
            offset: { type: 'string', description: 'page: entries to skip (0-based), default 0' },
            limit: { type: 'string', description: `page: entries to return, 1 to ${MAX_LOG_PAGE}` },
            severity: { type: 'string', description: 'page: lowest severity, 0-4 or DEBUG … FATAL' },
          },
        },
        response: {
          200: { type: 'array', items: logSchema },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
        },
      },
    },
    async (request, reply) => {
      const query = request.query as Record<string, unknown>;
      const id = (request.params as { id: string }).id;
      const showAll = parseShowAll(query.show_all);
      if (!isLogPageQuery(query)) return getJobLogs(ctx, viewerOf(request), id, { showAll });
      const page = await getJobLogPage(ctx, viewerOf(request), id, { ...query, showAll });
      void reply.header('x-total-count', String(page.total));
      return page.entries;
    },
  );
}
