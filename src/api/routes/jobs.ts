/**
 * Job routes (seed "Job Endpoints", SPEC section 5): `POST /job`, `GET /jobs`, `GET /jobs/<id>`,
 * `PATCH /jobs/<id>`, `POST /jobs/<id>/rerun`, `POST /jobs/<id>/retry`. The job service validates every input and owns
 * every message; these routes hand it the request and the viewer.
 */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import { retryJob } from '../../engine/jobs/retry.js';
import { getJob, listJobs, patchJob, rerunJob, submitJob } from '../../engine/jobs/service.js';
import { viewerOf } from '../plugins/auth.js';
import {
  authErrors,
  describeOnly,
  errorSchema,
  jobIdParams,
  jobSchema,
  taskSchema,
  waitingSchema,
} from '../schemas.js';

const timestampIn =
  '`yyyy-MM-ddTHH:mm:ss.fff` is UTC even without a zone; an explicit `Z` or offset is honoured; an invalid date is a 400';

/** The body of `POST /job` (also each item of `POST /jobs/batch`). */
export const submitBody = {
  type: 'object',
  required: ['job'],
  properties: {
    client: { type: 'string', description: 'optional; must equal the client header' },
    job: {
      type: 'object',
      required: ['workflow'],
      additionalProperties: false,
      properties: {
        workflow: { type: 'string', description: 'a workflow of this client (GET /workflows)' },
        priority: {
          type: ['integer', 'string'],
          description: 'integer 1 (most urgent) to 10; default 5; a numeric string such as "2" is accepted',
        },
        run_at: { type: 'string', description: `when to run; default now. ${timestampIn}` },
        semaphore_url: {
          type: 'string',
          description: 'URL that must answer 2xx/3xx (GET) before the job is queued',
        },
        persist: { type: 'boolean', description: 'keep the job and its logs out of the clean-up' },
        top_of_queue: { type: 'boolean', description: 'admit before every other queued job' },
        idempotency_key: {
          type: 'string',
          minLength: 1,
          maxLength: 255,
          description:
            "1 to 255 characters: a second submission with this client's key within the idempotency_retention setting (default 24 h) answers the first job's id and creates nothing; with different content it is a 409",
        },
      },
    },
    parameters: { type: 'object', description: "validated against the workflow's parameter schema" },
  },
} as const;

const patchBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    client: { type: 'string', description: 'optional; must equal the client header' },
    persist: { type: 'boolean' },
    priority: { type: ['integer', 'string'], description: 'integer 1 to 10 (numeric strings accepted)' },
    queue_state: {
      type: 'string',
      enum: ['paused', 'broken', 'queued'],
      description: 'pause, break, or resume/force due (queued)',
    },
    run_at: { type: 'string', description: timestampIn },
    semaphore_url: { type: ['string', 'null'] },
    sempahore_url: {
      type: ['string', 'null'],
      description: "the seed's spelling, accepted as semaphore_url",
    },
    top_of_queue: { type: 'boolean' },
  },
} as const;

const listQuery = {
  type: 'object',
  properties: {
    asc: { type: 'string', enum: ['1', '0'], description: '1 oldest first, 0 newest first (default)' },
    client: { type: 'string', description: 'admins only: one client' },
    failed: { type: 'string', description: '1 or true: failed jobs only' },
    from: { type: 'string', description: `created at or after. ${timestampIn}` },
    to: { type: 'string', description: `created at or before. ${timestampIn}` },
    job_ids: { type: 'string', description: 'comma-separated job ids, e.g. 1,2,3' },
    limit: { type: 'string', description: 'rows to return, 1 to 1000; default 10' },
    offset: { type: 'string', description: 'rows to skip (paging); default 0' },
    after_id: {
      type: 'string',
      description:
        'keyset paging: the page continues right after this job (the last id of the previous page) in the same order and filters; as cheap at any depth as the first page; not with offset',
    },
    order_by: {
      type: 'string',
      enum: [
        'id',
        'created_at',
        'updated_at',
        'priority',
        'run_at',
        'client',
        'workflow',
        'queue_state',
        'position',
      ],
      description: 'default id',
    },
    persist: { type: 'string', enum: ['1', '0'] },
    search: { type: 'string', description: "substring of content_id or of the job's parameters" },
    state: {
      type: 'string',
      description: '0 queued, 1 started, 2 completed, 3 pending, 4 broken, 5 scheduled, 6 paused',
    },
  },
} as const;

/** `{id, result: "accepted"}`. */
export const acceptedReply = {
  type: 'object',
  properties: { id: { type: 'integer' }, result: { type: 'string', enum: ['accepted'] } },
} as const;

