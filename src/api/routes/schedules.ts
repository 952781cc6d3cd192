/** `GET /schedules` and `PUT /scheduler` (seed "Scheduler Endpoints", SPEC section 8). */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import { listSchedules, setSchedule } from '../../engine/scheduler/schedules.js';
import { authErrors, describeOnly, errorSchema } from '../schemas.js';

const scheduleSchema = {
  type: 'object',
  properties: {
    class: { type: 'string' },
    every: {
      type: 'array',
      description: '[seconds, {"first_in": seconds}]',
      items: {},
    },
    queue: { type: 'string' },
    description: { type: 'string' },
    active: { type: 'boolean' },
    last_run_at: { type: ['string', 'null'], format: 'date-time' },
    next_run_at: { type: ['string', 'null'], format: 'date-time' },
  },
} as const;

/** Registers the schedule routes. */
export function registerScheduleRoutes(app: FastifyInstance, ctx: EngineContext): void {
  app.get(
    '/schedules',
    {
      schema: {
        summary: 'Every schedule, with its switch and run times',
        tags: ['scheduler'],
        response: {
          200: {
            type: 'object',
            properties: {
              result: { type: 'string', enum: ['ok'] },
              schedules: { type: 'object', additionalProperties: scheduleSchema },
            },
          },
          ...authErrors,
        },
      },
    },
    async () => listSchedules(ctx),
  );

  app.put(
    '/scheduler',
    {
      ...describeOnly,
      config: { auth: 'admin' },
      schema: {
        summary: 'Switch one schedule on or off (admin)',
        description: 'The switch survives restarts. An unknown schedule name is a 400.',
        tags: ['scheduler'],
        body: {
          type: 'object',
          required: ['schedule', 'active'],
          properties: { schedule: { type: 'string' }, active: { type: 'boolean' } },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              result: { type: 'string', enum: ['ok'] },
              schedules: {
                type: 'array',
                items: { type: 'string' },
                description: 'names of the active schedules',
              },
            },
          },
          400: errorSchema,
          ...authErrors,
        },
      },
    },
    async (request) => setSchedule(ctx, request.body),
  );
}
