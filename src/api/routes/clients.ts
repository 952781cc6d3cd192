/**
 * Client management for admins (SPEC section 4): `POST /clients`, `GET /clients`,
 * `DELETE /clients/<name>`. Keys and signing secrets are shown once, in the reply to POST.
 */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import { CLIENT_NAME_RULE, createClient, listClients, revokeClient } from '../../engine/clients/clients.js';
import { authErrors, errorSchema } from '../schemas.js';

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
                description: 'verifies X-Task-Engine-Signature on callbacks',
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
