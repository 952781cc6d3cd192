/**
 * `task-engine workflows [name] [--reload]`: the workflows this client may submit
 * (`GET /workflows`); with a name, that workflow's parameters and tasks; `--reload` asks the
 * engine to read its definitions again first (`POST /workflows/reload`, admins).
 */
import type { Command } from 'commander';
import {
  addConnectionOptions,
  callApi,
  printJson,
  resolveConnection,
  type ConnectionOptions,
} from '../http-client.js';
import { CliError, type CliIO } from '../io.js';
import { compact, printFields, printTable } from '../table.js';

/** A workflow as `GET /workflows` lists it. */
interface WorkflowSummary {
  name: string;
  description: string | null;
  source: 'client' | 'common';
  /** JSON Schema of the job parameters. */
  parameters: Record<string, unknown>;
  tasks: { name: string; queue: string; run: string; needs: string[] }[];
}

interface WorkflowsOptions extends ConnectionOptions {
  json?: boolean;
  reload?: boolean;
}

interface PropertySchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
}

/** A parameter's type as a short text: `string`, `number|string`, `one of a, b`. */
function typeText(p: PropertySchema): string {
  if (Array.isArray(p.enum)) return `one of ${p.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  if (Array.isArray(p.type)) return p.type.join('|');
  return p.type ?? 'any';
}

/** Prints one workflow: description, source, parameters (from its JSON Schema) and tasks. */
function printWorkflow(io: CliIO, w: WorkflowSummary): void {
  printFields(io, [
    ['workflow', w.name],
    ['description', w.description],
    ['source', w.source],
  ]);
  const schema = w.parameters as { properties?: Record<string, PropertySchema>; required?: string[] };
  const required = new Set(schema.required ?? []);
  io.out('');
  printTable(
    io,
    ['PARAMETER', 'TYPE', 'REQUIRED', 'DEFAULT', 'DESCRIPTION'],
    Object.entries(schema.properties ?? {}).map(([name, p]) => [
      name,
      typeText(p),
      required.has(name),
      p.default === undefined ? null : compact(p.default, 40),
      p.description,
    ]),
    { empty: '(no parameters)' },
  );
  io.out('');
  printTable(
    io,
    ['TASK', 'QUEUE', 'RUN', 'NEEDS'],
    w.tasks.map((t) => [t.name, t.queue, t.run, t.needs.join(',')]),
  );
}

/** Registers `workflows`. */
export function registerWorkflowsCommand(program: Command, io: CliIO): void {
  addConnectionOptions(
    program
      .command('workflows [name]')
      .description('list the workflows this client may submit; with a name, its parameters and tasks')
      .option('--reload', 'admins: have the engine read its workflow definitions again first')
      .option('--json', 'print the API reply (GET /workflows; with a name, that workflow)'),
  ).action(async (name: string | undefined, opts: WorkflowsOptions) => {
    const conn = await resolveConnection(io, opts);
    if (opts.reload) {
      const reloaded = await callApi<{ workflows: string[] }>(conn, 'POST', '/workflows/reload');
      if (!opts.json) io.err(`workflow definitions reloaded (${reloaded.workflows.length} workflows)`);
    }
    const list = await callApi<WorkflowSummary[]>(conn, 'GET', '/workflows');
    if (name !== undefined) {
      const w = list.find((x) => x.name === name);
      if (!w)
        throw new CliError(
          `no workflow named "${name}" for this client; it may submit: ${list.map((x) => x.name).join(', ') || '(none)'}`,
        );
      if (opts.json) printJson(io, w);
      else printWorkflow(io, w);
      return;
    }
    if (opts.json) return printJson(io, list);
    printTable(
      io,
      ['NAME', 'SOURCE', 'TASKS', 'DESCRIPTION'],
      list.map((w) => [w.name, w.source, w.tasks.length, w.description]),
      { align: ['left', 'left', 'right'], empty: '(no workflows)' },
    );
  });
}
