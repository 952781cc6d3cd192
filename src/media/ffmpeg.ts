/**
 * Locating and running FFmpeg and ffprobe.
 *
 * Location order (first hit wins), for each tool:
 * 1. `FFMPEG_PATH` / `FFPROBE_PATH` in the environment — must name an executable file, else an error
 *    names the variable (a wrong explicit setting is never silently replaced by another binary);
 * 2. `ffmpeg` / `ffprobe` on `PATH`;
 * 3. the static build shipped inside the npm packages `@ffmpeg-installer/ffmpeg` and
 *    `@ffprobe-installer/ffprobe`.
 * When none is found the error is a {@link PermanentTaskError} saying what to install: a missing
 * binary fails the task at once instead of being retried or hanging.
 *
 * Processes are started with an argv array (never a shell). An `AbortSignal` ends the process
 * (SIGTERM, then SIGKILL after a grace period, as SPEC 5.3 asks for broken jobs); FFmpeg runs with
 * `-nostats -progress pipe:1` and its key=value blocks are parsed (`ffmpeg-progress.ts`) so callers
 * can report the task's progress (`reportFfmpegProgress`). A running
 * tool is listed in the host's child process registry (`src/process/child-registry.ts`), so that
 * if the engine process dies the next engine process on this host kills it before the attempt is
 * retried — two FFmpeg processes never write the same outputs.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { PermanentTaskError } from '../errors/task-errors.js';
import { trackChild, untrackChild } from '../process/child-registry.js';
import { FfmpegProgressParser, type FfmpegProgress } from './ffmpeg-progress.js';

export { parseProgressBlock, type FfmpegProgress } from './ffmpeg-progress.js';

/** The two media tools. */
export type MediaTool = 'ffmpeg' | 'ffprobe';

const ENV_VAR: Record<MediaTool, string> = { ffmpeg: 'FFMPEG_PATH', ffprobe: 'FFPROBE_PATH' };
const NPM_PACKAGE: Record<MediaTool, string> = {
  ffmpeg: '@ffmpeg-installer/ffmpeg',
  ffprobe: '@ffprobe-installer/ffprobe',
};

const located = new Map<string, string>();

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findOnPath(name: string, pathVar: string | undefined): string | null {
  if (!pathVar) return null;
  const exts = process.platform === 'win32' ? ['.exe', ''] : [''];
  for (const dir of pathVar.split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const candidate = path.join(dir, name + ext);
      if (isExecutableFile(candidate)) return candidate;
    }
  }
  return null;
}

function findInPackage(tool: MediaTool): string | null {
  try {
    const require = createRequire(import.meta.url);
    const mod = require(NPM_PACKAGE[tool]) as { path?: unknown };
    return typeof mod.path === 'string' && isExecutableFile(mod.path) ? mod.path : null;
  } catch {
    // The package throws (a string or an Error) when its platform build is missing.
    return null;
  }
}

/**
 * The absolute path of `tool`, located as the module header describes; cached per environment.
 * @param env the environment to read `FFMPEG_PATH` / `FFPROBE_PATH` / `PATH` from (default `process.env`).
 * @throws PermanentTaskError when the tool cannot be found or `FFMPEG_PATH`/`FFPROBE_PATH` is not an executable.
 */
export function locateTool(tool: MediaTool, env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env[ENV_VAR[tool]];
  const cacheKey = `${tool}\0${explicit ?? ''}\0${env.PATH ?? ''}`;
  const cached = located.get(cacheKey);
  if (cached) return cached;
  let found: string | null;
  if (explicit) {
    if (!isExecutableFile(explicit))
      throw new PermanentTaskError(`${ENV_VAR[tool]} is set to ${explicit}, which is not an executable file`);
    found = explicit;
  } else {
    found = findOnPath(tool, env.PATH) ?? findInPackage(tool);
  }
  if (!found)
    throw new PermanentTaskError(
      `${tool} was not found: set ${ENV_VAR[tool]} to its path, put ${tool} on PATH, or install the npm package ${NPM_PACKAGE[tool]}`,
    );
  located.set(cacheKey, found);
  return found;
}

/** Shorthand for `locateTool('ffmpeg', env)`. */
export const locateFfmpeg = (env?: NodeJS.ProcessEnv): string => locateTool('ffmpeg', env);
/** Shorthand for `locateTool('ffprobe', env)`. */
export const locateFfprobe = (env?: NodeJS.ProcessEnv): string => locateTool('ffprobe', env);

/** Options of {@link runFfmpeg} and {@link runTool}. */
export interface RunToolOptions {
  /** Ends the process when aborted (SIGTERM, then SIGKILL after `killGraceMs`). */
  signal?: AbortSignal;
  cwd?: string;
  /** Grace between SIGTERM and SIGKILL, ms; default 10 000 (SPEC 5.3). */
  killGraceMs?: number;
  /** Environment to locate the tool in (default `process.env`). */
  env?: NodeJS.ProcessEnv;
}

