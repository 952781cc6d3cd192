/**
 * `task-engine worker`: a process that only runs tasks (and delivers callbacks) against a shared
 * PostgreSQL server. Start as many as needed, on any machine.
 */
import type { Command } from 'commander';
import { loadConfig } from '../../config/load-config.js';
import { startTaskEngine } from '../../server.js';
import { CliError, type CliIO } from '../io.js';
import { describeStart, envWith, runUntilSignal } from './serve.js';

/** Registers `worker`. */
export function registerWorkerCommand(program: Command, io: CliIO): void {
  program
    .command('worker')
    .description('run task workers only (needs DATABASE_URL: workers share a PostgreSQL server)')
    .option(
      '--queues <list>',
      'comma-separated queues to take (TASK_ENGINE_WORKER_QUEUES; default every queue)',
    )
    .option('--concurrency <n>', 'tasks run at once (TASK_ENGINE_WORKER_CONCURRENCY; default 4)')
    .action(async (opts: { queues?: string; concurrency?: string }) => {
      const config = loadConfig(
        envWith(io.env, {
          TASK_ENGINE_ROLES: 'worker',
          TASK_ENGINE_WORKER_QUEUES: opts.queues,
          TASK_ENGINE_WORKER_CONCURRENCY: opts.concurrency,
        }),
      );
      if (!config.databaseUrl)
        throw new CliError(
          'task-engine worker needs DATABASE_URL: separate worker processes share a PostgreSQL server (the embedded database belongs to one process; `task-engine serve` runs workers itself)',
          2,
        );
      const running = await startTaskEngine(config, { purpose: 'task-engine worker' });
      describeStart(io, config, running);
      await runUntilSignal(io, running);
    });
}
