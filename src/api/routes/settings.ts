/** `POST /settings` (admin) and `GET /settings` (seed "Settings Endpoints", SPEC section 9), with per-client values. */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import {
  CLIENT_SETTING_NAMES,
  deleteClientSetting,
  getSettings,
  postSetting,
} from '../../engine/settings.js';
import { viewerOf } from '../plugins/auth.js';
import { authErrors, describeOnly, errorSchema } from '../schemas.js';

/** Registers the settings routes. */
export function registerSettingsRoutes(app: FastifyInstance, ctx: EngineContext): void {
  app.post(
    '/settings',
    {
      ...describeOnly,
      // The body's `client` names the client the value is for, not the caller (an admin).
      config: { auth: 'admin', bodyClientIsTarget: true },
      schema: {
        summary: 'Create or update one setting, globally or for one client (admin)',
        description: `Known names take whole numbers (numeric strings accepted): max_jobs >= 1, priority_slots <= max_jobs, priority_threshold >= 1, weight >= 1, and the other known settings their own bounds. Unknown names are stored as given ("created" the first time, so a mistyped name shows). With "client", the value is that client's own (${CLIENT_SETTING_NAMES.join(', ')}). A change takes effect at once.`,
        tags: ['settings'],
        body: {
          type: 'object',
          required: ['name', 'setting'],
          properties: {
            name: {
              type: 'string',
              description: 'e.g. max_jobs, priority_slots, priority_threshold, weight',
            },
            setting: { type: ['integer', 'string'], description: 'the value, e.g. 4 or "4"' },
            client: { type: 'string', description: 'optional: the client the value is for' },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              result: { type: 'string', enum: ['ok'] },
              message: { type: 'string', description: '<name> setting created/updated' },
              client: { type: 'string', description: 'the client the value was set for, when given' },
            },
          },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
        },
      },
    },
    async (request) => postSetting(ctx, request.body),
  );

  app.get(
    '/settings',
    {
      schema: {
        summary: 'Every setting, known ones with their current or default values; or one client’s',
        description:
          'With ?client=<name>: each per-client setting with the value in effect for that client and its source (client or global). A non-admin may ask for itself only.',
        tags: ['settings'],
        querystring: {
          type: 'object',
          properties: { client: { type: 'string', description: 'one client: its per-client settings' } },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              result: { type: 'string', enum: ['ok'] },
              client: { type: 'string' },
              settings: {
                type: 'object',
                additionalProperties: true,
                description: 'by name: a value; with ?client=, {value, source}',
              },
            },
          },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
        },
      },
    },
    async (request) => getSettings(ctx, viewerOf(request), request.query as Record<string, unknown>),
  );

  app.delete(
    '/settings/:name',
    {
      ...describeOnly,
      config: { auth: 'admin' },
      schema: {
        summary: "Remove a client's own value of a setting; the global value applies again (admin)",
        tags: ['settings'],
        params: { type: 'object', properties: { name: { type: 'string' } } },
        querystring: {
          type: 'object',
          required: ['client'],
          properties: { client: { type: 'string', description: 'the client whose own value is removed' } },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              result: { type: 'string', enum: ['ok'] },
              message: { type: 'string' },
              client: { type: 'string' },
            },
          },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
        },
      },
    },
    async (request) =>
      deleteClientSetting(
        ctx,
        (request.params as { name: string }).name,
        request.query as Record<string, unknown>,
      ),
  );
}
