/**
 * The `task-engine` command line as a real process, for tests: `runCli` runs a command to its end,
 * `startCli` starts a long-running one (`serve`, `worker`) and collects its output. Both run
 * `node --import tsx src/cli/main.ts` from the repository root with {@link cleanEnv}; started
 * processes are watched by the leak guard until they exit.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { trackRunning } from './leak-guard.js';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The CLI entry point. */
export const MAIN = path.join(ROOT, 'src/cli/main.ts');

/** The environment without the caller's engine settings (`TASK_ENGINE_*`, `DATABASE_URL`), plus `extra`. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('TASK_ENGINE_') && k !== 'DATABASE_URL') env[k] = v;
  return { ...env, TASK_ENGINE_LOG_LEVEL: 'warn', ...extra };
}

/** A CLI run that has ended. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A CLI process that is running: its output so far, and a promise of its exit code. */
export interface CliProcess {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
}

/** Starts `task-engine <args>` with {@link cleanEnv}`(env)`. Stop it (or let it end) before the file ends. */
export function startCli(args: string[], env: Record<string, string>): CliProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    env: cleanEnv(env),
  });
  const untrack = trackRunning(
    'child process',
    `task-engine ${args.join(' ')} (pid ${child.pid})`,
    () => {
      child.kill('SIGKILL');
    },
    child.pid,
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      untrack();
      resolve(code);
    }),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Runs `task-engine <args>` to completion; kills it and rejects after `timeoutMs`. */
export async function runCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 120_000,
): Promise<CliRun> {
  const p = startCli(args, env);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      p.child.kill('SIGKILL');
      reject(new Error(`task-engine ${args.join(' ')} did not finish: ${p.stdout()}${p.stderr()}`));
    }, timeoutMs);
  });
  try {
    const code = await Promise.race([p.exited, timedOut]);
    return { code, stdout: p.stdout(), stderr: p.stderr() };
  } finally {
    clearTimeout(timer);
  }
}
