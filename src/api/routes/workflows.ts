/** `GET /workflows` and `POST /workflows/reload` (admin) (SPEC section 11). */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import { EngineError } from '../../errors/catalogue.js';
import type { ResolvedWorkflow } from '../../workflows/types.js';
import { viewerOf } from '../plugins/auth.js';
import { authErrors, errorSchema } from '../schemas.js';

/** A workflow as `GET /workflows` lists it. */
export interface WorkflowSummary {
  name: string;
  description: string | null;
  /** `client` when the client's own copy replaces the common one. */
  source: 'client' | 'common';
  /** JSON Schema of `parameters`. */
  parameters: Record<string, unknown>;
  tasks: { name: string; queue: string; run: string; needs: string[] }[];
}

/** The public summary of a resolved workflow (no file paths, no handler inputs). */
export function summariseWorkflow(w: ResolvedWorkflow): WorkflowSummary {
  return {
    name: w.definition.name,
    description: w.definition.description ?? null,
    source: w.source,
    parameters: w.definition.parameters,
    tasks: w.definition.tasks.map((t) => ({ name: t.name, queue: t.queue, run: t.run, needs: t.needs })),
  };
}

const workflowSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    description: { type: ['string', 'null'] },
    source: { type: 'string', enum: ['client', 'common'] },
    parameters: { type: 'object', description: 'JSON Schema of job parameters' },
    tasks: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          queue: { type: 'string' },
          run: { type: 'string' },
          needs: { type: 'array', items: { type: 'string' } },
        },
      },
    },
  },
} as const;

/** Registers the workflow routes. */
export function registerWorkflowRoutes(app: FastifyInstance, ctx: EngineContext): void {
  app.get(
    '/workflows',
    {
      schema: {
        summary: 'The workflows this client may submit, with their parameter schemas',
        description: "A client's own definition replaces the common one of the same name.",
        tags: ['workflows'],
        response: { 200: { type: 'array', items: workflowSchema }, ...authErrors },
      },
    },
    async (request) =>
      ctx.catalog
        .list(viewerOf(request).client)
        .map(summariseWorkflow)
        .sort((a, b) => a.name.localeCompare(b.name)),
  );

  app.post(
    '/workflows/reload',
    {
      config: { auth: 'admin' },
      schema: {
        summary: 'Re-read the workflow definitions (admin)',
        description:
          'On any bad file nothing changes: the previous definitions stay in use and the reply (400) names the file and the problem. Jobs already submitted keep the definition they were submitted with.',
        tags: ['workflows'],
        response: {
          200: {
            type: 'object',
            properties: {
              result: { type: 'string', enum: ['ok'] },
              workflows: {
                type: 'array',
                items: { type: 'string' },
                description: 'names this client now sees',
              },
            },
          },
          400: errorSchema,
          ...authErrors,
        },
      },
    },
    async (request) => {
      try {
        await ctx.catalog.reload();
      } catch (err) {
        throw new EngineError(
          'VALIDATION_FAILED',
          `workflow definitions were not reloaded (the previous ones stay in use): ${err instanceof Error ? err.message : String(err)}`,
          { cause: err },
        );
      }
      const names = ctx.catalog
        .list(viewerOf(request).client)
        .map((w) => w.definition.name)
        .sort();
      request.log.info({ workflows: names.length }, 'workflow definitions reloaded');
      return { result: 'ok', workflows: names };
    },
  );
}
