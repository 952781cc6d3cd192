/**
 * `task-engine clients add <name> [--admin] | list | revoke <name> | rotate-secret <name>
 * [--no-keep-previous] | end-rotation <name>`.
 *
 * Without `--url` the command opens the database itself (PostgreSQL with DATABASE_URL, else the
 * embedded data folder — refused while a running engine holds that folder). With `--url` it asks a
 * running engine over the API as an admin client (`--client`, `--api-key`).
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { loadConfig } from '../../config/load-config.js';
import {
  createClient,
  endSigningSecretOverlap,
  listClients,
  revokeClient,
  rotateSigningSecret,
  type ClientRecord,
  type CreatedClient,
} from '../../engine/clients/clients.js';
import { parseEgressRules } from '../../engine/egress/rules.js';
import type { Executor } from '../../store/executor.js';
import { putClientStorage, removeClientStorage, showClientStorage } from '../../storage/client-storage.js';
import { DataDirInUseError } from '../../data-dir-lock.js';
import { openConfiguredStore } from '../../server.js';
import { addConnectionOptions, callApi, resolveConnection, type ConnectionOptions } from '../http-client.js';
import { CliError, type CliIO } from '../io.js';
import { printTable } from '../table.js';

interface ClientsOptions extends ConnectionOptions {
  json?: boolean;
}

/** A client as the API's JSON gives it (timestamps as strings). */
type ClientRow = Omit<ClientRecord, 'created_at' | 'updated_at' | 'revoked_at'> & {
  created_at: string | Date;
  updated_at: string | Date;
  revoked_at: string | Date | null;
};

async function withStore<T>(io: CliIO, purpose: string, fn: (db: Executor) => Promise<T>): Promise<T> {
  const config = loadConfig(io.env);
  let opened: Awaited<ReturnType<typeof openConfiguredStore>>;
  try {
    opened = await openConfiguredStore(config, purpose);
  } catch (err) {
    if (!(err instanceof DataDirInUseError)) throw err;
    const url = err.holder.url ?? '<its URL>';
    throw new CliError(
      `${err.message}\nTo manage clients through the running engine, use its API as an admin client: ` +
        `task-engine ${purpose.replace(/^task-engine /, '')} … --url ${url} --client <admin client> --api-key <key>`,
    );
  }
  const { db, lock } = opened;
  try {
    return await fn(db);
  } finally {
    await db.close();
    await lock?.release();
  }
}

function iso(v: string | Date | null): string {
  if (v === null) return '-';
  return typeof v === 'string' ? v : v.toISOString();
}

function printCreated(io: CliIO, c: CreatedClient, json: boolean | undefined): void {
  if (json) {
    io.out(JSON.stringify(c));
    return;
  }
  io.out(`client "${c.name}" added${c.admin ? ' (admin)' : ''}. These are shown only once:`);
  io.out(`  api_key:        ${c.api_key}`);
  io.out(`  signing_secret: ${c.signing_secret}`);
}

/** Registers `clients` and its sub-commands. */
export function registerClientsCommand(program: Command, io: CliIO): void {
  const clients = program
    .command('clients')
    .description('manage API clients (add, list, revoke, rotate-secret, end-rotation)');

  addConnectionOptions(
    clients
      .command('add <name>')
      .description('add a client and print its API key and signing secret (once)')
      .option('--admin', 'the client may manage clients, settings and schedules')
      .option('--json', 'print JSON'),
  ).action(async (name: string, opts: ClientsOptions & { admin?: boolean }) => {
    const created = opts.url
      ? await callApi<CreatedClient>(await resolveConnection(io, opts), 'POST', '/clients', {
          name,
          admin: opts.admin === true,
        })
      : await withStore(io, 'task-engine clients add', (db) =>
          createClient(db, { name, admin: opts.admin === true }),
        );
    printCreated(io, created, opts.json);
  });

  addConnectionOptions(
    clients.command('list').description('list clients (no secrets)').option('--json', 'print JSON'),
  ).action(async (opts: ClientsOptions) => {
    const rows: ClientRow[] = opts.url
      ? await callApi<ClientRow[]>(await resolveConnection(io, opts), 'GET', '/clients')
      : await withStore(io, 'task-engine clients list', (db) => listClients(db));
    if (opts.json) {
      io.out(JSON.stringify(rows));
      return;
    }
    printTable(
      io,
      ['NAME', 'ADMIN', 'KEY', 'CREATED', 'REVOKED'],
      rows.map((r) => [r.name, r.admin, `…${r.api_key_last4}`, iso(r.created_at), iso(r.revoked_at)]),
      { empty: '(no clients)' },
    );
  });

  addConnectionOptions(
    clients
      .command('revoke <name>')
      .description('revoke a client: its key stops working at once')
      .option('--json', 'print JSON'),
  ).action(async (name: string, opts: ClientsOptions) => {
    const row: ClientRow = opts.url
      ? (
          await callApi<{ client: ClientRow }>(
            await resolveConnection(io, opts),
            'DELETE',
            `/clients/${encodeURIComponent(name)}`,
          )
        ).client
      : await withStore(io, 'task-engine clients revoke', (db) => revokeClient(db, name));
    io.out(opts.json ? JSON.stringify(row) : `client "${row.name}" revoked at ${iso(row.revoked_at)}`);
  });

  addConnectionOptions(
    clients
      .command('rotate-secret <name>')
      .description(
        "give a client a new callback signing secret (printed once); the old one keeps signing until 'end-rotation'",
      )
      .option('--no-keep-previous', 'drop the old secret at once (a leaked secret)')
      .option('--json', 'print JSON'),
  ).action(async (name: string, opts: ClientsOptions & { keepPrevious: boolean }) => {
    const rotated = opts.url
      ? await callApi<{ name: string; signing_secret: string; previous_valid: boolean }>(
          await resolveConnection(io, opts),
          'POST',
          `/clients/${encodeURIComponent(name)}/signing-secret`,
          { keep_previous: opts.keepPrevious },
        )
      : await withStore(io, 'task-engine clients rotate-secret', (db) =>
          rotateSigningSecret(db, name, { keepPrevious: opts.keepPrevious }),
        );
    if (opts.json) {
      io.out(JSON.stringify(rotated));
      return;
    }
    io.out(`client "${rotated.name}" has a new signing secret. It is shown only once:`);
    io.out(`  signing_secret: ${rotated.signing_secret}`);
    io.out(
      rotated.previous_valid
        ? `Callbacks are signed with the new and the previous secret until: task-engine clients end-rotation ${rotated.name}`
        : 'The previous secret no longer signs callbacks.',
    );
  });

  addConnectionOptions(
    clients
      .command('end-rotation <name>')
      .description("stop signing a client's callbacks with its previous secret")
      .option('--json', 'print JSON'),
  ).action(async (name: string, opts: ClientsOptions) => {
    const dropped = opts.url
      ? (
          await callApi<{ dropped: boolean }>(
            await resolveConnection(io, opts),
            'DELETE',
            `/clients/${encodeURIComponent(name)}/signing-secret/previous`,
          )
        ).dropped
      : await withStore(io, 'task-engine clients end-rotation', (db) => endSigningSecretOverlap(db, name));
    io.out(
      opts.json
        ? JSON.stringify({ result: 'ok', dropped })
        : dropped
          ? `client "${name}": the previous signing secret no longer signs callbacks`
          : `client "${name}" had no previous signing secret`,
    );
  });
  registerStorageCommands(clients, io);
}

