/**
 * The `task-engine` command line (SPEC section 14): builds the commander program and runs it.
 * Kept apart from `main.ts` so that tests can run commands in-process with their own I/O.
 */
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/load-config.js';
import { DataDirInUseError } from '../data-dir-lock.js';
import { EngineError } from '../errors/catalogue.js';
import { registerClientsCommand } from './commands/clients.js';
import { registerDoctorCommand } from './commands/doctor.js';
import { registerDemoCommand } from './commands/demo/index.js';
import { registerControlCommands } from './commands/control.js';
import { registerJobCommands } from './commands/job.js';
import { registerJobsCommand } from './commands/jobs.js';
import { registerLogsCommand } from './commands/logs.js';
import { registerMigrateCommand } from './commands/migrate.js';
import { registerRetryCommand } from './commands/retry.js';
import { registerSchedulesCommand } from './commands/schedules.js';
import { registerServeCommand } from './commands/serve.js';
import { registerSettingsCommand } from './commands/settings.js';
import { registerStatusCommands } from './commands/status.js';
import { registerSubmitCommand } from './commands/submit.js';
import { registerWhyCommand } from './commands/why.js';
import { registerWorkerCommand } from './commands/worker.js';
import { registerWorkflowsCommand } from './commands/workflows.js';
import { CliError, CliExit, type CliIO } from './io.js';

/** Exit code for bad configuration or usage. */
export const EXIT_USAGE = 2;

/** Builds the program with every command registered. */
export function buildProgram(io: CliIO, version: string): Command {
  const program = new Command('task-engine')
    .description('Task Engine: a job and workflow engine with a REST API')
    .version(version)
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, '')),
      writeErr: (s) => io.err(s.replace(/\n$/, '')),
    });
  registerServeCommand(program, io);
  registerWorkerCommand(program, io);
  registerMigrateCommand(program, io);
  registerClientsCommand(program, io);
  registerSubmitCommand(program, io);
  registerJobsCommand(program, io);
  registerJobCommands(program, io);
  registerControlCommands(program, io);
  registerRetryCommand(program, io);
  registerLogsCommand(program, io);
  registerWorkflowsCommand(program, io);
  registerStatusCommands(program, io);
  registerSettingsCommand(program, io);
  registerSchedulesCommand(program, io);
  registerDemoCommand(program, io);
  registerWhyCommand(program, io);
  registerDoctorCommand(program, io);
  for (const cmd of program.commands) cmd.exitOverride().showHelpAfterError();
  return program;
}

/**
 * Runs the command line `argv` (as `process.argv`: node, script, args…).
 * @returns the exit code: 0 success, 1 failure, 2 bad configuration or usage.
 */
export async function runCli(argv: string[], io: CliIO, version: string): Promise<number> {
  const program = buildProgram(io, version);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_USAGE;
    if (err instanceof CliExit) return err.exitCode;
    if (err instanceof ConfigError) {
      io.err('task-engine: invalid configuration:');
      for (const p of err.problems) io.err(`  - ${p}`);
      return EXIT_USAGE;
    }
    if (err instanceof CliError) {
      io.err(`task-engine: ${err.message}`);
      return err.exitCode;
    }
    if (err instanceof DataDirInUseError || err instanceof EngineError) {
      io.err(`task-engine: ${err.message}`);
      return 1;
    }
    io.err(`task-engine: ${err instanceof Error ? err.message : String(err)}`);
    if (err instanceof Error && err.stack && io.env.TASK_ENGINE_LOG_LEVEL === 'debug') io.err(err.stack);
    return 1;
  }
}
