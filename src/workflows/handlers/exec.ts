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
 * - `progress` (`lines` | `ffmpeg` | `none`, default `lines`): how the program reports progress on
 *   stdout. `lines`: lines `::progress 0.42 optional message` (or `42%`); `ffmpeg`: those, and
 *   FFmpeg's `-progress pipe:1` blocks, as a fraction of `progress_duration` (seconds; omitted = the
 *   `Duration:` FFmpeg prints on stderr). Progress lines are taken out of the output and the log
 *   (`exec-progress.ts`). `none`: stdout is left alone.
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
 *
 * Beside it: `exec-inputs.ts` checks the inputs, `exec-process.ts` spawns and stops the program,
 * `exec-output.ts` captures its output and builds the result, `exec-progress.ts` reads progress
 * lines; `exec-limits.ts` holds the limits.
 */
import type { HandlerContext } from '../types.js';
import { readExecInputs } from './exec-inputs.js';
import { EXEC_LIMITS, type ExecOutput } from './exec-limits.js';
import { OutputCapture } from './exec-output.js';
import { execProgress } from './exec-progress.js';
import { runProgram } from './exec-process.js';
import { abortError } from './inputs.js';

export { EXEC_LIMITS, type ExecOutput };

/** Inputs `exec` accepts. `command` is required. */
export const EXEC_INPUTS = [
  'command',
  'args',
  'cwd',
  'env',
  'output',
  'progress',
  'progress_duration',
] as const;

/**
 * Runs `inputs.command` with `inputs.args` (see the module comment for every input).
 * @returns {@link ExecOutput}.
 * @throws PermanentTaskError for bad inputs, a missing or non-executable command, or a bad `cwd`;
 *   Error when the program exits non-zero or is killed (message with the exit code or signal and
 *   the tail of stderr), when `output: json` gets stdout that is not JSON, or when `ctx.signal` aborts.
 */
export async function execHandler(ctx: HandlerContext): Promise<ExecOutput> {
  const { signal } = ctx;
  const inputs = await readExecInputs(ctx);
  const { command, args, cwd } = inputs;
  if (signal.aborted) throw abortError(signal, `command "${command}"`);

  ctx.log(`exec: ${JSON.stringify([command, ...args])} in ${cwd}`, 0);
  const progress = execProgress(ctx, inputs.progress, inputs.progressDuration);
  const capture = new OutputCapture(ctx, inputs.outputMode, progress);
  const { ended, aborted } = await runProgram(ctx, inputs, capture);
  capture.flush();
  if (aborted) throw abortError(signal, `command "${command}"`);
  return capture.result(command, ended);
}
