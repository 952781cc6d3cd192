/**
 * The JSON Schema of a workflow definition file (SPEC section 11) and its Ajv validator. The
 * semantic checks that a schema cannot express (needs, cycles, module paths, templates,
 * parameter schemas) live in `catalog.ts`.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject } from 'ajv/dist/2020.js';

/** Workflow names (and so file names): lower-case letters, digits, `_` and `-`. */
export const WORKFLOW_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,99}$';
/** Task names, unique in a workflow (SPEC section 11). */
export const TASK_NAME_PATTERN = '^[a-z][a-z0-9_]{0,99}$';
/** Queue names. */
export const QUEUE_NAME_PATTERN = '^[a-z][a-z0-9_-]{0,62}$';
/** The queue a task runs on when it names none. */
export const DEFAULT_QUEUE = 'work';
/** Most worker slots one task may take (`tasks[].slots`). */
export const MAX_TASK_SLOTS = 1000;

const taskSchema = {
  type: 'object',
  required: ['name', 'run'],
  additionalProperties: false,
  properties: {
    name: {
      type: 'string',
      pattern: TASK_NAME_PATTERN,
      description: 'lower-case letters, digits and _, starting with a letter, at most 100 characters',
    },
    description: { type: 'string' },
    run: { type: 'string', minLength: 1 },
    with: { type: 'object' },
    needs: {
      type: 'array',
      items: { type: 'string' },
      uniqueItems: true,
    },
    queue: {
      type: 'string',
      pattern: QUEUE_NAME_PATTERN,
      description: 'lower-case letters, digits, _ and -, starting with a letter, at most 63 characters',
    },
    if: { type: ['string', 'boolean'] },
    timeout: { type: 'number', minimum: 0 },
    retry_limit: { type: 'integer', minimum: 0 },
    retry_delay: { type: 'number', minimum: 0 },
    continue_on_error: { type: 'boolean' },
    when: {
      enum: ['always', 'failed'],
      description:
        'a cleanup task: runs after every other task ended, whatever the outcome (always) or only after a failure or break (failed)',
    },
    slots: {
      type: 'integer',
      minimum: 1,
      maximum: MAX_TASK_SLOTS,
      description: `the worker slots the task takes while it runs, a whole number from 1 to ${MAX_TASK_SLOTS}`,
    },
    concurrency: {
      type: 'object',
      required: ['key', 'limit'],
      additionalProperties: false,
      properties: {
        key: {
          type: 'string',
          minLength: 1,
          description: 'a non-empty text or template such as "encode:{{ job.client }}"',
        },
        limit: {
          type: 'integer',
          minimum: 1,
          description: 'how many running tasks may hold the key at once, a whole number of at least 1',
        },
      },
    },
  },
} as const;

/** JSON Schema of a definition file. */
export const WORKFLOW_DEFINITION_SCHEMA = {
  type: 'object',
  required: ['name', 'tasks'],
  additionalProperties: false,
  properties: {
    name: {
      type: 'string',
      pattern: WORKFLOW_NAME_PATTERN,
      description:
        'lower-case letters, digits, _ and -, starting with a letter or digit, at most 100 characters',
    },
    description: { type: 'string' },
    parameters: { type: 'object' },
    tasks: { type: 'array', minItems: 1, items: taskSchema },
    outputs: { type: 'object' },
    concurrency: {
      type: 'object',
      required: ['key', 'limit'],
      additionalProperties: false,
      description: 'at most `limit` jobs holding the rendered `key` run at once',
      properties: {
        key: { type: 'string', minLength: 1, description: 'a template, e.g. "{{ parameters.content_id }}"' },
        limit: { type: 'integer', minimum: 1, maximum: 100_000 },
      },
    },
  },
} as const;

const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
const validateDefinitionShape = ajv.compile(WORKFLOW_DEFINITION_SCHEMA);

/** Renders an Ajv instance path (`/tasks/1/needs/0`) as `tasks[1].needs[0]`. */
function fieldPath(instancePath: string, child?: string): string {
  const steps = instancePath === '' ? [] : instancePath.slice(1).split('/');
  if (child !== undefined) steps.push(child);
  let out = '';
  for (const step of steps) out += /^\d+$/.test(step) ? `[${step}]` : out === '' ? step : `.${step}`;
  return out === '' ? 'the definition' : out;
}

function describe(e: ErrorObject): string {
  const p = fieldPath(e.instancePath);
  const params = e.params as Record<string, unknown>;
  const parent = e.parentSchema as { description?: string; properties?: Record<string, unknown> } | undefined;
  switch (e.keyword) {
    case 'required':
      return `${fieldPath(e.instancePath, String(params.missingProperty))} is required`;
    case 'additionalProperties':
      return `${fieldPath(e.instancePath, String(params.additionalProperty))} is not a known field (accepted: ${Object.keys(parent?.properties ?? {}).join(', ')})`;
    case 'type':
      return `${p} must be ${Array.isArray(params.type) ? params.type.join(' or ') : String(params.type)}`;
    case 'pattern':
      return `${p} ${JSON.stringify(e.data)} is not accepted: ${parent?.description ?? `must match ${String(params.pattern)}`}`;
    case 'minimum':
    case 'maximum':
    case 'minLength':
      if (parent?.description) return `${p} ${JSON.stringify(e.data)} is not accepted: ${parent.description}`;
      return `${p} ${e.message ?? 'is not accepted'}`;
    default:
      return `${p} ${e.message ?? 'is not accepted'}`;
  }
}

/**
 * Checks the shape of a parsed definition file against {@link WORKFLOW_DEFINITION_SCHEMA}.
 * @returns every problem, each naming the field and what is accepted (empty when the shape is right).
 */
export function checkDefinitionShape(doc: unknown): string[] {
  if (validateDefinitionShape(doc)) return [];
  return [...new Set((validateDefinitionShape.errors ?? []).map(describe))];
}