/** Registers the job routes: submit, list, read and change (below), rerun and retry ({@link registerRunRoutes}). */
export function registerJobRoutes(app: FastifyInstance, ctx: EngineContext): void {
  app.post(
    '/job',
    {
      ...describeOnly,
      schema: {
        summary: 'Submit a job',
        description:
          'Only `job.workflow` is required. Parameters are validated against the workflow (every problem is listed) and stored as submitted. Unknown top-level fields are ignored; unknown fields inside `job` are a 400. With `job.idempotency_key`, a repeat of the same submission answers the first job and creates nothing.',
        tags: ['jobs'],
        body: submitBody,
        response: {
          200: acceptedReply,
          400: errorSchema,
          ...authErrors,
          409: { description: 'the idempotency key was used with different content', ...errorSchema },
          413: errorSchema,
          415: errorSchema,
        },
      },
    },
    async (request) => {
      const { id } = await submitJob(ctx, viewerOf(request), request.body, {
        path: `${request.method} ${request.url}`,
        remoteAddr: request.ip,
        headers: request.headers,
      });
      return { id, result: 'accepted' };
    },
  );

  app.get(
    '/jobs',
    {
      ...describeOnly,
      schema: {
        summary: 'List jobs with filters',
        description:
          'Default: the last 10 jobs, newest first. Non-admins see only their own jobs. Anything outside the accepted values is a 400.',
        tags: ['jobs'],
        querystring: listQuery,
        response: { 200: { type: 'array', items: jobSchema }, 400: errorSchema, ...authErrors },
      },
    },
    async (request) => listJobs(ctx, viewerOf(request), request.query as Record<string, unknown>),
  );

  app.get(
    '/jobs/:id',
    {
      ...describeOnly,
      schema: {
        summary: 'One job, with its tasks',
        tags: ['jobs'],
        params: jobIdParams,
        response: {
          200: {
            type: 'object',
            properties: {
              ...jobSchema.properties,
              schedule: { type: ['string', 'null'], description: 'the user schedule that submitted the job' },
              scheduled_for: { type: ['string', 'null'], format: 'date-time', description: 'its slot' },
              outputs: {
                type: ['object', 'null'],
                additionalProperties: true,
                description: "what the workflow's outputs rendered when the job ended; null before",
              },
              error: { type: ['string', 'null'], description: 'why it failed or was broken' },
              waiting: waitingSchema,
              tasks: { type: 'array', items: taskSchema },
            },
          },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
        },
      },
    },
    async (request) => getJob(ctx, viewerOf(request), (request.params as { id: string }).id),
  );

  app.patch(
    '/jobs/:id',
    {
      ...describeOnly,
      schema: {
        summary: 'Change a job: persist, priority, queue_state, run_at, semaphore_url, top_of_queue',
        description:
          'Any other field is a 400. A transition the job state does not allow (e.g. pausing a completed job) is a 409 and changes nothing.',
        tags: ['jobs'],
        params: jobIdParams,
        body: patchBody,
        response: {
          200: {
            type: 'object',
            properties: {
              id: { type: 'integer' },
              result: { type: 'string', description: 'Performed updates: …' },
            },
          },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
          409: errorSchema,
        },
      },
    },
    async (request) => patchJob(ctx, viewerOf(request), (request.params as { id: string }).id, request.body),
  );

  registerRunRoutes(app, ctx);
}

/** The routes that run a job again: rerun (a new job) and retry (the same job, from its failed tasks). */
function registerRunRoutes(app: FastifyInstance, ctx: EngineContext): void {
  app.post(
    '/jobs/:id/rerun',
    {
      ...describeOnly,
      schema: {
        summary: 'Run a job again as a new job',
        description:
          'Creates a new job with the same workflow, priority and submitted parameters, and sets the original to broken (breaking it if it still runs); the new job has `rerun_of`, the original `rerun_by`. No body, or only `client`: any other field (e.g. `parameters`) is a 400. Replies with the new id.',
        tags: ['jobs'],
        params: jobIdParams,
        // No body schema: the body is optional, and a schema would mark it required in OpenAPI.
        response: { 200: acceptedReply, 400: errorSchema, ...authErrors, 404: errorSchema, 409: errorSchema },
      },
    },
    async (request) => rerunJob(ctx, viewerOf(request), (request.params as { id: string }).id, request.body),
  );

  app.post(
    '/jobs/:id/retry',
    {
      ...describeOnly,
      schema: {
        summary: 'Retry a failed or broken job from the tasks that did not succeed',
        description:
          'Runs the same job again: succeeded tasks keep their outputs and do not run again; failed, cancelled and skipped tasks run again as the graph allows, once the job is admitted. Optional body {"parameters": {...}} changes parameters (merged over the submitted ones, validated against the job\'s workflow). 409 unless the job is completed with failed: true, or broken.',
        tags: ['jobs'],
        params: jobIdParams,
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: { parameters: { type: 'object', description: 'parameters to change' } },
        },
        response: { 200: acceptedReply, 400: errorSchema, ...authErrors, 404: errorSchema, 409: errorSchema },
      },
    },
    async (request) => retryJob(ctx, viewerOf(request), (request.params as { id: string }).id, request.body),
  );
}
