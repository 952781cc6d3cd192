/**
 * The `exec` built-in handler (SPEC section 12): runs one program with an argv array, never
 * through a shell, so no template value can become shell syntax.
 *
 * Inputs:
 * - `command` (string, required): a program name looked up in `PATH`, or a path to one.
 * - `args` (array of strings, numbers or booleans): the arguments, passed as they are.
 * - `cwd` (string): working folder. Omitted = the attempt's scratch folder (`ctx.workdir`). A
 *   relative path is taken inside `ctx.workdir`; an absolute one must lie inside `ctx.workdir` or
 *   the client's storage root (`{{ storage.root }}/…`). It must exist.
 * - `env` (object of name → string/number/boolean, or null to remove): merged over a minimal
 *   environment: `PATH`, `LANG`, `TZ` (from the engine process when set), `HOME` and `TMPDIR` (the
 *   scratch folder), and `TASK_ENGINE_JOB_ID`, `TASK_ENGINE_TASK_ID`, `TASK_ENGINE_TASK_NAME`,
 *   `TASK_ENGINE_ATTEMPT`, `TASK_ENGINE_WORKDIR`, `TASK_ENGINE_STORAGE_ROOT`. Nothing else of the
 *   engine's environment (database URL, keys) reaches the program.
 * - `output` (`text` | `json`, default `text`): with `json`, stdout is parsed as JSON into `json`.
 *
 * Output: `{ exit_code, stdout, stderr, json? }`; `stdout` and `stderr` keep the last
 * {@link EXEC_LIMITS}.captureBytes of each stream. Each output line is also written to the job log
 * (stderr lines prefixed `stderr: `), up to `logLines` lines / `logBytes` bytes per attempt, then
 * one `output truncated` line.
 *
 * Process handling: the program runs in its own process group. When `ctx.signal` aborts (job
 * broken, timeout, shutdown) the whole group gets SIGTERM, then SIGKILL after `killGraceMs`
 * (10 s, SPEC section 5.3), so grandchildren stop too. When the program exits on its own, any
 * process it left behind in its group is killed. While it runs, the group is listed in the host's
 * child process registry (`src/process/child-registry.ts`), so that if the engine process dies
 * the next engine process on this host kills the group before the attempt is retried.
 */
import { spawn } from 'node:child_process';
import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { PermanentTaskError } from '../../errors/task-errors.js';
import { trackChild, untrackChild } from '../../process/child-registry.js';
import type { HandlerContext } from '../types.js';
import { abortError, isPlainObject } from './inputs.js';

/** Inputs `exec` accepts. `command` is required. */
export const EXEC_INPUTS = ['command', 'args', 'cwd', 'env', 'output'] as const;

/**
 * Limits of the `exec` handler. A mutable object so tests can shorten the kill delay; the engine
 * never changes it.
 */
export const EXEC_LIMITS = {
  /** Delay between SIGTERM and SIGKILL after an abort, in ms (SPEC: 10 s). */
  killGraceMs: 10_000,
  /** Bytes of each stream kept (the tail) in the task output. */
  captureBytes: 64 * 1024,
  /** Largest stdout parsed with `output: json`, in bytes. */
  jsonBytes: 8 * 1024 * 1024,
  /** Output lines written to the job log per attempt. */
  logLines: 1000,
  /** Output bytes written to the job log per attempt. */
  logBytes: 256 * 1024,
  /** Longest single log line in characters; longer lines are logged in pieces of this size. */
  lineBytes: 8 * 1024,
  /** After the program exits, how long to wait for its streams to close before killing leftovers, in ms. */
  exitDrainMs: 2_000,
};

/** What `exec` returns. */
export interface ExecOutput {
  exit_code: number;
  stdout: string;
  stderr: string;
  json?: unknown;
}

/** Keeps the last `limit` bytes written to it. */
class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  constructor(private readonly limit: number) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size > this.limit * 2) this.compact();
  }
  private compact(): void {
    const all = Buffer.concat(this.chunks);
    if (all.length > this.limit) this.truncated = true;
    const kept = all.subarray(Math.max(0, all.length - this.limit));
    this.chunks = [kept];
    this.size = kept.length;
  }
  text(): string {
    this.compact();
    const s = (this.chunks[0] ?? Buffer.alloc(0)).toString('utf8');
    // A cut in the middle of a UTF-8 sequence decodes as U+FFFD at the start: drop it.
    return this.truncated ? s.replace(/^\uFFFD+/, '') : s;
  }
}