interface StorageOptions extends ClientsOptions {
  file?: string;
}

/**
 * `clients storage set <name> <kind> --file <settings.json>`, `clients storage show <name>` and
 * `clients storage remove <name> <kind>`: a client's s3 / azure_blob storage (docs/storage.md).
 * Credentials are read from the file (not the command line, where other users of the host could
 * see them in the process list) and never printed.
 */
function registerStorageCommands(clients: Command, io: CliIO): void {
  const storage = clients.command('storage').description("a client's object storage (s3, azure_blob)");
  addConnectionOptions(
    storage
      .command('set <name> <kind>')
      .description('configure s3 or azure_blob storage from a JSON file (fields: docs/storage.md)')
      .requiredOption('--file <path>', 'JSON file with the settings and credentials')
      .option('--json', 'print JSON'),
  ).action(async (name: string, kind: string, opts: StorageOptions) => {
    let body: unknown;
    try {
      body = JSON.parse(await readFile(opts.file!, 'utf8'));
    } catch (err) {
      throw new CliError(`--file ${opts.file}: not a readable JSON file (${(err as Error).message})`, 2);
    }
    const saved = opts.url
      ? await callApi<{ kind: string; settings: Record<string, unknown> }>(
          await resolveConnection(io, opts),
          'PUT',
          `/clients/${encodeURIComponent(name)}/storage/${encodeURIComponent(kind)}`,
          body,
        )
      : await withStore(io, 'task-engine clients storage set', async (db) => {
          const config = loadConfig(io.env);
          if (!(await listClients(db)).some((c) => c.name === name && !c.revoked_at))
            throw new CliError(`no active client named ${JSON.stringify(name)}`);
          return putClientStorage(db, parseEgressRules(config.egress), name, kind, body, new Date());
        });
    if (opts.json) return io.out(JSON.stringify(saved, null, 2));
    io.out(`client "${name}": ${saved.kind} storage set (${JSON.stringify(saved.settings)})`);
  });
  addConnectionOptions(
    storage
      .command('show <name>')
      .description("a client's configured storage, without credentials")
      .option('--json', 'print JSON'),
  ).action(async (name: string, opts: StorageOptions) => {
    const shown = opts.url
      ? (
          await callApi<{ storage: Record<string, unknown> }>(
            await resolveConnection(io, opts),
            'GET',
            `/clients/${encodeURIComponent(name)}/storage`,
          )
        ).storage
      : await withStore(io, 'task-engine clients storage show', (db) => showClientStorage(db, name));
    if (opts.json) return io.out(JSON.stringify(shown, null, 2));
    const kinds = Object.keys(shown);
    if (!kinds.length) return io.out(`client "${name}" has no object storage configured (local only)`);
    for (const k of kinds) io.out(`${k}: ${JSON.stringify(shown[k])}`);
  });
  addConnectionOptions(
    storage.command('remove <name> <kind>').description("remove a client's s3 or azure_blob storage"),
  ).action(async (name: string, kind: string, opts: StorageOptions) => {
    const removed = opts.url
      ? (await callApi(
          await resolveConnection(io, opts),
          'DELETE',
          `/clients/${encodeURIComponent(name)}/storage/${encodeURIComponent(kind)}`,
        ),
        true)
      : await withStore(io, 'task-engine clients storage remove', (db) =>
          removeClientStorage(db, name, kind),
        );
    if (!removed) throw new CliError(`client "${name}" has no ${kind} storage configured`);
    io.out(`client "${name}": ${kind} storage removed`);
  });
}
