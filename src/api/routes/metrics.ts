/**
 * `GET /metrics`: the engine's Prometheus metrics in the text exposition format
 * (docs/observability.md). Readable by an admin client (the usual credentials) or with
 * `Authorization: Bearer <TASK_ENGINE_METRICS_TOKEN>`; 401 without credentials, 403 for a client
 * that is not an admin. With `TASK_ENGINE_METRICS=off` the route answers 404 and nothing is counted.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import { authenticateClientCached } from '../../engine/clients/clients.js';
import { EngineError } from '../../errors/catalogue.js';
import { errorSchema } from '../schemas.js';

const HINT =
  'send an admin client\'s "client" and "api-key" headers (or "Authorization: Bearer <client>:<api-key>"), or "Authorization: Bearer <TASK_ENGINE_METRICS_TOKEN>"';

/** Whether `given` equals `token`, in time that does not depend on where they differ. */
function tokenMatches(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return typeof v === 'string' ? v.trim() : undefined;
}

/**
 * Checks a scrape's credentials: the metrics token, or an active admin client.
 * @throws {EngineError} `UNAUTHORIZED` (401) for missing or wrong credentials, `FORBIDDEN` (403)
 *   for a client that is not an admin.
 */
async function authorizeScrape(ctx: EngineContext, request: FastifyRequest): Promise<void> {
  const authorization = header(request, 'authorization');
  const bearer = authorization ? /^Bearer\s+(\S+)$/i.exec(authorization)?.[1] : undefined;
  const token = ctx.config.metricsToken;
  if (bearer && token && tokenMatches(bearer, token)) return;
  let client = header(request, 'client');
  let apiKey = header(request, 'api-key') ?? header(request, 'x-api-key');
  if (!client && !apiKey && bearer) {
    const m = /^([^:\s]+):(\S+)$/.exec(bearer);
    if (!m) throw new EngineError('UNAUTHORIZED', `wrong metrics token; ${HINT}`);
    client = m[1];
    apiKey = m[2];
  }
  if (!client || !apiKey) throw new EngineError('UNAUTHORIZED', `missing credentials; ${HINT}`);
  const viewer = await authenticateClientCached(ctx.db, client, apiKey, ctx.clock);
  if (!viewer)
    throw new EngineError(
      'UNAUTHORIZED',
      `wrong credentials: no active client "${client.slice(0, 64)}" with that api-key; ${HINT}`,
    );
  if (!viewer.admin)
    throw new EngineError(
      'FORBIDDEN',
      `client "${viewer.client}" is not an admin client; GET /metrics needs one`,
    );
}

/** Registers `GET /metrics`. */
export function registerMetricsRoutes(app: FastifyInstance, ctx: EngineContext): void {
  const metrics = ctx.metrics;
  app.get(
    '/metrics',
    {
      // Its own check (the metrics token is not a client's credentials).
      config: { auth: 'public' },
      schema: {
        summary: 'Prometheus metrics (text exposition format 0.0.4)',
        description:
          'Admin clients, or Authorization: Bearer <TASK_ENGINE_METRICS_TOKEN>. 404 when TASK_ENGINE_METRICS=off.',
        tags: ['status'],
        response: {
          200: { type: 'string' },
          401: errorSchema,
          403: errorSchema,
          404: errorSchema,
        },
      },
    },
    async (request, reply) => {
      if (!metrics)
        throw new EngineError(
          'NOT_FOUND',
          'metrics are off (TASK_ENGINE_METRICS=off); set it to on to serve GET /metrics',
        );
      await authorizeScrape(ctx, request);
      const text = await metrics.render();
      return reply.type(metrics.registry.contentType).send(text);
    },
  );
}
