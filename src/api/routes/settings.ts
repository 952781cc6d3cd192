/** `POST /settings` (admin) and `GET /settings` (seed "Settings Endpoints", SPEC section 9). */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import { listSettings, postSetting } from '../../engine/settings.js';
import { authErrors, describeOnly, errorSchema } from '../schemas.js';

/** Registers the settings routes. */
export function registerSettingsRoutes(app: FastifyInstance, ctx: EngineContext): void {
  app.post(
    '/settings',
    {
      ...describeOnly,
      config: { auth: 'admin' },
      schema: {
        summary: 'Create or update one setting (admin)',
        description:
          'Known names take whole numbers (numeric strings accepted): max_jobs >= 1, priority_slots <= max_jobs, priority_threshold >= 1, and the other known settings their own bounds. Unknown names are stored as given. A change takes effect at once.',
        tags: ['settings'],
        body: {
          type: 'object',
          required: ['name', 'setting'],
          properties: {
            name: { type: 'string', description: 'e.g. max_jobs, priority_slots, priority_threshold' },
            setting: { type: ['integer', 'string'], description: 'the value, e.g. 4 or "4"' },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              result: { type: 'string', enum: ['ok'] },
              message: { type: 'string', description: '<name> setting created/updated' },
            },
          },
          400: errorSchema,
          ...authErrors,
        },
      },
    },
    async (request) => postSetting(ctx, request.body),
  );

  app.get(
    '/settings',
    {
      schema: {
        summary: 'Every setting, known ones with their current or default values',
        tags: ['settings'],
        response: { ...authErrors },
      },
    },
    async () => listSettings(ctx),
  );
}
