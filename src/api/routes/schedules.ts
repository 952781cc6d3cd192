/**
 * Schedule routes (seed "Scheduler Endpoints", SPEC section 8, issue 11 part 4): `GET /schedules`,
 * `PUT /scheduler`, and user schedules `POST /schedules`, `DELETE /schedules/<name>`. The body
 * of `POST /schedules` is checked by its schema here (fields, types, allowed values, no unknown
 * field), then by the schedule service (cron expression, time zone, workflow, parameters, name).
 */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import { CATCH_UP_MODES, OVERLAP_MODES } from '../../engine/scheduler/cron-plan.js';
import {
  CRON_DEFAULTS,
  CRON_SCHEDULE_NAME_PATTERN,
  CRON_SCHEDULE_NAME_RULE,
  createCronSchedule,
  listAllSchedules,
  removeCronSchedule,
  switchAnySchedule,
  type CronScheduleInput,
} from '../../engine/scheduler/cron-schedules.js';
import { viewerOf } from '../plugins/auth.js';
import { authErrors, describeOnly, errorSchema, strictValidator } from '../schemas.js';

const timestampOrNull = { type: ['string', 'null'], format: 'date-time' };

const scheduleSchema = {
  type: 'object',
  properties: {
    class: {
      type: 'string',
      description: 'QueueJobs … for maintenance schedules, SubmitWorkflow for user schedules',
    },
    every: {
      type: 'array',
      description: 'maintenance schedules: [seconds, {"first_in": seconds}]',
      items: {},
    },
    cron: { type: 'string', description: 'user schedules: the cron expression' },
    timezone: { type: 'string', description: 'user schedules: the IANA time zone of the cron expression' },
    queue: { type: 'string' },
    description: { type: 'string' },
    active: { type: 'boolean' },
    last_run_at: timestampOrNull,
    next_run_at: timestampOrNull,
    workflow: { type: 'string', description: 'user schedules' },
    parameters: { type: 'object', description: 'user schedules' },
    priority: { type: 'integer', description: 'user schedules' },
    overlap: { type: 'string', enum: [...OVERLAP_MODES], description: 'user schedules' },
    catch_up: { type: 'string', enum: [...CATCH_UP_MODES], description: 'user schedules' },
    client: { type: 'string', description: 'user schedules: the client its jobs are submitted as' },
  },
} as const;

const createBody = {
  type: 'object',
  required: ['name', 'cron', 'workflow'],
  additionalProperties: false,
  properties: {
    name: {
      type: 'string',
      pattern: CRON_SCHEDULE_NAME_PATTERN,
      description: `${CRON_SCHEDULE_NAME_RULE}; not one of the maintenance schedules`,
    },
    cron: {
      type: 'string',
      minLength: 1,
      description:
        '5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, e.g. "30 2 * * *" or "*/10 * * * * *"',
    },
    timezone: {
      type: 'string',
      minLength: 1,
      description: `IANA time zone the cron expression is read in; default ${CRON_DEFAULTS.timezone}`,
    },
    workflow: {
      type: 'string',
      minLength: 1,
      description: 'a workflow this client may submit (GET /workflows)',
    },
    parameters: {
      type: 'object',
      description: "the job's parameters, checked against the workflow's schema",
    },
    priority: {
      type: ['integer', 'string'],
      description: 'integer 1 (most urgent) to 10; default 5; a numeric string is accepted',
    },
    overlap: {
      type: 'string',
      enum: [...OVERLAP_MODES],
      description: `skip: no run while the previous one is unfinished; allow: always; default ${CRON_DEFAULTS.overlap}`,
    },
    catch_up: {
      type: 'string',
      enum: [...CATCH_UP_MODES],
      description: `slots missed while no engine ran: none, the latest, or all; default ${CRON_DEFAULTS.catch_up}`,
    },
    description: { type: 'string', description: 'shown by GET /schedules' },
    client: { type: 'string', description: 'optional; must equal the client header' },
  },
} as const;

/** Registers the schedule routes. */
export function registerScheduleRoutes(app: FastifyInstance, ctx: EngineContext): void {
  app.get(
    '/schedules',
    {
      schema: {
        summary: 'Every schedule, with its switch and run times',
        description:
          'The four maintenance schedules, then the user schedules (an admin sees all of them, a client its own).',
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
    async (request) => listAllSchedules(ctx, viewerOf(request)),
  );

  app.post(
    '/schedules',
    {
      validatorCompiler: strictValidator,
      schema: {
        summary: 'Add a user schedule: submit a workflow on a cron expression',
        description:
          'An admin, or a client for a workflow it may submit; the jobs are submitted as the caller. Every slot submits exactly one job, whichever engine leads. Bad input is a 400 naming the field; a name in use is a 409.',
        tags: ['scheduler'],
        body: createBody,
        response: {
          201: {
            type: 'object',
            properties: {
              result: { type: 'string', enum: ['ok'] },
              name: { type: 'string' },
              schedule: scheduleSchema,
            },
          },
          400: errorSchema,
          ...authErrors,
          409: errorSchema,
        },
      },
    },
    async (request, reply) => {
      const created = await createCronSchedule(ctx, viewerOf(request), request.body as CronScheduleInput);
      request.log.info({ schedule: created.name }, 'schedule added');
      return reply.code(201).send(created);
    },
  );

  app.delete(
    '/schedules/:name',
    {
      schema: {
        summary: 'Delete a user schedule (an admin any, a client its own)',
        description:
          'Jobs it submitted stay. Maintenance schedules cannot be deleted (400); switch them off with PUT /scheduler.',
        tags: ['scheduler'],
        params: { type: 'object', properties: { name: { type: 'string' } } },
        response: {
          200: {
            type: 'object',
            properties: { result: { type: 'string', enum: ['ok'] }, deleted: { type: 'string' } },
          },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
        },
      },
    },
    async (request) => removeCronSchedule(ctx, viewerOf(request), (request.params as { name: string }).name),
  );

  app.put(
    '/scheduler',
    {
      ...describeOnly,
      config: { auth: 'admin' },
      schema: {
        summary: 'Switch one schedule on or off (admin)',
        description:
          'Maintenance and user schedules alike. The switch survives restarts. An unknown schedule name is a 400. A user schedule switched on starts from its next slot: nothing missed while it was off is caught up.',
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
    async (request) => switchAnySchedule(ctx, request.body),
  );
}
