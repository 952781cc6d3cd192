/**
 * Finds the handler a task's `run` names (SPEC section 12): a built-in (`exec`, `http`, `sleep`,
 * `fail`) or a module handler, a file relative to the workflows folder whose default export is
 * `async (ctx: HandlerContext) => output`.
 *
 * Module handlers may be `.js`, `.mjs` or `.ts`. A `.js`/`.mjs` file is imported natively. A `.ts`
 * file is imported natively when a TypeScript loader is already active (development and tests run
 * under `tsx`), and otherwise through tsx's ESM API (`tsImport`), so `.ts` handlers also work when
 * the engine runs from its compiled `dist/` (tsx is a runtime dependency). Modules are cached per
 * file and modification time here; a worker pool keeps what it resolved per `run` for its whole
 * life (`createHandlerLoader`), so an edited handler takes effect when the worker restarts.
 */
import { realpath, stat } from 'node:fs/promises';
import { extname, isAbsolute, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PermanentTaskError } from '../../errors/task-errors.js';
import type { TaskHandler } from '../types.js';
import { EXEC_INPUTS, execHandler } from './exec.js';
import { FAIL_INPUTS, failHandler } from './fail.js';
import { HTTP_INPUTS, httpHandler } from './http.js';
import { SLEEP_INPUTS, sleepHandler } from './sleep.js';

/** Names of the built-in handlers. */
export const BUILTIN_HANDLER_NAMES = ['exec', 'http', 'sleep', 'fail'] as const;
/** One of {@link BUILTIN_HANDLER_NAMES}. */
export type BuiltinHandlerName = (typeof BUILTIN_HANDLER_NAMES)[number];

/** The built-in handlers by name. */
export const BUILTIN_HANDLERS: Readonly<Record<BuiltinHandlerName, TaskHandler>> = {
  exec: execHandler,
  http: httpHandler,
  sleep: sleepHandler,
  fail: failHandler,
};

/** The `with` keys each built-in accepts and requires; checked when definitions load. */
export const BUILTIN_INPUTS: Readonly<
  Record<BuiltinHandlerName, { accepted: readonly string[]; required: readonly string[] }>
> = {
  exec: { accepted: EXEC_INPUTS, required: ['command'] },
  http: { accepted: HTTP_INPUTS, required: ['url'] },
  sleep: { accepted: SLEEP_INPUTS, required: ['seconds'] },
  fail: { accepted: FAIL_INPUTS, required: [] },
};

/** File extensions a module handler may have. */
export const MODULE_HANDLER_EXTENSIONS = ['.ts', '.js', '.mjs'] as const;

/** True when `run` names a built-in handler. */
export function isBuiltinHandler(run: string): run is BuiltinHandlerName {
  return (BUILTIN_HANDLER_NAMES as readonly string[]).includes(run);
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/**
 * Resolves a module handler's `run` path against the workflows folder and checks it.
 * @returns `{ file }` (absolute, symlinks resolved) or `{ problem }` saying what is wrong and what
 *   is accepted: not relative, wrong extension, outside the folder (also through a symlink), missing.
 */
export async function locateModuleHandler(
  run: string,
  workflowsDir: string,
): Promise<{ file: string; problem?: undefined } | { file?: undefined; problem: string }> {
  const accepted = `a built-in handler (${BUILTIN_HANDLER_NAMES.join(', ')}) or a module path relative to the workflows folder ending in ${MODULE_HANDLER_EXTENSIONS.join(', ')}`;
  if (run.includes('\0') || run.includes('\\'))
    return { problem: `run "${run}" holds a backslash or NUL; it must be ${accepted}` };
  if (!(MODULE_HANDLER_EXTENSIONS as readonly string[]).includes(extname(run)))
    return { problem: `run "${run}" is not ${accepted}` };
  if (isAbsolute(run))
    return { problem: `run "${run}" is an absolute path; it must be relative to the workflows folder` };
  let root: string;
  try {
    root = await realpath(workflowsDir);
  } catch {
    return { problem: `workflows folder ${workflowsDir} does not exist` };
  }
  const candidate = resolve(root, run);
  if (!isInside(candidate, root)) return { problem: `run "${run}" points outside the workflows folder` };
  let file: string;
  try {
    file = await realpath(candidate);
  } catch {
    return { problem: `run "${run}": module file ${candidate} does not exist` };
  }
  if (!isInside(file, root))
    return { problem: `run "${run}" leads outside the workflows folder through a symlink` };
  if (!(await stat(file)).isFile()) return { problem: `run "${run}": ${file} is not a file` };
  return { file };
}

const moduleCache = new Map<string, { version: string; handler: Promise<TaskHandler> }>();

async function importModule(file: string, version: string): Promise<unknown> {
  const url = `${pathToFileURL(file).href}?v=${encodeURIComponent(version)}`;
  try {
    return await import(url);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (extname(file) !== '.ts' || code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
  }
  // No TypeScript loader in this process (running from dist/): load through tsx's scoped API.
  const { tsImport } = await import('tsx/esm/api');
  return (await tsImport(url, import.meta.url)) as unknown;
}

async function loadModuleHandler(file: string, run: string, version: string): Promise<TaskHandler> {
  let mod: unknown;
  try {
    mod = await importModule(file, version);
  } catch (err) {
    throw new PermanentTaskError(`module handler "${run}" could not be loaded: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let fn = (mod as { default?: unknown }).default;
  // A CommonJS-style `module.exports = { default }` arrives one level deeper.
  if (fn !== null && typeof fn === 'object' && typeof (fn as { default?: unknown }).default === 'function')
    fn = (fn as { default: unknown }).default;
  if (typeof fn !== 'function')
    throw new PermanentTaskError(
      `module handler "${run}" has no default export function; write \`export default async function (ctx) { … }\``,
    );
  const handler = fn as (ctx: unknown) => unknown;
  return async (ctx) => await handler(ctx);
}

/**
 * The handler for a task's `run`.
 * @param run - a built-in name, or a module path relative to `workflowsDir`.
 * @param workflowsDir - the workflows folder (the catalog's `dir`).
 * @returns the handler; module handlers are cached per file and modification time.
 * @throws PermanentTaskError when `run` names no built-in and no usable module (missing file, path
 *   outside the folder, import failure, no default export function).
 */
export async function resolveHandler(run: string, workflowsDir: string): Promise<TaskHandler> {
  if (isBuiltinHandler(run)) return BUILTIN_HANDLERS[run];
  const located = await locateModuleHandler(run, workflowsDir);
  if (located.problem !== undefined) throw new PermanentTaskError(located.problem);
  const info = await stat(located.file);
  const version = `${info.mtimeMs}-${info.size}`;
  const cached = moduleCache.get(located.file);
  if (cached && cached.version === version) return cached.handler;
  const handler = loadModuleHandler(located.file, run, version);
  moduleCache.set(located.file, { version, handler });
  // A failed load is not cached: the next attempt tries again (the file may be fixed by then).
  handler.catch(() => {
    if (moduleCache.get(located.file)?.handler === handler) moduleCache.delete(located.file);
  });
  return handler;
}
