/**
 * A client's object storage (admin-only; docs/storage.md): `PUT /clients/<name>/storage/s3`,
 * `PUT /clients/<name>/storage/azure_blob`, `GET /clients/<name>/storage`,
 * `DELETE /clients/<name>/storage/<kind>`. Credentials go in, never out: replies and log lines
 * carry the settings only.
 */
import type { FastifyInstance } from 'fastify';
import { listClients } from '../../engine/clients/clients.js';
import type { EngineContext } from '../../engine/context.js';
import { EngineError } from '../../errors/catalogue.js';
import {
  putClientStorage,
  removeClientStorage,
  REMOTE_KINDS,
  showClientStorage,
} from '../../storage/client-storage.js';
import { authErrors, errorSchema } from '../schemas.js';

const settingsSchema = { type: 'object', additionalProperties: true } as const;

async function assertClient(ctx: EngineContext, name: string): Promise<void> {
  const found = (await listClients(ctx.db)).find((c) => c.name === name && !c.revoked_at);
  if (!found) throw new EngineError('NOT_FOUND', `no active client named ${JSON.stringify(name)}`);
}

/** Registers the client storage routes. */
export function registerClientStorageRoutes(app: FastifyInstance, ctx: EngineContext): void {
  const params = {
    type: 'object',
    properties: { name: { type: 'string' }, kind: { type: 'string', enum: [...REMOTE_KINDS] } },
  } as const;
  app.put(
    '/clients/:name/storage/:kind',
    {
      config: { auth: 'admin' },
      schema: {
        summary: "Configure a client's s3 or azure_blob storage (admin); credentials are never shown again",
        description:
          's3: {"endpoint", "region", "bucket", "prefix"?, "access_key_id", "secret_access_key", "force_path_style"?}. ' +
          'azure_blob: {"connection_string"} or {"account_name", "account_key", "endpoint"?}, plus "container" and "prefix"?. ' +
          'The endpoint must pass the egress rules (TASK_ENGINE_EGRESS).',
        tags: ['clients'],
        params,
        response: {
          200: {
            type: 'object',
            properties: { result: { type: 'string' }, kind: { type: 'string' }, settings: settingsSchema },
          },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
        },
      },
    },
    async (request) => {
      const { name, kind } = request.params as { name: string; kind: string };
      await assertClient(ctx, name);
      const saved = await putClientStorage(ctx.db, ctx.egress, name, kind, request.body, ctx.clock.now());
      request.log.info({ client: name, kind }, 'client storage configured');
      return { result: 'ok', ...saved };
    },
  );
  app.get(
    '/clients/:name/storage',
    {
      config: { auth: 'admin' },
      schema: {
        summary: "A client's configured object storage, without credentials (admin)",
        tags: ['clients'],
        params: { type: 'object', properties: { name: { type: 'string' } } },
        response: {
          200: {
            type: 'object',
            properties: {
              client: { type: 'string' },
              storage: {
                type: 'object',
                properties: { s3: settingsSchema, azure_blob: settingsSchema },
              },
            },
          },
          ...authErrors,
          404: errorSchema,
        },
      },
    },
    async (request) => {
      const { name } = request.params as { name: string };
      await assertClient(ctx, name);
      return { client: name, storage: await showClientStorage(ctx.db, name) };
    },
  );
  app.delete(
    '/clients/:name/storage/:kind',
    {
      config: { auth: 'admin' },
      schema: {
        summary: "Remove a client's s3 or azure_blob storage (admin)",
        tags: ['clients'],
        params,
        response: {
          200: { type: 'object', properties: { result: { type: 'string' }, kind: { type: 'string' } } },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
        },
      },
    },
    async (request) => {
      const { name, kind } = request.params as { name: string; kind: string };
      await assertClient(ctx, name);
      if (!(await removeClientStorage(ctx.db, name, kind)))
        throw new EngineError('NOT_FOUND', `client ${name} has no ${kind} storage configured`);
      request.log.info({ client: name, kind }, 'client storage removed');
      return { result: 'ok', kind };
    },
  );
}
