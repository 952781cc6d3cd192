/**
 * `task-engine why <id>`: why a job is not running — its `waiting` from `GET /jobs/<id>` (reason
 * code, sentence, place in the queue, estimated start) — or that it waits for nothing.
 */
import type { Command } from 'commander';
import { addConnectionOptions, callApi, resolveConnection, type ConnectionOptions } from '../http-client.js';
import { CliError, type CliIO } from '../io.js';

interface WhyOptions extends ConnectionOptions {
  json?: boolean;
}

/** The parts of `GET /jobs/<id>` this command shows. */
interface JobWaiting {
  id: number;
  queue_state: string;
  failed: boolean;
  waiting: {
    reason: string;
    detail: string;
    position: number | null;
    ahead: number | null;
    estimated_start_at: string | null;
    task?: string;
  } | null;
}

/** The lines `why` prints for a job. Pure; exported for tests. */
export function whyLines(job: JobWaiting): string[] {
  const w = job.waiting;
  if (!w) {
    const state = job.queue_state === 'completed' && job.failed ? 'completed (failed)' : job.queue_state;
    return [`job ${job.id} is ${state}: it waits for nothing`];
  }
  const lines = [`job ${job.id} is ${job.queue_state}: ${w.reason}`, `  ${w.detail}`];
  if (w.task !== undefined) lines.push(`  task: ${w.task}`);
  if (w.position !== null) lines.push(`  position: ${w.position}`);
  if (w.ahead !== null) lines.push(`  ahead: ${w.ahead} job${w.ahead === 1 ? '' : 's'} start before it`);
  lines.push(`  estimated start: ${w.estimated_start_at ?? 'unknown (no basis yet)'}`);
  return lines;
}

/** Registers `why`. */
export function registerWhyCommand(program: Command, io: CliIO): void {
  addConnectionOptions(
    program
      .command('why <id>')
      .description(
        'say why a job is not running (its waiting reason, place in the queue and estimated start)',
      )
      .option('--json', 'print the waiting object as JSON'),
  ).action(async (idText: string, opts: WhyOptions) => {
    if (!/^[1-9]\d*$/.test(idText))
      throw new CliError(`<id> must be a job id such as 42 (got "${idText}")`, 2);
    const conn = await resolveConnection(io, opts);
    const job = await callApi<JobWaiting>(conn, 'GET', `/jobs/${idText}`);
    if (opts.json) io.out(JSON.stringify(job.waiting ?? null, null, 2));
    else for (const line of whyLines(job)) io.out(line);
  });
}