/** Splits a byte stream into lines and hands them on, within the per-attempt log budget. */
class LineLogger {
  private readonly decoders = new Map<string, StringDecoder>();
  private readonly partial = new Map<string, string>();
  private lines = 0;
  private bytes = 0;
  private stopped = false;
  constructor(private readonly ctx: HandlerContext) {}

  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    if (this.stopped) return;
    let decoder = this.decoders.get(stream);
    if (!decoder) this.decoders.set(stream, (decoder = new StringDecoder('utf8')));
    let text = (this.partial.get(stream) ?? '') + decoder.write(chunk);
    let nl: number;
    while ((nl = text.indexOf('\n')) >= 0 && !this.stopped) {
      this.emit(stream, text.slice(0, nl));
      text = text.slice(nl + 1);
    }
    // A very long line without a newline is logged in pieces rather than held forever.
    while (text.length > EXEC_LIMITS.lineBytes && !this.stopped) {
      this.emit(stream, text.slice(0, EXEC_LIMITS.lineBytes));
      text = text.slice(EXEC_LIMITS.lineBytes);
    }
    this.partial.set(stream, text);
  }

  flush(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = (this.partial.get(stream) ?? '') + (this.decoders.get(stream)?.end() ?? '');
      if (rest.length > 0) this.emit(stream, rest);
      this.partial.set(stream, '');
    }
  }

  private emit(stream: 'stdout' | 'stderr', raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    // A long line is logged in pieces of `lineBytes`, the same whether its newline arrived in the
    // same read or a later one (the split must not depend on how the pipe chunked the output).
    let i = 0;
    do {
      this.emitPiece(stream, line.slice(i, i + EXEC_LIMITS.lineBytes));
      i += EXEC_LIMITS.lineBytes;
    } while (i < line.length && !this.stopped);
  }

  private emitPiece(stream: 'stdout' | 'stderr', cut: string): void {
    if (this.stopped) return;
    const size = Buffer.byteLength(cut) + 1;
    if (this.lines + 1 > EXEC_LIMITS.logLines || this.bytes + size > EXEC_LIMITS.logBytes) {
      this.stopped = true;
      this.ctx.log(
        `output truncated: more than ${EXEC_LIMITS.logLines} lines or ${Math.round(EXEC_LIMITS.logBytes / 1024)} KiB; the rest is not logged (the task output keeps the last ${Math.round(EXEC_LIMITS.captureBytes / 1024)} KiB of each stream)`,
        2,
      );
      return;
    }
    this.lines += 1;
    this.bytes += size;
    this.ctx.log(stream === 'stderr' ? `stderr: ${cut}` : cut, 1);
  }
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

function tail(text: string, chars: number): string {
  const t = text.trimEnd();
  return t.length > chars ? `…${t.slice(t.length - chars)}` : t;
}

/** Sends `signal` to the process group led by `pid`; a group that is gone is not an error. */
function killGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `inputs.command` with `inputs.args` (see the module comment for every input).
 * @returns {@link ExecOutput}.
 * @throws PermanentTaskError for bad inputs, a missing or non-executable command, or a bad `cwd`;
 *   Error when the program exits non-zero or is killed (message with the exit code or signal and
 *   the tail of stderr), when `output: json` gets stdout that is not JSON, or when `ctx.signal` aborts.
 */
