/**
 * Task weights and concurrency keys of a workflow definition (`tasks[].slots`,
 * `tasks[].concurrency`; docs/task-slots-and-concurrency.md): what a key template may refer to,
 * and rendering it when a job is submitted. The claim statement (`claimReadyTasks`) enforces them.
 *
 * A key is rendered once, at submission, and stored on the task row: it may read the job's
 * parameters and `job.client`, `job.workflow`, `job.priority`, which are all known then; `job.id`,
 * `tasks.…` and `storage.…` are refused at load (the id is drawn by the insert, outputs do not exist
 * yet). A rerun renders its keys again from the parameters it copies; a retry keeps them.
 */
import { createHash } from 'node:crypto';
import { renderTemplate, type TemplateReference } from './templates.js';
import type { TaskConcurrency, TaskDefinition } from './types.js';

/** The `job` fields a concurrency key may read (known when the job is submitted). */
export const CONCURRENCY_KEY_JOB_FIELDS = ['client', 'workflow', 'priority'] as const;

/** Longest key stored as rendered, in characters; a longer one is shortened by {@link fitConcurrencyKey}. */
export const MAX_CONCURRENCY_KEY_LENGTH = 255;

/**
 * Checks what one expression of a `concurrency.key` template refers to: `parameters.…` (the
 * loader checks the parameter is declared) or a job field of {@link CONCURRENCY_KEY_JOB_FIELDS}.
 * @returns the problem, naming what is accepted, or null when the reference is allowed here.
 */
export function checkConcurrencyKeyReference(ref: TemplateReference): string | null {
  const [root, first] = ref.expression.path;
  const at = `${ref.where}: {{ ${ref.expression.source} }}`;
  const accepted = `a concurrency key is rendered when the job is submitted, so it may read parameters.<name> and ${CONCURRENCY_KEY_JOB_FIELDS.map((f) => `job.${f}`).join(', ')}`;
  if (root === 'parameters') return null;
  if (
    root === 'job' &&
    typeof first === 'string' &&
    (CONCURRENCY_KEY_JOB_FIELDS as readonly string[]).includes(first) &&
    ref.expression.path.length === 2
  )
    return null;
  return `${at} is not accepted: ${accepted}`;
}

/** What a key is rendered against at submission. */
export interface ConcurrencyKeyScope {
  /** The job's resolved parameters. */
  parameters: Record<string, unknown>;
  job: { client: string; workflow: string; priority: number };
}

/**
 * Renders a `concurrency.key` template: text as it is, values interpolated as in every template
 * (a whole-expression key that is a number, boolean, object or array becomes its text; a missing
 * value the empty string, so such jobs share one key rather than escaping the limit), then fitted
 * with {@link fitConcurrencyKey}. Pure.
 */
export function renderConcurrencyKey(key: string, scope: ConcurrencyKeyScope): string {
  const value = renderTemplate(key, {
    parameters: scope.parameters,
    // The loader refuses job.id in a key; 0 is never read.
    job: { id: 0, ...scope.job },
    tasks: {},
    storage: { root: '' },
  });
  let text = '';
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'boolean') text = String(value);
  else if (value !== undefined && value !== null) text = JSON.stringify(value);
  return fitConcurrencyKey(text);
}

/**
 * A key of at most {@link MAX_CONCURRENCY_KEY_LENGTH} characters (code units): a longer one
 * becomes its first 200 characters, `#` and 32 hex digits of its SHA-256, so it stays readable,
 * distinct keys stay distinct, and the index on the column never meets an oversized value. Pure.
 */
export function fitConcurrencyKey(key: string): string {
  if (key.length <= MAX_CONCURRENCY_KEY_LENGTH) return key;
  const digest = createHash('sha256').update(key).digest('hex').slice(0, 32);
  // Do not cut a surrogate pair in half.
  let head = key.slice(0, 200);
  if (/[\uD800-\uDBFF]$/.test(head)) head = head.slice(0, -1);
  return `${head}#${digest}`;
}

/** The columns a task row gets from its definition at submission (see the `tasks` table). */
export interface TaskWeightColumns {
  slots: number;
  concurrency_key: string | null;
  concurrency_limit: number | null;
}

/** Whether any task of `tasks` has a concurrency key with a template (then rows differ per job). */
export function hasTemplatedConcurrencyKey(tasks: readonly TaskDefinition[]): boolean {
  return tasks.some((t) => t.concurrency !== undefined && t.concurrency.key.includes('{{'));
}

/**
 * The `slots`, `concurrency_key` and `concurrency_limit` columns of a task row for `task`, its key
 * rendered against `scope`. Pure.
 */
export function taskWeightColumns(task: TaskDefinition, scope: ConcurrencyKeyScope): TaskWeightColumns {
  const c: TaskConcurrency | undefined = task.concurrency;
  return {
    slots: task.slots ?? 1,
    concurrency_key: c ? renderConcurrencyKey(c.key, scope) : null,
    concurrency_limit: c ? c.limit : null,
  };
}
