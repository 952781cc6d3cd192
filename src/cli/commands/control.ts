/**
 * Changing a job of a running engine: `pause`, `resume`, `break` and `priority` (`PATCH /jobs/<id>`
 * with `queue_state` paused / queued / broken, or `priority`), `update` (any other field of that
 * PATCH: `persist`, `run_at`, `semaphore_url`, `top_of_queue`) and `rerun` (`POST
 * /jobs/<id>/rerun`, a new job). A change the job's state forbids is the API's 409, printed as its
 * message with exit code 1.
 */
import type { Command } from 'commander';
import { followJobToExit } from '../follow/follow-job.js';
import {
  addConnectionOptions,
  callApi,
  jobIdArgument,
  printJson,
  resolveConnection,
  type ConnectionOptions,
} from '../http-client.js';
import { CliError, type CliIO } from '../io.js';

interface ChangeOptions extends ConnectionOptions {
  json?: boolean;
}

/** `PATCH /jobs/<id>` with `body`; prints the API's `result` (or its JSON). */
async function patch(io: CliIO, idText: string, opts: ChangeOptions, body: Record<string, unknown>) {
  const id = jobIdArgument(idText);
  const reply = await callApi<{ id: number; result: string }>(
    await resolveConnection(io, opts),
    'PATCH',
    `/jobs/${id}`,
    body,
  );
  if (opts.json) printJson(io, reply);
  else io.out(`job ${reply.id}: ${reply.result}`);
}

/**
 * Reads `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`).
 * @throws {CliError} (exit 2) naming the option.
 */
export function parseBoolean(option: string, text: string): boolean {
  const v = text.trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(v)) return true;
  if (['false', 'no', 'off', '0'].includes(v)) return false;
  throw new CliError(`${option} takes true or false (got ${JSON.stringify(text)})`, 2);
}

const STATE_CHANGES: [name: string, queueState: string, description: string][] = [
  ['pause', 'paused', 'pause a queued, scheduled, pending or started job (running tasks finish)'],
  ['resume', 'queued', 'resume a paused job, or make a scheduled or pending job due now'],
  ['break', 'broken', 'break a job: cancel its running tasks; it does not run again unless retried'],
];

/** Registers `pause`, `resume`, `break`, `priority`, `update` and `rerun`. */
export function registerControlCommands(program: Command, io: CliIO): void {
  for (const [name, queueState, description] of STATE_CHANGES)
    addConnectionOptions(
      program.command(`${name} <id>`).description(description).option('--json', 'print the API reply'),
    ).action((idText: string, opts: ChangeOptions) => patch(io, idText, opts, { queue_state: queueState }));

  addConnectionOptions(
    program
      .command('priority <id> <priority>')
      .description('change the priority of a job that has not ended: 1 most urgent … 10')
      .option('--json', 'print the API reply'),
  ).action((idText: string, priority: string, opts: ChangeOptions) => {
    if (!/^\d+$/.test(priority))
      throw new CliError(
        `<priority> must be a whole number from 1 to 10 (got ${JSON.stringify(priority)})`,
        2,
      );
    return patch(io, idText, opts, { priority: Number(priority) });
  });

  addConnectionOptions(
    program
      .command('update <id>')
      .description('change other fields of a job (PATCH /jobs/<id>); give at least one option')
      .option('--persist <true|false>', 'keep the job out of the clean-up, or not')
      .option('--top-of-queue <true|false>', 'admit before every other queued job, or not')
      .option(
        '--run-at <time>',
        'when a scheduled, pending or queued job runs, e.g. 2030-01-01T10:00:00 (UTC)',
      )
      .option('--semaphore-url <url>', 'wait until this URL answers 2xx/3xx; "" removes the semaphore')
      .option('--json', 'print the API reply'),
  ).action(
    (
      idText: string,
      opts: ChangeOptions & { persist?: string; topOfQueue?: string; runAt?: string; semaphoreUrl?: string },
    ) => {
      const body: Record<string, unknown> = {};
      if (opts.persist !== undefined) body.persist = parseBoolean('--persist', opts.persist);
      if (opts.topOfQueue !== undefined) body.top_of_queue = parseBoolean('--top-of-queue', opts.topOfQueue);
      if (opts.runAt !== undefined) body.run_at = opts.runAt;
      if (opts.semaphoreUrl !== undefined)
        body.semaphore_url = opts.semaphoreUrl === '' ? null : opts.semaphoreUrl;
      if (Object.keys(body).length === 0)
        throw new CliError('give at least one of --persist, --top-of-queue, --run-at, --semaphore-url', 2);
      return patch(io, idText, opts, body);
    },
  );

  addConnectionOptions(
    program
      .command('rerun <id>')
      .description('run a job again as a new job with the same parameters (the original becomes broken)')
      .option(
        '-f, --follow',
        'then show the new job live until it ends; exit 0 only when it completed without failure',
      )
      .option('--plain', 'with --follow: plain lines even on a terminal')
      .option('--json', 'print the API reply'),
  ).action(async (idText: string, opts: ChangeOptions & { follow?: boolean; plain?: boolean }) => {
    const id = jobIdArgument(idText);
    const conn = await resolveConnection(io, opts);
    const reply = await callApi<{ id: number; result: string }>(conn, 'POST', `/jobs/${id}/rerun`);
    if (opts.json) printJson(io, reply);
    else io.out(`job ${id} rerun as job ${reply.id} (${reply.result})`);
    if (opts.follow)
      await followJobToExit(io, conn, reply.id, {
        showAll: false,
        plain: opts.plain === true,
        json: opts.json === true,
      });
  });
}
