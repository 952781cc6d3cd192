/**
 * `POST /jobs/batch`: many `POST /job` bodies in one request, each answered on its own (the job
 * service's {@link submitJobBatch} does the work; docs/api.md, "Bulk submission").
 */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import { MAX_BATCH_JOBS, submitJobBatch } from '../../engine/jobs/batch.js';
import { EngineError } from '../../errors/catalogue.js';
import { bodyClientError, viewerOf } from '../plugins/auth.js';
import { BODY_LIMIT_BYTES } from '../plugins/errors.js';
import { authErrors, describeOnly, errorSchema } from '../schemas.js';
import { submitBody } from './jobs.js';

/** Largest `POST /jobs/batch` body, in bytes (16 MiB); each item stays within `POST /job`'s 1 MiB. */
export const BATCH_BODY_LIMIT_BYTES = 16 * 1024 * 1024;

const itemResult = {
  type: 'object',
  required: ['index'],
  properties: {
    index: { type: 'integer', description: "the item's position in the request, from 0" },
    id: {
      type: 'integer',
      description: 'accepted: the job id POST /job would answer; refused with 409: the job holding the key',
    },
    result: { type: 'string', enum: ['accepted'], description: 'present when the item was accepted' },
    status: {
      type: 'integer',
      description: 'present when refused: the HTTP status POST /job would answer for this body',
    },
    error: { type: 'string', description: 'present when refused: the error POST /job would answer' },
  },
} as const;

/** Registers `POST /jobs/batch`. */
export function registerJobBatchRoute(app: FastifyInstance, ctx: EngineContext): void {
  app.post(
    '/jobs/batch',
    {
      ...describeOnly,
      bodyLimit: BATCH_BODY_LIMIT_BYTES,
      schema: {
        summary: `Submit up to ${MAX_BATCH_JOBS} jobs in one request`,
        description:
          `The body is a JSON array of 1 to ${MAX_BATCH_JOBS} items, each exactly a POST /job body, validated on its own with the same rules and errors. ` +
          'The reply (200) lists every item in order: `{"index", "id", "result": "accepted"}` or `{"index", "status", "error"}` (plus `"id"` for an idempotency conflict) — the JSON error POST /job would give for that body. ' +
          'The accepted items are written together (one statement, one commit); nothing of a refused item is written, and a refused item never stops the others. ' +
          `Idempotency keys act per item, as in POST /job. The body may be up to ${BATCH_BODY_LIMIT_BYTES} bytes (16 MiB), each item up to ${BODY_LIMIT_BYTES} bytes (1 MiB) as compact JSON.`,
        tags: ['jobs'],
        body: { type: 'array', minItems: 1, maxItems: MAX_BATCH_JOBS, items: submitBody },
        response: {
          200: {
            type: 'object',
            properties: {
              accepted: { type: 'integer', description: 'items accepted' },
              refused: { type: 'integer', description: 'items refused' },
              results: { type: 'array', items: itemResult },
            },
          },
          400: { description: 'not an array of 1 to 1000 items, or not valid JSON', ...errorSchema },
          ...authErrors,
          413: { description: 'the body is over 16 MiB', ...errorSchema },
          415: errorSchema,
        },
      },
    },
    async (request) => {
      const viewer = viewerOf(request);
      // A request over 1 MiB may hold an item that POST /job would refuse for its size.
      const large = Number(request.headers['content-length'] ?? BATCH_BODY_LIMIT_BYTES) > BODY_LIMIT_BYTES;
      const results = await submitJobBatch(
        ctx,
        viewer,
        request.body,
        { path: `${request.method} ${request.url}`, remoteAddr: request.ip, headers: request.headers },
        {
          checkItem: (item, index) =>
            bodyClientError(item, viewer) ??
            (large && Buffer.byteLength(JSON.stringify(item) ?? '') > BODY_LIMIT_BYTES
              ? new EngineError(
                  'PAYLOAD_TOO_LARGE',
                  `item ${index} is larger than ${BODY_LIMIT_BYTES} bytes (1 MiB) as JSON, the most POST /job accepts; send a smaller submission`,
                )
              : null),
        },
      );
      const accepted = results.filter((r) => 'result' in r).length;
      return { accepted, refused: results.length - accepted, results };
    },
  );
}
