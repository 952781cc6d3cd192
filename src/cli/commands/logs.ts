/** `task-engine logs <job id> [--follow]`: prints a job's log from a running engine. */
import type { Command } from 'commander';
import {
  addConnectionOptions,
  callApi,
  resolveConnection,
  type ApiConnection,
  type ConnectionOptions,
} from '../http-client.js';
import { CliError, type CliIO } from '../io.js';

/** A log entry as the API gives it. */
interface LogEntry {
  id: number;
  severity_description: string;
  progname: string;
  message: string;
  created_at: string;
  task_id: number;
}

/** Formats one entry as one line: time, severity, progname, task, message. */
export function formatLogLine(e: LogEntry): string {
  const task = e.task_id ? ` task ${e.task_id}` : '';
  return `${e.created_at}  ${e.severity_description.padEnd(5)}  ${e.progname}${task}: ${e.message}`;
}

/** Interval between polls of `--follow`, in milliseconds. */
export const FOLLOW_POLL_MS = 1000;

const FINAL = new Set(['completed', 'broken']);

/**
 * Prints the job's log; then, until the job has ended, polls for new entries.
 * Stops on SIGINT/SIGTERM. Prints the job's final state at the end.
 */
export async function followLogs(
  io: CliIO,
  conn: ApiConnection,
  jobId: number,
  opts: { showAll: boolean; follow?: boolean },
): Promise<void> {
  const follow = opts.follow ?? true;
  let last = 0;
  let stopped = false;
  const off = io.onSignal(['SIGINT', 'SIGTERM'], () => {
    stopped = true;
  });
  try {
    for (;;) {
      // Read the state first: entries written before the job ended are then all in the next read.
      const job = follow
        ? await callApi<{ queue_state: string; failed: boolean }>(conn, 'GET', `/jobs/${jobId}`)
        : null;
      const entries = await callApi<LogEntry[]>(
        conn,
        'GET',
        `/logs/${jobId}${opts.showAll ? '?show_all=1' : ''}`,
      );
      for (const e of entries) {
        if (e.id <= last) continue;
        io.out(formatLogLine(e));
        last = e.id;
      }
      if (!job) return;
      if (FINAL.has(job.queue_state)) {
        io.out(
          `job ${jobId} ${job.queue_state}${job.queue_state === 'completed' ? (job.failed ? ' (failed)' : ' (succeeded)') : ''}`,
        );
        return;
      }
      if (stopped) return;
      await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
      if (stopped) return;
    }
  } finally {
    off();
  }
}

/** Registers `logs`. */
export function registerLogsCommand(program: Command, io: CliIO): void {
  addConnectionOptions(
    program
      .command('logs <job-id>')
      .description("print a job's log")
      .option('-f, --follow', 'keep printing new entries until the job ends')
      .option('-a, --all', 'include DEBUG entries (show_all=1)')
      .option('--json', 'print the entries as JSON (no --follow)'),
  ).action(
    async (idText: string, opts: ConnectionOptions & { follow?: boolean; all?: boolean; json?: boolean }) => {
      if (!/^\d+$/.test(idText))
        throw new CliError(`job id must be a positive whole number (got ${JSON.stringify(idText)})`, 2);
      const conn = await resolveConnection(io, opts);
      if (opts.json) {
        io.out(JSON.stringify(await callApi(conn, 'GET', `/logs/${idText}${opts.all ? '?show_all=1' : ''}`)));
        return;
      }
      await followLogs(io, conn, Number(idText), {
        showAll: opts.all === true,
        follow: opts.follow === true,
      });
    },
  );
}
