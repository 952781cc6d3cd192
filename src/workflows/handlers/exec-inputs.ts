/**
 * Reading and checking the inputs of the `exec` handler: `command`, `args`, `output`, `cwd` and
 * `env` (their rules are in the module comment of `exec.ts`). Every bad input is a
 * {@link PermanentTaskError}: retrying cannot fix it.
 */
import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { PermanentTaskError } from '../../errors/task-errors.js';
import type { HandlerContext } from '../types.js';
import { EXEC_PROGRESS_MODES, type ExecProgressMode } from './exec-progress.js';
import { isPlainObject, readSeconds } from './inputs.js';

/** The inputs of one `exec` call, checked and resolved. */
export interface ExecInputs {
  command: string;
  args: string[];
  outputMode: 'text' | 'json';
  /** How progress is read from stdout (`exec-progress.ts`). */
  progress: ExecProgressMode;
  /** Expected FFmpeg output duration for `progress: ffmpeg`, seconds; undefined = from FFmpeg's stderr. */
  progressDuration: number | undefined;
  /** The real path of the working folder. */
  cwd: string;
  env: Record<string, string>;
}

/**
 * Checks the inputs in the order `command`, `args`, `output`, `progress`, `progress_duration`,
 * `cwd`, `env` (the first bad one is reported) and resolves `cwd` and the environment.
 * @throws PermanentTaskError naming the bad input.
 */
export async function readExecInputs(ctx: HandlerContext): Promise<ExecInputs> {
  const { inputs } = ctx;
  const command = inputs.command;
  if (typeof command !== 'string' || command.trim() === '' || command.includes('\0'))
    throw new PermanentTaskError(
      `exec: input "command" is required: a program name or path (got ${JSON.stringify(command)})`,
    );
  const args = readArgs(inputs.args);
  const outputMode = inputs.output ?? 'text';
  if (outputMode !== 'text' && outputMode !== 'json')
    throw new PermanentTaskError(
      `exec: input "output" must be "text" or "json" (got ${JSON.stringify(outputMode)})`,
    );
  const progress = inputs.progress ?? 'lines';
  if (!(EXEC_PROGRESS_MODES as readonly unknown[]).includes(progress))
    throw new PermanentTaskError(
      `exec: input "progress" must be one of ${EXEC_PROGRESS_MODES.map((m) => `"${m}"`).join(', ')} (got ${JSON.stringify(progress)})`,
    );
  const rawDuration = inputs.progress_duration;
  const progressDuration =
    rawDuration === undefined || rawDuration === null
      ? undefined
      : readSeconds('exec', 'progress_duration', rawDuration);
  const cwd = await resolveCwd(ctx, inputs.cwd);
  const env = buildEnv(ctx, inputs.env);
  return {
    command,
    args,
    outputMode,
    progress: progress as ExecProgressMode,
    progressDuration,
    cwd,
    env,
  };
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

async function realOrSelf(p: string): Promise<string> {
  try {
    return await realpath(p);
  } catch {
    return p;
  }
}

/** Resolves and checks the `cwd` input. */
async function resolveCwd(ctx: HandlerContext, value: unknown): Promise<string> {
  if (value === undefined || value === null || value === '') return ctx.workdir;
  if (typeof value !== 'string' || value.includes('\0'))
    throw new PermanentTaskError(
      `exec: input "cwd" must be a folder path string (got ${JSON.stringify(value)})`,
    );
  const candidate = isAbsolute(value) ? resolve(value) : resolve(ctx.workdir, value);
  let real: string;
  try {
    real = await realpath(candidate);
  } catch {
    throw new PermanentTaskError(`exec: cwd "${value}" does not exist`);
  }
  const roots = [await realOrSelf(ctx.workdir), await realOrSelf(ctx.storage.root)];
  if (!roots.some((root) => isInside(real, root)))
    throw new PermanentTaskError(
      `exec: cwd "${value}" is outside the attempt's scratch folder and the client's storage root; use a relative path or {{ storage.root }}/…`,
    );
  if (!(await stat(real)).isDirectory()) throw new PermanentTaskError(`exec: cwd "${value}" is not a folder`);
  return real;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The minimal environment plus the `env` input. */
function buildEnv(ctx: HandlerContext, value: unknown): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    LANG: process.env.LANG ?? 'C.UTF-8',
    HOME: ctx.workdir,
    TMPDIR: ctx.workdir,
    TASK_ENGINE_JOB_ID: String(ctx.job.id),
    TASK_ENGINE_TASK_ID: String(ctx.task.id),
    TASK_ENGINE_TASK_NAME: ctx.task.name,
    TASK_ENGINE_ATTEMPT: String(ctx.attempt.number),
    TASK_ENGINE_WORKDIR: ctx.workdir,
    TASK_ENGINE_STORAGE_ROOT: ctx.storage.root,
  };
  if (process.env.TZ !== undefined) env.TZ = process.env.TZ;
  // Tracing on: the attempt span's W3C context, for programs that continue the trace.
  if (ctx.traceparent) env.TRACEPARENT = ctx.traceparent;
  if (value === undefined || value === null) return env;
  if (!isPlainObject(value))
    throw new PermanentTaskError(
      `exec: input "env" must be an object of NAME: value (got ${JSON.stringify(value)})`,
    );
  for (const [name, v] of Object.entries(value)) {
    if (!ENV_NAME.test(name))
      throw new PermanentTaskError(
        `exec: env name "${name}" is not accepted (letters, digits and _, not starting with a digit)`,
      );
    if (v === null) delete env[name];
    else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
      const s = String(v);
      if (s.includes('\0')) throw new PermanentTaskError(`exec: env ${name} holds a NUL character`);
      env[name] = s;
    } else throw new PermanentTaskError(`exec: env ${name} must be a string, number, boolean or null`);
  }
  return env;
}

function readArgs(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value))
    throw new PermanentTaskError(
      `exec: input "args" must be an array of strings (got ${JSON.stringify(value)})`,
    );
  return value.map((a, i) => {
    if (typeof a === 'string' || typeof a === 'number' || typeof a === 'boolean') {
      const s = String(a);
      if (s.includes('\0')) throw new PermanentTaskError(`exec: args[${i}] holds a NUL character`);
      return s;
    }
    throw new PermanentTaskError(
      `exec: args[${i}] must be a string, number or boolean (got ${a === null ? 'null: a template value may be missing' : typeof a})`,
    );
  });
}
