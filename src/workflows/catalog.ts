/**
 * Loads the workflow definitions (SPEC section 11) from a folder into a {@link WorkflowCatalog}.
 *
 * Layout: `<dir>/common/<name>.yaml|.yml|.json` for every client, and `<dir>/<client>/<name>.…`
 * for one client's own copies, which replace the common definition of the same name for that client.
 * A folder counts as a client folder when its name is a client name (`[a-z0-9][a-z0-9_-]{0,62}`)
 * and is not reserved (`common`, `handlers`); other folders (module handlers, helpers, anything
 * starting with `_` or `.`) and other files are ignored.
 *
 * Every file is checked fully at load: its shape (Ajv, `definition-schema.ts`), then its meaning
 * (see {@link loadDefinitionFile}). Any bad file makes the load throw a
 * {@link WorkflowCatalogError} naming every bad file and every problem in it, so the engine does
 * not start with a broken definition; `reload()` keeps the previous set in that case.
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { parseDocument } from 'yaml';
import { DEFAULT_QUEUE, checkDefinitionShape } from './definition-schema.js';
import { BUILTIN_INPUTS, isBuiltinHandler, locateModuleHandler } from './handlers/registry.js';
import { checkParameterSchema, withCommonParameters } from './parameters.js';
import { TEMPLATE_JOB_FIELDS, TEMPLATE_STORAGE_FIELDS, collectTemplates } from './templates.js';
import type { TemplateReference } from './templates.js';
import { checkConcurrencyKeyReference } from './task-concurrency.js';
import type {
  JobConcurrency,
  ResolvedWorkflow,
  TaskDefinition,
  WorkflowCatalog,
  WorkflowDefinition,
} from './types.js';

/** Client folder names (SPEC section 4: client names). */
export const CLIENT_FOLDER_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Folder names under the workflows folder that are never client folders. */
export const RESERVED_FOLDERS: ReadonlySet<string> = new Set(['common', 'handlers']);
/** Extensions of definition files. */
export const DEFINITION_EXTENSIONS = ['.yaml', '.yml', '.json'] as const;

/** Problems of one definition file. */
export interface DefinitionFileProblems {
  /** Absolute path of the file. */
  file: string;
  problems: string[];
}

/**
 * One or more definition files are invalid. `message` names each file and each problem;
 * `files` holds the same, structured (for `POST /workflows/reload` replies).
 */
