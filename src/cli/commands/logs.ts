/** `task-engine logs <job id> [--follow]`: prints a job's log from a running engine. */
import type { Command } from 'commander';
import { formatLogLine, type LogEntry } from '../follow/displays.js';
import { followJobToExit } from '../follow/follow-job.js';
import {
  addConnectionOptions,
  callApi,
  jobIdArgument,
  printJson,
  resolveConnection,
  type ConnectionOptions,
} from '../http-client.js';
import type { CliIO } from '../io.js';

export { formatLogLine } from '../follow/displays.js';

interface LogsOptions extends ConnectionOptions {
  follow?: boolean;
  all?: boolean;
  json?: boolean;
  plain?: boolean;
}

/** Registers `logs`. */
export function registerLogsCommand(program: Command, io: CliIO): void {
  addConnectionOptions(
    program
      .command('logs <job-id>')
      .description("print a job's log")
      .option(
        '-f, --follow',
        'then show the job live (a progress bar per task, new entries) until it ends; exit 0 only when it completed without failure',
      )
      .option('-a, --all', 'include DEBUG entries (show_all=1)')
      .option('--json', 'print the entries as JSON: an array, or with --follow one entry per line')
      .option('--plain', 'with --follow: plain lines even on a terminal'),
  ).action(async (idText: string, opts: LogsOptions) => {
    const id = jobIdArgument(idText, '<job-id>');
    const conn = await resolveConnection(io, opts);
    if (opts.follow) {
      await followJobToExit(io, conn, id, {
        showAll: opts.all === true,
        json: opts.json === true,
        plain: opts.plain === true,
      });
      return;
    }
    const entries = await callApi<LogEntry[]>(conn, 'GET', `/logs/${id}${opts.all ? '?show_all=1' : ''}`);
    if (opts.json) printJson(io, entries);
    else for (const e of entries) io.out(formatLogLine(e));
  });
}
