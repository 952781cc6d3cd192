/**
 * Spawning and stopping the program of the `exec` handler. The program runs in its own process
 * group, listed in the host's child process registry while it runs; an abort sends SIGTERM to
 * the group, then SIGKILL after {@link EXEC_LIMITS}.killGraceMs; once the program has exited on
 * its own, whatever it left in its group is killed.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { PermanentTaskError } from '../../errors/task-errors.js';
import { trackChild, untrackChild } from '../../process/child-registry.js';
import type { HandlerContext } from '../types.js';
import { EXEC_LIMITS } from './exec-limits.js';
import type { ExecInputs } from './exec-inputs.js';
import type { ProgramEnd } from './exec-output.js';

/** Where the program's output goes, chunk by chunk. */
export interface OutputSink {
  stdout(chunk: Buffer): void;
  stderr(chunk: Buffer): void;
}

/** How a run ended: the program's end, and whether `ctx.signal` stopped it. */
export interface ProgramRun {
  ended: ProgramEnd;
  aborted: boolean;
}

type Child = ChildProcessByStdio<null, Readable, Readable>;

/** Sends `signal` to the process group led by `pid`; a group that is gone is not an error. */
export function killGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs the program until its streams close, stopping its group when `ctx.signal` aborts.
 * @throws PermanentTaskError when the command is missing or not executable; Error when it could
 *   not start for another reason.
 */
export async function runProgram(
  ctx: HandlerContext,
  program: Pick<ExecInputs, 'command' | 'args' | 'cwd' | 'env'>,
  sink: OutputSink,
): Promise<ProgramRun> {
  const { signal } = ctx;
  const child = spawn(program.command, program.args, {
    cwd: program.cwd,
    env: program.env,
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
  const stopper = groupStopper(child);
  child.stdout.on('data', (chunk: Buffer) => sink.stdout(chunk));
  child.stderr.on('data', (chunk: Buffer) => sink.stderr(chunk));

  let ended: ProgramEnd;
  let drainTimer: NodeJS.Timeout | undefined;
  try {
    ended = await new Promise<ProgramEnd>((resolvePromise, reject) => {
      let exit: ProgramEnd | undefined;
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (child.pid !== undefined) return; // errors after a successful spawn end in 'close'
        reject(startError(program, err));
      });
      child.once('spawn', () => {
        signal.addEventListener('abort', stopper.onAbort, { once: true });
        if (signal.aborted) stopper.onAbort();
      });
      child.once('exit', (code, sig) => {
        exit = { code, signal: sig };
        // A process left behind that still holds our pipes keeps 'close' from firing: after a
        // short drain, kill what is left of the group (an abort has its own SIGKILL timer).
        if (!stopper.aborted && child.pid !== undefined) {
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
    signal.removeEventListener('abort', stopper.onAbort);
    if (drainTimer) clearTimeout(drainTimer);
  }
  stopper.afterClose();
  return { ended, aborted: stopper.aborted };
}

/** The error for a program that could not start. */
function startError(program: Pick<ExecInputs, 'command' | 'env'>, err: NodeJS.ErrnoException): Error {
  const { command } = program;
  if (err.code === 'ENOENT')
    return new PermanentTaskError(
      `exec: command "${command}" was not found (PATH=${program.env.PATH ?? ''})`,
      {
        cause: err,
      },
    );
  if (err.code === 'EACCES')
    return new PermanentTaskError(`exec: command "${command}" is not executable`, { cause: err });
  return new Error(`exec: command "${command}" could not start: ${err.message}`, { cause: err });
}

/** Stopping the child's process group: on abort, and once its streams have closed. */
function groupStopper(child: Child): {
  readonly aborted: boolean;
  onAbort: () => void;
  afterClose: () => void;
} {
  let aborted = false;
  let killTimer: NodeJS.Timeout | undefined;
  return {
    get aborted() {
      return aborted;
    },
    onAbort: (): void => {
      if (aborted || child.pid === undefined) return;
      aborted = true;
      killGroup(child.pid, 'SIGTERM');
      const pid = child.pid;
      killTimer = setTimeout(() => {
        killGroup(pid, 'SIGKILL');
        untrackChild(pid);
      }, EXEC_LIMITS.killGraceMs);
      killTimer.unref();
    },
    afterClose: (): void => {
      if (child.pid === undefined) return;
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
    },
  };
}
