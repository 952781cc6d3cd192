/**
 * The one place where errors become HTTP responses (ARCHITECTURE "Errors"). Every reply is JSON:
 * `{"error": "<what was wrong and what is accepted>"}`, plus `"id"` when a job id is known.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { EngineError } from '../../errors/catalogue.js';
import { isStoreConnectionError } from '../../store/connection-errors.js';

/** Largest accepted request body, in bytes (SPEC section 4: 1 MiB). */
export const BODY_LIMIT_BYTES = 1024 * 1024;

/** Body of every error reply. */
export interface ErrorBody {
  error: string;
  /** The job concerned, when one is known. */
  id?: number;
  /** Present on 500 replies only: the request id to look up in the process log. */
  request_id?: string;
}

/** One Ajv error as Fastify attaches it to a validation error. */
interface ValidationItem {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/**
 * Words a Fastify schema-validation error for a person: where, what is wrong, and what is
 * accepted (allowed values, pattern, type).
 */
export function describeValidationError(err: FastifyError): string {
  const context = err.validationContext ?? 'request';
  const items = (err.validation ?? []) as ValidationItem[];
  if (items.length === 0) return `invalid ${context}: ${err.message}`;
  const parts = items.map((v) => {
    const where = `${context}${v.instancePath ?? ''}`.replace(/\//g, '.');
    const params = v.params ?? {};
    switch (v.keyword) {
      case 'enum':
        return `${where} must be one of ${(params.allowedValues as unknown[]).map((x) => JSON.stringify(x)).join(', ')}`;
      case 'required':
        return `${where} must have the field "${String(params.missingProperty)}"`;
      case 'additionalProperties':
        return `${where} has the unknown field "${String(params.additionalProperty)}"`;
      case 'pattern':
        return `${where} must match ${String(params.pattern)}`;
      case undefined:
      default:
        return `${where} ${v.message ?? 'is not accepted'}`;
    }
  });
  return `invalid ${context}: ${parts.join('; ')}`;
}

/** The refusal of a body that holds a `__proto__` or `constructor.prototype` key. */
export const PROTOTYPE_KEY_MESSAGE =
  'the body holds a "__proto__" or "constructor.prototype" key, which is not accepted; rename that field';

/** Maps Fastify's own client errors (body parsing, content type, size) to clear messages. */
function describeFastifyClientError(err: FastifyError, request: FastifyRequest): string {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': {
      const limit = request.routeOptions.bodyLimit;
      return `request body is larger than ${limit} bytes (${limit / (1024 * 1024)} MiB); send a smaller body${limit === BODY_LIMIT_BYTES ? '' : ` (${request.method} ${request.routeOptions.url ?? ''} accepts up to ${limit} bytes)`}`;
    }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': {
      const type = request.headers['content-type'];
      return type
        ? `Content-Type ${JSON.stringify(type)} is not accepted; send the body as application/json`
        : 'a request body needs the header Content-Type: application/json';
    }
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'the body is empty; send a JSON object with Content-Type: application/json';
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return 'Content-Length does not match the body that was sent';
    default:
      if (/prototype property/i.test(err.message)) return PROTOTYPE_KEY_MESSAGE;
      if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY')
        return `the body is not valid JSON (${err.message}); send a JSON object with Content-Type: application/json`;
      return err.message;
  }
}

/**
 * Fastify's `frameworkErrors` option: the router's own refusals (a path that is not valid
 * percent-encoding, a path segment over the router's length limit) answered in the engine's error
 * shape instead of Fastify's `{"error": "Bad Request", "code", "message", "statusCode"}`.
 */
export function answerFrameworkError(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const path = (request.url.split('?')[0] ?? '').slice(0, 200);
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    void reply
      .code(414)
      .type('application/json')
      .send({
        error: `a segment of the path ${path} is longer than ${MAX_PATH_SEGMENT} characters; job ids, client and schedule names are shorter`,
      });
    return;
  }
  if (err.code === 'FST_ERR_BAD_URL') {
    void reply
      .code(400)
      .type('application/json')
      .send({
        error: `the path ${path} is not valid percent-encoding (a "%" must start an escape of UTF-8 bytes such as %C3%A9); encode path segments with encodeURIComponent`,
      });
    return;
  }
  request.log.error({ err, request_id: request.id }, 'unhandled router error');
  void reply.code(500).type('application/json').send({ error: 'internal error', request_id: request.id });
}

/** Longest path segment the router accepts (Fastify's `maxParamLength`, default 100). */
export const MAX_PATH_SEGMENT = 100;

/** Installs the error handler and the JSON 404 handler on `app`. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof EngineError) {
      const body: ErrorBody = { error: err.message };
      if (err.jobId !== undefined) body.id = err.jobId;
      if (err.status >= 500) {
        request.log.error({ err, request_id: request.id }, 'engine error');
        body.request_id = request.id;
      } else request.log.info({ code: err.code, status: err.status, reason: err.message }, 'request refused');
      return reply.code(err.status).type('application/json').send(body);
    }
    if (err.validation) {
      return reply
        .code(400)
        .type('application/json')
        .send({ error: describeValidationError(err) });
    }
    const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
    if (status >= 400 && status < 500) {
      return reply
        .code(status)
        .type('application/json')
        .send({ error: describeFastifyClientError(err, request) });
    }
    if (isStoreConnectionError(err)) {
      request.log.error({ err, request_id: request.id }, 'database unavailable');
      return reply.code(503).type('application/json').send({
        error: 'the database cannot be reached; try again shortly',
        request_id: request.id,
      });
    }
    // A real fault: log everything, answer nothing of the internals.
    request.log.error({ err, request_id: request.id }, 'unhandled error');
    return reply.code(500).type('application/json').send({ error: 'internal error', request_id: request.id });
  });

  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .type('application/json')
      .send({
        error: `no route ${request.method} ${(request.url.split('?')[0] ?? '').slice(0, 200)}; GET /openapi.json lists every route`,
      }),
  );
}
