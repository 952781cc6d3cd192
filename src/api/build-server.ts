/**
 * The HTTP API (seed `task-engine-api.txt`, SPEC section 4) as a Fastify instance. It never
 * listens: `startTaskEngine` (src/server.ts) does, and tests call `app.inject()`.
 *
 * Every reply is JSON, except the `text/event-stream` of `GET /events`. Bodies must be `application/json` (415 otherwise), valid JSON (400) without
 * a repeated key or an integer beyond 2^53 - 1 (400), and at most 1 MiB (413). Every route but `GET /`, the probes (`/livez`, `/readyz`) and the API description needs credentials
 * (`GET /metrics` checks its own: an admin client or the metrics token).
 */
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { EngineContext } from '../engine/context.js';
import { EngineError } from '../errors/catalogue.js';
import { registerAuth } from './plugins/auth.js';
import {
  answerFrameworkError,
  BODY_LIMIT_BYTES,
  MAX_PATH_SEGMENT,
  PROTOTYPE_KEY_MESSAGE,
  registerErrorHandling,
} from './plugins/errors.js';
import { answerClientError, jsonTextError, registerInputGuard, scanJsonText } from './plugins/input-guard.js';
import { registerClientStorageRoutes } from './routes/client-storage.js';
import { registerClientRoutes } from './routes/clients.js';
import { registerEventRoutes } from './routes/events.js';
import { registerConsoleRoutes } from './routes/console.js';
import { registerJobHistoryRoutes } from './routes/job-history.js';
import { registerJobRoutes } from './routes/jobs.js';
import { registerJobBatchRoute } from './routes/jobs-batch.js';
import { registerLogRoutes } from './routes/logs.js';
import { registerMetricsRoutes } from './routes/metrics.js';
import { registerProbeRoutes } from './routes/probes.js';
import { registerScheduleRoutes } from './routes/schedules.js';
import { registerSettingsRoutes } from './routes/settings.js';
import { registerStatsRoutes } from './routes/stats.js';
import { registerStatusRoutes } from './routes/status.js';
import { registerWorkflowRoutes } from './routes/workflows.js';

/** Decodes request bodies, throwing on bytes that are not UTF-8. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Whether `text` is JSON that `JSON.parse` reads. */
function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Builds the API server over an engine context. Routes are ready once the returned instance's
 * `ready()` (or the first `inject()`) resolves.
 * @param ctx - the engine context (its `logger` becomes Fastify's logger, its `db` authenticates).
 *
 * (About 120 lines: the flat, ordered list of the server's parsers, hooks, plugins and routes; the
 * order matters and is easiest to check in one place.)
 */
export function buildServer(ctx: EngineContext): FastifyInstance {
  const app: FastifyInstance = Fastify({
    // pino's Logger is Fastify's logger; the cast bridges the two packages' copies of the type.
    loggerInstance: ctx.logger as unknown as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT_BYTES,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    ajv: { customOptions: { allErrors: true } },
    clientErrorHandler: answerClientError,
    routerOptions: { maxParamLength: MAX_PATH_SEGMENT },
    frameworkErrors: answerFrameworkError,
    // Fastify's two lines per request are replaced by one (below).
    logController: new LogController({ disableRequestLogging: true }),
  });
  // One line per request at info: method, route (the pattern, so no id or query value is written),
  // status, time in ms and the calling client's name. Headers, keys and bodies are never logged.
  // A callback hook: the line is written synchronously, so no promise per request.
  app.addHook('onResponse', (request, reply, done) => {
    const client = request.headers.client;
    request.log.info(
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        ...(typeof client === 'string' && client.length <= 64 ? { client } : {}),
      },
      'request',
    );
    done();
  });

  // Bodies: JSON only. Dropping the default text/plain parser makes every other type a 415.
  app.removeAllContentTypeParsers();
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    // Bytes that are not UTF-8 are refused, not replaced by U+FFFD (which would store something
    // other than what was sent).
    let text: string;
    try {
      text = STRICT_UTF8.decode(body as Buffer);
    } catch {
      done(
        new EngineError(
          'INVALID_JSON',
          'the body is not valid UTF-8; send JSON encoded as UTF-8 (RFC 8259 section 8.1)',
        ),
      );
      return;
    }
    // An empty body with a JSON content type is "no body" (e.g. POST /jobs/<id>/rerun from curl).
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    void parseJson(request, text, (err, value) => {
      if (err) {
        // Fastify's parser reports a forbidden "__proto__" / "constructor.prototype" key as
        // "not valid JSON" and drops the reason; text that JSON.parse reads was refused for that key.
        done(isJson(text) ? new EngineError('INVALID_JSON', PROTOTYPE_KEY_MESSAGE) : err);
        return;
      }
      // After JSON.parse accepted the text: refuse what it would silently change (a repeated
      // key, an integer literal beyond 2^53 - 1).
      const problem = scanJsonText(text);
      if (problem) done(jsonTextError(problem));
      else done(null, value);
    });
  });

  // Response schemas document the replies; they must never drop or reshape a field.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  registerErrorHandling(app);
  registerAuth(app, ctx.db, ctx.clock);
  registerInputGuard(app);

  void app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Task Engine API',
        version: ctx.version,
        description:
          'Submit jobs that run workflows (graphs of tasks) on queues served by workers. Every reply is JSON; errors are {"error": "…"} plus "id" where a job id is known.',
      },
      components: {
        securitySchemes: {
          client: { type: 'apiKey', in: 'header', name: 'client', description: 'client name' },
          apiKey: {
            type: 'apiKey',
            in: 'header',
            name: 'api-key',
            description: 'API key (x-api-key also accepted)',
          },
        },
      },
      security: [{ client: [], apiKey: [] }],
      tags: [
        { name: 'status' },
        { name: 'jobs' },
        { name: 'logs' },
        { name: 'scheduler' },
        { name: 'settings' },
        { name: 'workflows' },
        { name: 'clients' },
        { name: 'events' },
      ],
    },
  });

  // The API description is public (a browser cannot send the credential headers to load it).
  void app.register(async (docs) => {
    docs.addHook('onRoute', (route) => {
      route.config = { ...(route.config ?? {}), auth: 'public' };
    });
    await docs.register(swaggerUi, { routePrefix: '/docs' });
    docs.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  });

  void app.register(async (api) => {
    registerStatusRoutes(api, ctx);
    registerJobRoutes(api, ctx);
    registerJobBatchRoute(api, ctx);
    registerJobHistoryRoutes(api, ctx);
    registerLogRoutes(api, ctx);
    registerScheduleRoutes(api, ctx);
    registerSettingsRoutes(api, ctx);
    registerWorkflowRoutes(api, ctx);
    registerClientRoutes(api, ctx);
    registerClientStorageRoutes(api, ctx);
    registerEventRoutes(api, ctx);
    registerStatsRoutes(api, ctx);
    registerMetricsRoutes(api, ctx);
    registerProbeRoutes(api, ctx);
  });

  // The operator console's files (public: the page holds no data; its requests carry credentials).
  registerConsoleRoutes(app);

  return app;
}
