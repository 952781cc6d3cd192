/**
 * Workflow catalogs for tests: definitions given inline (as they would be written in a file),
 * normalised the way the loader does (`queue` defaults to `work`, omitted `needs` = the task
 * above), and served from memory. Also written as JSON files under `dir/common/` so a child
 * engine process can load the very same definitions.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type {
  ResolvedWorkflow,
  TaskDefinition,
  WorkflowCatalog,
  WorkflowDefinition,
} from '../../src/workflows/types.js';

/** A task as a test writes it: `needs` and `queue` may be omitted. */
export type FixtureTask = Omit<TaskDefinition, 'needs' | 'queue'> & { needs?: string[]; queue?: string };
/** A workflow as a test writes it. */
export interface FixtureWorkflow {
  description?: string;
  parameters?: Record<string, unknown>;
  tasks: FixtureTask[];
  outputs?: Record<string, unknown>;
  /** A job concurrency key (`concurrency: {key, limit}`). */
  concurrency?: { key: string; limit: number };
}

/** Normalises a fixture workflow into a definition. */
export function toDefinition(name: string, wf: FixtureWorkflow): WorkflowDefinition {
  return {
    name,
    ...(wf.description ? { description: wf.description } : {}),
    parameters: wf.parameters ?? { type: 'object', additionalProperties: true },
    tasks: wf.tasks.map((t, i) => ({
      ...t,
      queue: t.queue ?? 'work',
      needs: t.needs ?? (i === 0 ? [] : [wf.tasks[i - 1]!.name]),
    })),
    ...(wf.outputs ? { outputs: wf.outputs } : {}),
    ...(wf.concurrency ? { concurrency: wf.concurrency } : {}),
  };
}

/**
 * Builds a catalog of common workflows. `dir` (default a new temp folder) is the workflows folder
 * the handlers resolve module paths against; `dir/common/<name>.json` holds each definition.
 */
export function createFixtureCatalog(
  workflows: Record<string, FixtureWorkflow>,
  dir?: string,
): WorkflowCatalog {
  return buildCatalog(workflows, dir, true);
}

function buildCatalog(
  workflows: Record<string, FixtureWorkflow>,
  dir: string | undefined,
  write: boolean,
): WorkflowCatalog {
  const root = dir ?? mkdtempSync(path.join(tmpdir(), 'te-workflows-'));
  if (write) mkdirSync(path.join(root, 'common'), { recursive: true });
  const defs = new Map<string, ResolvedWorkflow>();
  for (const [name, wf] of Object.entries(workflows)) {
    const file = path.join(root, 'common', `${name}.json`);
    if (write) {
      // Written aside and renamed, so a child process reading the folder never sees half a file.
      const partial = `${file}.${process.pid}.partial`;
      writeFileSync(partial, JSON.stringify(wf, null, 2));
      renameSync(partial, file);
    }
    defs.set(name, { definition: toDefinition(name, wf), source: 'common', file });
  }
  return {
    dir: root,
    resolve: (_client, name) => defs.get(name) ?? null,
    list: () => [...defs.values()],
    queues: () => [
      ...new Set(['work', ...[...defs.values()].flatMap((d) => d.definition.tasks.map((t) => t.queue))]),
    ],
    async reload() {},
  };
}

/**
 * Reads the catalog written by {@link createFixtureCatalog} in `dir` (for child processes). It
 * only reads: several engine processes start on one folder at once.
 */
export function readFixtureCatalog(dir: string): WorkflowCatalog {
  const workflows: Record<string, FixtureWorkflow> = {};
  const common = path.join(dir, 'common');
  for (const f of readdirSyncSafe(common))
    if (f.endsWith('.json'))
      workflows[f.slice(0, -5)] = JSON.parse(readFileSync(path.join(common, f), 'utf8')) as FixtureWorkflow;
  return buildCatalog(workflows, dir, false);
}

function readdirSyncSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