/** Options of {@link runFfmpeg}. */
export interface RunFfmpegOptions extends RunToolOptions {
  /** Expected duration of the output in seconds; enables `percent` in progress reports. */
  durationSeconds?: number;
  /** Called for every progress block FFmpeg writes (about twice a second). */
  onProgress?: (progress: FfmpegProgress) => void;
}

/** What a finished tool run returns. */
export interface ToolResult {
  /** Everything the process wrote to stdout (for ffprobe: its JSON). Empty for ffmpeg runs. */
  stdout: string;
  /** The last 8 KiB of stderr. */
  stderrTail: string;
  /** Wall time of the run, ms. */
  elapsedMs: number;
}

/** A tool that ran and exited non-zero (retryable: the caller decides whether input is at fault). */
export class MediaToolError extends Error {
  constructor(
    message: string,
    readonly tool: MediaTool,
    readonly exitCode: number | null,
    readonly stderrTail: string,
  ) {
    super(message);
    this.name = 'MediaToolError';
  }
}

const STDERR_TAIL_BYTES = 8192;

/**
 * Runs `tool` with `args` (argv, no shell) and resolves when it exits 0.
 * @throws PermanentTaskError when the tool cannot be located;
 *   MediaToolError when it exits non-zero (message ends with the last stderr lines);
 *   the signal's reason (an AbortError) when aborted — the process is killed first.
 */
export function runTool(
  tool: MediaTool,
  args: string[],
  options: RunToolOptions & { onStdoutLine?: (line: string) => void; collectStdout?: boolean } = {},
): Promise<ToolResult> {
  const bin = locateTool(tool, options.env);
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  const started = Date.now();
  return new Promise<ToolResult>((resolve, reject) => {
    const child = spawn(bin, args, {
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: false,
      windowsHide: true,
    });
    // Not detached (the tool starts no processes of its own): the registry kills just this pid.
    const pid = child.pid;
    if (pid !== undefined) trackChild(pid, { group: false });
    let stdout = '';
    let stdoutPartial = '';
    let stderr = '';
    let killTimer: NodeJS.Timeout | undefined;
    let aborted = false;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      if (options.collectStdout) stdout += chunk;
      if (options.onStdoutLine) {
        stdoutPartial += chunk;
        let nl: number;
        while ((nl = stdoutPartial.indexOf('\n')) >= 0) {
          const line = stdoutPartial.slice(0, nl).replace(/\r$/, '');
          stdoutPartial = stdoutPartial.slice(nl + 1);
          options.onStdoutLine(line);
        }
      }
    });
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      if (stderr.length > STDERR_TAIL_BYTES * 2) stderr = stderr.slice(-STDERR_TAIL_BYTES);
    });
    const onAbort = (): void => {
      aborted = true;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), options.killGraceMs ?? 10_000);
      killTimer.unref();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(new MediaToolError(`${tool} could not be started (${bin}): ${err.message}`, tool, null, ''));
    });
    child.on('close', (code, sig) => {
      if (pid !== undefined) untrackChild(pid);
      signal?.removeEventListener('abort', onAbort);
      if (killTimer) clearTimeout(killTimer);
      const stderrTail = stderr.slice(-STDERR_TAIL_BYTES);
      if (aborted && signal) return reject(abortReason(signal));
      if (code === 0) return resolve({ stdout, stderrTail, elapsedMs: Date.now() - started });
      const lastLines = stderrTail.trim().split('\n').slice(-3).join(' | ');
      reject(
        new MediaToolError(
          `${tool} failed (${code === null ? `signal ${sig}` : `exit code ${code}`}): ${lastLines || 'no error output'}`,
          tool,
          code,
          stderrTail,
        ),
      );
    });
  });
}

function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error(typeof r === 'string' ? r : 'the operation was aborted');
  e.name = 'AbortError';
  return e;
}

/**
 * Runs FFmpeg with `args` (inputs, filters, outputs — without global flags, which are added:
 * `-hide_banner -nostdin -nostats -loglevel error -progress pipe:1 -y`).
 * @returns the run's stderr tail and wall time.
 * @throws as {@link runTool}.
 */
export function runFfmpeg(args: string[], options: RunFfmpegOptions = {}): Promise<ToolResult> {
  const { onProgress, durationSeconds } = options;
  const parser = new FfmpegProgressParser((p) => onProgress?.(p), durationSeconds);
  return runTool('ffmpeg', [...FFMPEG_GLOBAL_ARGS, ...args], {
    ...options,
    onStdoutLine: (line) => parser.line(line),
  });
}

/** Global flags {@link runFfmpeg} puts before the caller's arguments. */
export const FFMPEG_GLOBAL_ARGS: readonly string[] = [
  '-hide_banner',
  '-nostdin',
  '-nostats',
  '-loglevel',
  'error',
  '-progress',
  'pipe:1',
  '-y',
];

/**
 * Runs ffprobe with `args` and returns its stdout.
 * @throws as {@link runTool}.
 */
export async function runFfprobe(args: string[], options: RunToolOptions = {}): Promise<string> {
  const res = await runTool('ffprobe', ['-hide_banner', '-loglevel', 'error', ...args], {
    ...options,
    collectStdout: true,
  });
  return res.stdout;
}