export async function execHandler(ctx: HandlerContext): Promise<ExecOutput> {
  const { inputs, signal } = ctx;
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
  const cwd = await resolveCwd(ctx, inputs.cwd);
  const env = buildEnv(ctx, inputs.env);
  if (signal.aborted) throw abortError(signal, `command "${command}"`);

  ctx.log(`exec: ${JSON.stringify([command, ...args])} in ${cwd}`, 0);
  const stdoutTail = new TailBuffer(EXEC_LIMITS.captureBytes);
  const stderrTail = new TailBuffer(EXEC_LIMITS.captureBytes);
  const jsonChunks: Buffer[] = [];
  let jsonBytes = 0;
  let jsonOverflow = false;
  const lines = new LineLogger(ctx);

  const child = spawn(command, args, {
    cwd,
    env,
    shell: false,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    windowsHide: true,
  });
  if (child.pid !== undefined) {
    const { problem } = trackChild(child.pid);
    if (problem)
      ctx.log(
        `exec: the child process registry is not usable (${problem}); if the engine process dies, this program is not stopped`,
        2,
      );
  }

  let aborted = false;
  let killTimer: NodeJS.Timeout | undefined;
  let drainTimer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    if (aborted || child.pid === undefined) return;
    aborted = true;
    killGroup(child.pid, 'SIGTERM');
    const pid = child.pid;
    killTimer = setTimeout(() => {
      killGroup(pid, 'SIGKILL');
      untrackChild(pid);
    }, EXEC_LIMITS.killGraceMs);
    killTimer.unref();
  };

  child.stdout.on('data', (chunk: Buffer) => {
    stdoutTail.push(chunk);
    if (outputMode === 'json' && !jsonOverflow) {
      jsonBytes += chunk.length;
      if (jsonBytes > EXEC_LIMITS.jsonBytes) jsonOverflow = true;
      else jsonChunks.push(chunk);
    }
    lines.write('stdout', chunk);
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderrTail.push(chunk);
    lines.write('stderr', chunk);
  });

  type Ended = { code: number | null; signal: NodeJS.Signals | null };
  let ended: Ended;
  try {
    ended = await new Promise<Ended>((resolvePromise, reject) => {
      let exit: Ended | undefined;
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (child.pid !== undefined) return; // errors after a successful spawn end in 'close'
        if (err.code === 'ENOENT')
          reject(
            new PermanentTaskError(`exec: command "${command}" was not found (PATH=${env.PATH ?? ''})`, {
              cause: err,
            }),
          );
        else if (err.code === 'EACCES')
          reject(new PermanentTaskError(`exec: command "${command}" is not executable`, { cause: err }));
        else reject(new Error(`exec: command "${command}" could not start: ${err.message}`, { cause: err }));
      });
      child.once('spawn', () => {
        signal.addEventListener('abort', onAbort, { once: true });
        if (signal.aborted) onAbort();
      });
      child.once('exit', (code, sig) => {
        exit = { code, signal: sig };
        // A process left behind that still holds our pipes keeps 'close' from firing: after a
        // short drain, kill what is left of the group (an abort has its own SIGKILL timer).
        if (!aborted && child.pid !== undefined) {
          const pid = child.pid;
          drainTimer = setTimeout(() => {
            killGroup(pid, 'SIGKILL');
            child.stdout.destroy();
            child.stderr.destroy();
          }, EXEC_LIMITS.exitDrainMs);
        }
      });
      child.once('close', (code, sig) => resolvePromise(exit ?? { code, signal: sig }));
    });
  } finally {
    signal.removeEventListener('abort', onAbort);
    if (drainTimer) clearTimeout(drainTimer);
  }
  if (child.pid !== undefined) {
    // Leftovers in the group (they closed their stdio) do not outlive the task.
    // The registry record goes once nothing of the group is left (after an abort, the kill timer
    // removes it when the group outlives the program).
    if (!aborted) {
      killGroup(child.pid, 'SIGKILL');
      untrackChild(child.pid);
    } else if (!killGroup(child.pid, 0)) {
      if (killTimer) clearTimeout(killTimer);
      untrackChild(child.pid);
    }
  }
  lines.flush();

  const stdout = stdoutTail.text();
  const stderr = stderrTail.text();
  if (aborted) throw abortError(signal, `command "${command}"`);
  if (ended.code !== 0) {
    const how =
      ended.code === null
        ? `was killed by signal ${ended.signal ?? 'unknown'}`
        : `exited with code ${ended.code}`;
    const detail = tail(stderr, 2000) || tail(stdout, 500);
    const err = new Error(`exec: command "${command}" ${how}${detail ? `: ${detail}` : ''}`);
    (err as Error & { output?: ExecOutput }).output = { exit_code: ended.code ?? -1, stdout, stderr };
    throw err;
  }
  const output: ExecOutput = { exit_code: 0, stdout, stderr };
  if (outputMode === 'json') {
    if (jsonOverflow)
      throw new Error(
        `exec: command "${command}" printed more than ${EXEC_LIMITS.jsonBytes} bytes; too much to parse as JSON`,
      );
    const text = Buffer.concat(jsonChunks).toString('utf8');
    try {
      output.json = JSON.parse(text);
    } catch (err) {
      throw new Error(
        `exec: command "${command}" printed stdout that is not JSON (${(err as Error).message}): ${tail(text, 300)}`,
        {
          cause: err,
        },
      );
    }
  }
  return output;
}
