/**
 * Client management for admins (SPEC section 4): `POST /clients`, `GET /clients`,
 * `DELETE /clients/<name>`, and the rotation of a client's callback signing secret:
 * `POST /clients/<name>/signing-secret`, `DELETE /clients/<name>/signing-secret/previous`.
 * Keys and signing secrets are shown once, in the reply that creates them.
 */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import {
  CLIENT_NAME_RULE,
  createClient,
  endSigningSecretOverlap,
  listClients,
  revokeClient,
  rotateSigningSecret,
} from '../../engine/clients/clients.js';
import { describe } from '../../engine/jobs/time.js';
import { EngineError } from '../../errors/catalogue.js';
import { authErrors, errorSchema, strictValidator } from '../schemas.js';

const clientSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    admin: { type: 'boolean' },
    api_key_last4: { type: 'string', description: 'last 4 characters of the key, to tell keys apart' },
    created_at: { type: 'string', format: 'date-time' },
    updated_at: { type: 'string', format: 'date-time' },
    revoked_at: { type: ['string', 'null'], format: 'date-time' },
  },
} as const;

/** Registers the client routes (all admin-only). */
export function registerClientRoutes(app: FastifyInstance, ctx: EngineContext): void {
  app.post(
    '/clients',
    {
      config: { auth: 'admin' },
      schema: {
        summary: 'Add a client (admin); its key and signing secret are shown once',
        description: `Name: ${CLIENT_NAME_RULE}. A revoked name may be added again and gets new secrets.`,
        tags: ['clients'],
        body: {
          type: 'object',
          required: ['name'],
          properties: {
            name: { type: 'string', description: CLIENT_NAME_RULE },
            admin: { type: 'boolean', default: false },
          },
        },
        response: {
          201: {
            type: 'object',
            properties: {
              name: { type: 'string' },
              admin: { type: 'boolean' },
              api_key: { type: 'string', description: 'send as the api-key header; shown only here' },
              signing_secret: {
                type: 'string',
                description: 'verifies the webhook-signature header of callbacks',
              },
            },
          },
          400: errorSchema,
          ...authErrors,
          409: errorSchema,
        },
      },
    },
    async (request, reply) => {
      const body = request.body as { name: string; admin?: boolean };
      const created = await createClient(ctx.db, { name: body.name, admin: body.admin === true }, ctx.clock);
      request.log.info({ client: created.name, admin: created.admin }, 'client added');
      return reply.code(201).send(created);
    },
  );

  registerSigningSecretRoutes(app, ctx);

  app.get(
    '/clients',
    {
      config: { auth: 'admin' },
      schema: {
        summary: 'Every client, without secrets (admin)',
        tags: ['clients'],
        response: { 200: { type: 'array', items: clientSchema }, ...authErrors },
      },
    },
    async () => listClients(ctx.db),
  );

  app.delete(
    '/clients/:name',
    {
      config: { auth: 'admin' },
      schema: {
        summary: 'Revoke a client (admin); its key stops working at once, its jobs stay',
        description:
          'Revoking a revoked client changes nothing. The last active admin client cannot be revoked (409).',
        tags: ['clients'],
        params: { type: 'object', properties: { name: { type: 'string' } } },
        response: {
          200: {
            type: 'object',
            properties: { result: { type: 'string', enum: ['ok'] }, client: clientSchema },
          },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
          409: errorSchema,
        },
      },
    },
    async (request) => {
      const revoked = await revokeClient(ctx.db, (request.params as { name: string }).name, ctx.clock);
      request.log.info({ client: revoked.name }, 'client revoked');
      return { result: 'ok', client: revoked };
    },
  );
}

/** The signing-secret rotation routes of a client (admin-only): rotate, and end the overlap. */
function registerSigningSecretRoutes(app: FastifyInstance, ctx: EngineContext): void {
  app.post(
    '/clients/:name/signing-secret',
    {
      config: { auth: 'admin' },
      validatorCompiler: strictValidator,
      schema: {
        summary: "Rotate a client's callback signing secret (admin); the new secret is shown once",
        description:
          'The new secret becomes current. With keep_previous (default true) the old one stays valid: callbacks carry a webhook-signature entry for each until DELETE /clients/<name>/signing-secret/previous or the next rotation.',
        tags: ['clients'],
        params: { type: 'object', properties: { name: { type: 'string' } } },
        // No `type`: the body may be left out altogether (an array or other non-object is refused
        // in the handler). An unknown field is refused: a misspelt `keep_previous: false` must not
        // leave a leaked secret valid.
        body: {
          properties: { keep_previous: { type: 'boolean', description: 'default true' } },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              name: { type: 'string' },
              signing_secret: { type: 'string', description: 'the new secret; shown only here' },
              previous_valid: { type: 'boolean', description: 'whether the old secret still signs' },
            },
          },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
        },
      },
    },
    async (request) => {
      const { name } = request.params as { name: string };
      const raw: unknown = request.body ?? {};
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
        throw new EngineError(
          'VALIDATION_FAILED',
          `the body of POST /clients/<name>/signing-secret must be empty or a JSON object like {"keep_previous": false}; got ${describe(raw)}`,
        );
      const body = raw as { keep_previous?: boolean };
      const rotated = await rotateSigningSecret(
        ctx.db,
        name,
        { keepPrevious: body.keep_previous },
        ctx.clock,
      );
      request.log.info({ client: name, previous_valid: rotated.previous_valid }, 'signing secret rotated');
      return rotated;
    },
  );

  app.delete(
    '/clients/:name/signing-secret/previous',
    {
      config: { auth: 'admin' },
      schema: {
        summary: "End a rotation: the client's previous signing secret stops signing callbacks (admin)",
        tags: ['clients'],
        params: { type: 'object', properties: { name: { type: 'string' } } },
        response: {
          200: {
            type: 'object',
            properties: {
              result: { type: 'string', enum: ['ok'] },
              dropped: { type: 'boolean', description: 'false when no previous secret was valid' },
            },
          },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
        },
      },
    },
    async (request) => {
      const { name } = request.params as { name: string };
      const dropped = await endSigningSecretOverlap(ctx.db, name, ctx.clock);
      request.log.info({ client: name, dropped }, 'previous signing secret dropped');
      return { result: 'ok', dropped };
    },
  );
}
