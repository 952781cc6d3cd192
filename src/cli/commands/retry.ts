/**
 * `task-engine retry <id>`: retries a failed or broken job from the tasks that did not succeed
 * (`POST /jobs/<id>/retry`). Changed parameters: `--param key=value` or `--param key:=<JSON>`,
 * repeatable, as for `submit`.
 */
import type { Command } from 'commander';
import { addConnectionOptions, callApi, resolveConnection, type ConnectionOptions } from '../http-client.js';
import { CliError, type CliIO } from '../io.js';
import { followJobToExit } from '../follow/follow-job.js';
import { parseParam } from './submit.js';

interface RetryOptions extends ConnectionOptions {
  param: string[];
  follow?: boolean;
  plain?: boolean;
}

/** Registers `retry`. */
export function registerRetryCommand(program: Command, io: CliIO): void {
  addConnectionOptions(
    program
      .command('retry <id>')
      .description('retry a failed or broken job from the tasks that did not succeed')
      .option(
        '-p, --param <key=value>',
        'a parameter to change: key=value (string) or key:=<JSON>; repeatable',
        (v: string, acc: string[]) => [...acc, v],
        [],
      )
      .option(
        '-f, --follow',
        'then show the job live (a progress bar per task, its log) until it ends; exit 0 only when it completed without failure',
      )
      .option('--plain', 'with --follow: plain lines even on a terminal'),
  ).action(async (idText: string, opts: RetryOptions) => {
    if (!/^[1-9]\d*$/.test(idText))
      throw new CliError(`<id> must be a job id such as 42 (got "${idText}")`, 2);
    const conn = await resolveConnection(io, opts);
    const parameters: Record<string, unknown> = {};
    for (const p of opts.param) parseParam(p, parameters);
    const body = opts.param.length > 0 ? { parameters } : {};
    const reply = await callApi<{ id: number; result: string }>(conn, 'POST', `/jobs/${idText}/retry`, body);
    io.out(`job ${reply.id} ${reply.result} for retry`);
    if (opts.follow)
      await followJobToExit(io, conn, reply.id, { showAll: false, plain: opts.plain === true });
  });
}
