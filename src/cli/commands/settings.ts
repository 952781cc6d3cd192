/**
 * `task-engine settings get [name] | set <name> <value>`: the engine's settings (`GET /settings`;
 * `POST /settings`, admins). The engine checks a value (`max_jobs` >= 1, `priority_slots` <=
 * `max_jobs` …) and its refusal is printed as its message.
 */
import type { Command } from 'commander';
import {
  addConnectionOptions,
  callApi,
  printJson,
  resolveConnection,
  type ConnectionOptions,
} from '../http-client.js';
import { CliError, type CliIO } from '../io.js';
import { printTable } from '../table.js';

interface SettingsOptions extends ConnectionOptions {
  json?: boolean;
}

/** Registers `settings` and its sub-commands. */
export function registerSettingsCommand(program: Command, io: CliIO): void {
  const settings = program.command('settings').description("read or change the engine's settings (get, set)");

  addConnectionOptions(
    settings
      .command('get [name]')
      .description('every setting with its value; with a name, only its value')
      .option('--json', 'print the API reply (GET /settings); with a name, {"name", "setting"}'),
  ).action(async (name: string | undefined, opts: SettingsOptions) => {
    const reply = await callApi<{ settings: Record<string, number | string> }>(
      await resolveConnection(io, opts),
      'GET',
      '/settings',
    );
    if (name !== undefined) {
      if (!Object.prototype.hasOwnProperty.call(reply.settings, name))
        throw new CliError(
          `no setting named "${name}"; the settings are: ${Object.keys(reply.settings).join(', ')}`,
        );
      const value = reply.settings[name]!;
      if (opts.json) printJson(io, { name, setting: value });
      else io.out(String(value));
      return;
    }
    if (opts.json) return printJson(io, reply);
    printTable(
      io,
      ['NAME', 'VALUE'],
      Object.entries(reply.settings).map(([k, v]) => [k, v]),
    );
  });

  addConnectionOptions(
    settings
      .command('set <name> <value>')
      .description('admins: create or change a setting; it takes effect at once')
      .option('--json', 'print the API reply'),
  ).action(async (name: string, value: string, opts: SettingsOptions) => {
    const reply = await callApi<{ result: string; message: string }>(
      await resolveConnection(io, opts),
      'POST',
      '/settings',
      { name, setting: value },
    );
    if (opts.json) printJson(io, reply);
    else io.out(reply.message);
  });
}
