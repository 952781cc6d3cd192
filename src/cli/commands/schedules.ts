/**
 * `task-engine schedules add <name> | rm <name> | list | on <name> | off <name>`: schedules of a
 * running engine, over its API (`POST /schedules`, `DELETE /schedules/<name>`, `GET /schedules`,
 * `PUT /scheduler`) as the given client.
 */
import type { Command } from 'commander';
import { addConnectionOptions, callApi, resolveConnection, type ConnectionOptions } from '../http-client.js';
import { CliError, type CliIO } from '../io.js';
import { printTable } from '../table.js';
import { parseParam } from './submit.js';

interface AddOptions extends ConnectionOptions {
  cron: string;
  workflow: string;
  timezone?: string;
  param: string[];
  priority?: string;
  overlap?: string;
  catchUp?: string;
  description?: string;
  json?: boolean;
}

/** A schedule as `GET /schedules` lists it (maintenance or user). */
interface ListedSchedule {
  class: string;
  every?: [number, unknown];
  cron?: string;
  timezone?: string;
  workflow?: string;
  active: boolean;
  last_run_at: string | null;
  next_run_at: string | null;
}

/** Registers `schedules` and its sub-commands. */
export function registerSchedulesCommand(program: Command, io: CliIO): void {
  const schedules = program
    .command('schedules')
    .description('schedules: submit a workflow on a cron expression (add, rm, list, on, off)');

  addConnectionOptions(
    schedules
      .command('add <name>')
      .description('add a schedule that submits <workflow> on every slot of <cron>')
      .requiredOption('--cron <expression>', 'cron: 5 fields, or 6 with seconds first, e.g. "30 2 * * *"')
      .requiredOption('--workflow <name>', 'the workflow to submit')
      .option('--timezone <zone>', 'IANA time zone of the cron expression (default UTC)')
      .option(
        '-p, --param <key=value>',
        'a parameter: key=value (string) or key:=<JSON>; repeatable',
        (v: string, acc: string[]) => [...acc, v],
        [],
      )
      .option('--priority <1-10>', 'priority of the jobs, 1 most urgent (default 5)')
      .option('--overlap <skip|allow>', 'skip: no run while the previous one is unfinished (default skip)')
      .option('--catch-up <none|latest|all>', 'slots missed while no engine ran (default latest)')
      .option('--description <text>', 'shown by schedules list')
      .option('--json', 'print JSON'),
  ).action(async (name: string, opts: AddOptions) => {
    const parameters: Record<string, unknown> = {};
    for (const p of opts.param) parseParam(p, parameters);
    const body: Record<string, unknown> = { name, cron: opts.cron, workflow: opts.workflow, parameters };
    if (opts.timezone !== undefined) body.timezone = opts.timezone;
    if (opts.priority !== undefined) body.priority = opts.priority;
    if (opts.overlap !== undefined) body.overlap = opts.overlap;
    if (opts.catchUp !== undefined) body.catch_up = opts.catchUp;
    if (opts.description !== undefined) body.description = opts.description;
    const reply = await callApi<{ name: string; schedule: ListedSchedule }>(
      await resolveConnection(io, opts),
      'POST',
      '/schedules',
      body,
    );
    io.out(
      opts.json
        ? JSON.stringify(reply)
        : `schedule "${reply.name}" added; next run at ${reply.schedule.next_run_at ?? '-'}`,
    );
  });

  addConnectionOptions(
    schedules
      .command('rm <name>')
      .description('delete a user schedule (its jobs stay)')
      .option('--json', 'print JSON'),
  ).action(async (name: string, opts: ConnectionOptions & { json?: boolean }) => {
    const reply = await callApi<{ deleted: string }>(
      await resolveConnection(io, opts),
      'DELETE',
      `/schedules/${encodeURIComponent(name)}`,
    );
    io.out(opts.json ? JSON.stringify(reply) : `schedule "${reply.deleted}" deleted`);
  });

  addConnectionOptions(
    schedules
      .command('list')
      .description('list every schedule this client sees')
      .option('--json', 'print the API reply (GET /schedules)'),
  ).action(async (opts: ConnectionOptions & { json?: boolean }) => {
    const reply = await callApi<{ schedules: Record<string, ListedSchedule> }>(
      await resolveConnection(io, opts),
      'GET',
      '/schedules',
    );
    if (!reply || typeof reply.schedules !== 'object') throw new CliError('GET /schedules: unexpected reply');
    if (opts.json) {
      io.out(JSON.stringify(reply));
      return;
    }
    printTable(
      io,
      ['NAME', 'ACTIVE', 'WHEN', 'WORKFLOW', 'NEXT RUN', 'LAST RUN'],
      Object.entries(reply.schedules).map(([name, s]) => [
        name,
        s.active,
        s.cron !== undefined ? `${s.cron} (${s.timezone ?? 'UTC'})` : `every ${s.every?.[0] ?? '?'} s`,
        s.workflow ?? `(${s.class})`,
        s.next_run_at,
        s.last_run_at,
      ]),
      { empty: '(no schedules)' },
    );
  });

  for (const [name, active] of [
    ['on', true],
    ['off', false],
  ] as const)
    addConnectionOptions(
      schedules
        .command(`${name} <name>`)
        .description(
          `admins: switch a schedule ${name} (maintenance or user schedule; the switch survives restarts)`,
        )
        .option('--json', 'print the API reply'),
    ).action(async (schedule: string, opts: ConnectionOptions & { json?: boolean }) => {
      const reply = await callApi<{ schedules: string[] }>(
        await resolveConnection(io, opts),
        'PUT',
        '/scheduler',
        { schedule, active },
      );
      io.out(
        opts.json
          ? JSON.stringify(reply)
          : `schedule "${schedule}" switched ${name}; active: ${reply.schedules.join(', ') || '(none)'}`,
      );
    });
}