export class WorkflowCatalogError extends Error {
  constructor(
    readonly dir: string,
    readonly files: DefinitionFileProblems[],
  ) {
    super(
      `workflow definitions in ${dir} are invalid:\n` +
        files.map((f) => `${f.file}:\n${f.problems.map((p) => `  - ${p}`).join('\n')}`).join('\n'),
    );
    this.name = 'WorkflowCatalogError';
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Parses YAML or JSON text; YAML duplicate keys and syntax errors are problems with line numbers. */
function parseText(file: string, text: string): { doc?: unknown; problems: string[] } {
  if (extname(file) === '.json') {
    try {
      return { doc: JSON.parse(text) as unknown, problems: [] };
    } catch (err) {
      return { problems: [`not valid JSON: ${(err as Error).message}`] };
    }
  }
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0)
    return {
      problems: document.errors.map((e) => `not valid YAML: ${e.message.split('\n')[0] ?? e.message}`),
    };
  return { doc: document.toJS({ maxAliasCount: 100 }) as unknown, problems: [] };
}

/** Tasks reachable backwards through `needs` from each task (its ancestors). */
function ancestorsOf(tasks: TaskDefinition[]): Map<string, Set<string>> {
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const memo = new Map<string, Set<string>>();
  const visit = (name: string, guard: Set<string>): Set<string> => {
    const hit = memo.get(name);
    if (hit) return hit;
    const out = new Set<string>();
    if (guard.has(name)) return out; // cycles are reported separately
    guard.add(name);
    for (const need of byName.get(name)?.needs ?? []) {
      if (!byName.has(need)) continue;
      out.add(need);
      for (const a of visit(need, guard)) out.add(a);
    }
    guard.delete(name);
    memo.set(name, out);
    return out;
  };
  for (const t of tasks) visit(t.name, new Set());
  return memo;
}

/** Finds one cycle in the `needs` graph, as a list of names ending where it started. */
function findCycle(tasks: TaskDefinition[]): string[] | null {
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const state = new Map<string, 'grey' | 'black'>();
  const stack: string[] = [];
  const visit = (name: string): string[] | null => {
    state.set(name, 'grey');
    stack.push(name);
    for (const need of byName.get(name)?.needs ?? []) {
      if (!byName.has(need)) continue;
      const s = state.get(need);
      if (s === 'grey') return [...stack.slice(stack.indexOf(need)), need];
      if (s === undefined) {
        const found = visit(need);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(name, 'black');
    return null;
  };
  for (const t of tasks) {
    if (state.has(t.name)) continue;
    const found = visit(t.name);
    if (found) return found;
  }
  return null;
}

/**
 * The problems of a concurrency key template at `where` (`concurrency.key`, or
 * `tasks.<name>.concurrency.key`): one rule for both levels
 * ({@link checkConcurrencyKeyReference}: rendered at submission, so declared parameters and
 * `job.client`, `job.workflow`, `job.priority` only).
 */
function checkConcurrencyKey(key: string, declared: ReadonlySet<string>, where: string): string[] {
  const found = collectTemplates(key, where);
  const problems = [...found.problems];
  for (const ref of found.references) {
    const p = checkConcurrencyKeyReference(ref) ?? checkReference(ref, declared, new Set(), null);
    if (p) problems.push(p);
  }
  return problems;
}

/** Checks one template reference against what exists where it is used. */
function checkReference(
  ref: TemplateReference,
  declaredParameters: ReadonlySet<string>,
  taskNames: ReadonlySet<string>,
  reachable: ReadonlySet<string> | null,
): string | null {
  const { path, source } = ref.expression;
  const at = `${ref.where}: {{ ${source} }}`;
  const [root, first, second] = path;
  switch (root) {
    case 'parameters':
      if (first === undefined) return null;
      if (typeof first !== 'string' || !declaredParameters.has(first))
        return `${at} refers to parameter ${String(first)}, which the parameters schema does not declare (declared: ${[...declaredParameters].join(', ')})`;
      return null;
    case 'job':
      if (first === undefined) return null;
      if (
        typeof first !== 'string' ||
        !(TEMPLATE_JOB_FIELDS as readonly string[]).includes(first) ||
        path.length > 2
      )
        return `${at}: job offers ${TEMPLATE_JOB_FIELDS.map((f) => `job.${f}`).join(', ')}`;
      return null;
    case 'storage':
      if (first === undefined) return null;
      if (
        typeof first !== 'string' ||
        !(TEMPLATE_STORAGE_FIELDS as readonly string[]).includes(first) ||
        path.length > 2
      )
        return `${at}: storage offers ${TEMPLATE_STORAGE_FIELDS.map((f) => `storage.${f}`).join(', ')}`;
      return null;
    case 'tasks':
      if (first === undefined) return null;
      if (typeof first !== 'string' || !taskNames.has(first))
        return `${at} refers to task ${String(first)}, which this workflow does not have`;
      if (reachable && !reachable.has(first))
        return `${at} reads task ${first}, which is not among the tasks this one needs (directly or through others), so its output may not exist yet`;
      if (second !== undefined && second !== 'output' && second !== 'state')
        return `${at}: a task offers tasks.${first}.output… and tasks.${first}.state`;
      return null;
  }
}

/** Checks a built-in handler's `with` keys (values may be templates, so only names and a few literals). */
function checkBuiltinInputs(task: TaskDefinition, where: string): string[] {
  if (!isBuiltinHandler(task.run)) return [];
  const spec = BUILTIN_INPUTS[task.run];
  const inputs = task.with ?? {};
  const problems: string[] = [];
  for (const key of Object.keys(inputs))
    if (!spec.accepted.includes(key))
      problems.push(
        `${where}.with.${key} is not an input of ${task.run} (accepted: ${spec.accepted.join(', ')})`,
      );
  for (const key of spec.required)
    if (inputs[key] === undefined) problems.push(`${where}.with.${key} is required by ${task.run}`);
  if (task.run === 'exec') {
    if (inputs.output !== undefined && inputs.output !== 'text' && inputs.output !== 'json')
      problems.push(`${where}.with.output must be "text" or "json"`);
    if (inputs.args !== undefined && !Array.isArray(inputs.args))
      problems.push(`${where}.with.args must be an array (an argv list; no shell is used)`);
    if (isPlainObject(inputs.env) === false && inputs.env !== undefined)
      problems.push(`${where}.with.env must be an object of NAME: value`);
  }
  if (task.run === 'http' && inputs.json !== undefined && inputs.body !== undefined)
    problems.push(`${where}.with: give either json or body, not both`);
  return problems;
}

/**
 * Reads and checks one definition file.
 * @param file - absolute path of the file.
 * @param workflowsDir - the workflows folder (module handler paths are relative to it).
 * @returns the normalized definition (needs resolved, queue defaulted, `timeout: 0` removed,
 *   `rest_endpoints` and `custom_data` added to the parameters when not declared), or every
 *   problem found. Checks: YAML/JSON syntax; the shape; name equals the file name; unique task
 *   names; needs name existing tasks and form no cycle; `run` is a built-in or an existing module
 *   inside the folder; built-in inputs known and required ones present; `parameters` compiles
 *   (reference defaults sound); templates parse and refer to declared parameters, known job and
 *   storage fields, and tasks this one needs; a task's `concurrency.key` reads only parameters and
 *   the job fields known at submission.
 */
export async function loadDefinitionFile(
  file: string,
  workflowsDir: string,
): Promise<
  { definition: WorkflowDefinition; problems?: undefined } | { definition?: undefined; problems: string[] }
> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return { problems: [`cannot be read: ${(err as Error).message}`] };
  }
  const parsed = parseText(file, text);
  if (parsed.problems.length > 0) return { problems: parsed.problems };
  const doc = parsed.doc;
  const shapeProblems = checkDefinitionShape(doc);
  if (shapeProblems.length > 0 || !isPlainObject(doc)) return { problems: shapeProblems };

  const problems: string[] = [];
  const expectedName = basename(file, extname(file));
  if (doc.name !== expectedName)
    problems.push(`name "${String(doc.name)}" must equal the file name "${expectedName}"`);

  const rawTasks = doc.tasks as Record<string, unknown>[];
  const seen = new Set<string>();
  for (const t of rawTasks) {
    const name = t.name as string;
    if (seen.has(name))
      problems.push(`task name "${name}" is used more than once; task names must be unique`);
    seen.add(name);
  }

  const tasks: TaskDefinition[] = rawTasks.map((t, i) => {
    const previous = i > 0 ? (rawTasks[i - 1]?.name as string) : undefined;
    const task: TaskDefinition = {
      name: t.name as string,
      run: t.run as string,
      needs: Array.isArray(t.needs) ? (t.needs as string[]) : previous === undefined ? [] : [previous],
      queue: typeof t.queue === 'string' ? t.queue : DEFAULT_QUEUE,
    };
    if (typeof t.description === 'string') task.description = t.description;
    if (isPlainObject(t.with)) task.with = t.with;
    if (typeof t.if === 'string') task.if = t.if;
    else if (typeof t.if === 'boolean') task.if = String(t.if);
    if (typeof t.timeout === 'number' && t.timeout > 0) task.timeout = t.timeout;
    if (typeof t.retry_limit === 'number') task.retry_limit = t.retry_limit;
    if (typeof t.retry_delay === 'number') task.retry_delay = t.retry_delay;
    if (typeof t.continue_on_error === 'boolean') task.continue_on_error = t.continue_on_error;
    if (t.when === 'always' || t.when === 'failed') task.when = t.when;
    if (typeof t.slots === 'number') task.slots = t.slots;
    if (isPlainObject(t.concurrency))
      task.concurrency = { key: t.concurrency.key as string, limit: t.concurrency.limit as number };
    return task;
  });

  const taskNames = new Set(tasks.map((t) => t.name));
  for (const task of tasks)
    for (const need of task.needs) {
      if (need === task.name) problems.push(`tasks.${task.name}.needs names the task itself`);
      else if (!taskNames.has(need))
        problems.push(
          `tasks.${task.name}.needs names "${need}", which is not a task of this workflow (tasks: ${[...taskNames].join(', ')})`,
        );
    }
  const cycle = findCycle(tasks);
  if (cycle) problems.push(`tasks' needs form a cycle: ${cycle.join(' -> ')}`);
  // A cleanup task runs only after every other task has ended, so an ordinary task that needs one
  // would wait for ever.
  const cleanup = new Set(tasks.filter((t) => t.when !== undefined).map((t) => t.name));
  for (const task of tasks)
    if (task.when === undefined)
      for (const need of task.needs)
        if (cleanup.has(need))
          problems.push(
            `tasks.${task.name}.needs names "${need}", a cleanup task (when: ${tasks.find((t) => t.name === need)?.when}), which runs only after every other task has ended; only another cleanup task may need it`,
          );

  for (const task of tasks) {
    const where = `tasks.${task.name}`;
    if (!isBuiltinHandler(task.run)) {
      const located = await locateModuleHandler(task.run, workflowsDir);
      if (located.problem !== undefined) problems.push(`${where}: ${located.problem}`);
    }
    problems.push(...checkBuiltinInputs(task, where));
  }

  const parameters = withCommonParameters(
    isPlainObject(doc.parameters) ? doc.parameters : { type: 'object' },
  );
  const parameterProblems = checkParameterSchema(parameters);
  problems.push(...parameterProblems);
  const declared = new Set(Object.keys(isPlainObject(parameters.properties) ? parameters.properties : {}));

  const ancestors = ancestorsOf(tasks);
  for (const task of tasks) {
    const reachable = ancestors.get(task.name) ?? new Set<string>();
    for (const [value, where] of [
      [task.with, `tasks.${task.name}.with`],
      [task.if, `tasks.${task.name}.if`],
    ] as const) {
      const found = collectTemplates(value, where);
      problems.push(...found.problems);
      for (const ref of found.references) {
        const p = checkReference(ref, declared, taskNames, reachable);
        if (p) problems.push(p);
      }
    }
  }
  for (const task of tasks) {
    if (!task.concurrency) continue;
    problems.push(
      ...checkConcurrencyKey(task.concurrency.key, declared, `tasks.${task.name}.concurrency.key`),
    );
  }
  const outputs = isPlainObject(doc.outputs) ? doc.outputs : undefined;
  if (outputs) {
    const found = collectTemplates(outputs, 'outputs');
    problems.push(...found.problems);
    for (const ref of found.references) {
      const p = checkReference(ref, declared, taskNames, null);
      if (p) problems.push(p);
    }
  }

  const concurrency = isPlainObject(doc.concurrency)
    ? (doc.concurrency as unknown as JobConcurrency)
    : undefined;
  if (concurrency) problems.push(...checkConcurrencyKey(concurrency.key, declared, 'concurrency.key'));

  if (problems.length > 0) return { problems };
  const definition: WorkflowDefinition = { name: doc.name as string, parameters, tasks };
  if (typeof doc.description === 'string') definition.description = doc.description;
  if (outputs) definition.outputs = outputs;
  if (concurrency) definition.concurrency = { key: concurrency.key, limit: concurrency.limit };
  return { definition };
}

/** The definitions read from one folder. */
interface CatalogState {
  common: Map<string, ResolvedWorkflow>;
  clients: Map<string, Map<string, ResolvedWorkflow>>;
  queues: string[];
}

async function listFolder(path: string): Promise<{ name: string; dir: boolean; file: boolean }[]> {
  const entries = await readdir(path, { withFileTypes: true });
  return entries
    .map((e) => ({ name: e.name, dir: e.isDirectory(), file: e.isFile() }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function readCatalogState(dir: string): Promise<CatalogState> {
  let top: { name: string; dir: boolean; file: boolean }[];
  try {
    top = await listFolder(dir);
  } catch (err) {
    throw new Error(`workflows folder ${dir} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  const bad: DefinitionFileProblems[] = [];
  const common = new Map<string, ResolvedWorkflow>();
  const clients = new Map<string, Map<string, ResolvedWorkflow>>();
  const queues = new Set<string>([DEFAULT_QUEUE]);

  const readGroup = async (
    folder: string,
    source: 'common' | 'client',
  ): Promise<Map<string, ResolvedWorkflow>> => {
    const out = new Map<string, ResolvedWorkflow>();
    const filesByName = new Map<string, string[]>();
    for (const entry of await listFolder(folder)) {
      if (!entry.file || !(DEFINITION_EXTENSIONS as readonly string[]).includes(extname(entry.name)))
        continue;
      const name = basename(entry.name, extname(entry.name));
      filesByName.set(name, [...(filesByName.get(name) ?? []), join(folder, entry.name)]);
    }
    for (const [name, files] of filesByName) {
      if (files.length > 1) {
        for (const file of files)
          bad.push({
            file,
            problems: [`workflow "${name}" is defined by more than one file: ${files.join(', ')}`],
          });
        continue;
      }
      const file = files[0]!;
      const loaded = await loadDefinitionFile(file, dir);
      if (loaded.problems) {
        bad.push({ file, problems: loaded.problems });
        continue;
      }
      for (const t of loaded.definition.tasks) queues.add(t.queue);
      out.set(name, { definition: loaded.definition, source, file });
    }
    return out;
  };

  for (const entry of top) {
    if (!entry.dir) continue;
    if (entry.name === 'common') {
      for (const [k, v] of await readGroup(join(dir, entry.name), 'common')) common.set(k, v);
    } else if (CLIENT_FOLDER_PATTERN.test(entry.name) && !RESERVED_FOLDERS.has(entry.name)) {
      clients.set(entry.name, await readGroup(join(dir, entry.name), 'client'));
    }
  }
  if (bad.length > 0) throw new WorkflowCatalogError(dir, bad);
  return { common, clients, queues: [...queues].sort() };
}

class FolderCatalog implements WorkflowCatalog {
  private reloading: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<() => void | Promise<void>>();
  constructor(
    readonly dir: string,
    private state: CatalogState,
  ) {}

  resolve(client: string, name: string): ResolvedWorkflow | null {
    return this.state.clients.get(client)?.get(name) ?? this.state.common.get(name) ?? null;
  }

  list(client: string): ResolvedWorkflow[] {
    const merged = new Map(this.state.common);
    for (const [name, wf] of this.state.clients.get(client) ?? []) merged.set(name, wf);
    return [...merged.values()].sort((a, b) =>
      a.definition.name < b.definition.name ? -1 : a.definition.name > b.definition.name ? 1 : 0,
    );
  }

  queues(): string[] {
    return [...this.state.queues];
  }

  reload(): Promise<void> {
    // Reloads run one after another; each swaps the set only when every file is good.
    const next = this.reloading.then(async () => {
      this.state = await readCatalogState(this.dir);
      for (const listener of [...this.listeners]) {
        try {
          await listener();
        } catch {
          // A listener logs its own errors; the new set stays in use either way.
        }
      }
    });
    this.reloading = next.catch(() => undefined);
    return next;
  }

  onReload(listener: () => void | Promise<void>): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }
}

/**
 * Loads every workflow definition under `dir`.
 * @param dir - the workflows folder (`TASK_ENGINE_WORKFLOWS_DIR`); made absolute.
 * @returns the catalog; `reload()` re-reads the folder and keeps the old set when anything is bad.
 * @throws WorkflowCatalogError naming every bad file and its problems; Error when `dir` cannot be read.
 */
export async function loadCatalog(dir: string): Promise<WorkflowCatalog> {
  const absolute = resolve(dir);
  return new FolderCatalog(absolute, await readCatalogState(absolute));
}

/**
 * Reloads `catalog` whenever the process receives `signal` (default SIGHUP), logging the outcome;
 * a failed reload keeps the old set and logs every problem.
 * @returns a function that removes the listener.
 */
export function reloadOnSignal(
  catalog: WorkflowCatalog,
  logger: Logger,
  signal: NodeJS.Signals = 'SIGHUP',
): () => void {
  const onSignal = (): void => {
    catalog.reload().then(
      () =>
        logger.info(
          { dir: catalog.dir, queues: catalog.queues() },
          `workflow definitions reloaded on ${signal}`,
        ),
      (err: unknown) =>
        logger.error(
          { err, dir: catalog.dir },
          `workflow reload on ${signal} failed; the previous definitions stay in use`,
        ),
    );
  };
  process.on(signal, onSignal);
  return () => {
    process.off(signal, onSignal);
  };
}
