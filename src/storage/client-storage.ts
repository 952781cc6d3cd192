/**
 * Per-client object storage configuration (docs/storage.md) and the job parameters that pick a
 * back-end: `source_storage` and `destination_storage`, each `local`, `s3` or `azure_blob` (case
 * does not matter: the original product wrote `S3`); `destination_storage` defaults to
 * `source_storage`, which defaults to `local`.
 *
 * Settings are checked here; credentials are stored apart (`client_storage.secrets`, migration
 * 0013) and never returned by {@link showClientStorage} or put in a log line. An endpoint is
 * checked against the egress rules (`TASK_ENGINE_EGRESS`) when it is configured and each time a
 * job opens the storage.
 */
import { EngineError } from '../errors/catalogue.js';
import { PermanentTaskError } from '../errors/task-errors.js';
import { checkEgressUrl } from '../engine/egress/guarded-fetch.js';
import type { EgressPolicy } from '../engine/egress/rules.js';
import type { Queryable } from '../store/executor.js';
import type { TaskDefinition, WorkflowDefinition } from '../workflows/types.js';
import {
  deleteClientStorage,
  listClientStorage,
  selectClientStorage,
  upsertClientStorage,
} from '../store/queries/client-storage.js';
import {
  azureBackend,
  azureEndpoint,
  cleanPrefix,
  localBackend,
  s3Backend,
  STORAGE_KINDS,
  type AzureSecrets,
  type AzureSettings,
  type S3Secrets,
  type S3Settings,
  type StorageBackend,
  type StorageKind,
} from './backends.js';
import { checkStoragePath } from './storage.js';

/** Object storage kinds a client configures (`local` needs no configuration). */
export const REMOTE_KINDS = ['s3', 'azure_blob'] as const;
/** One of {@link REMOTE_KINDS}. */
export type RemoteKind = (typeof REMOTE_KINDS)[number];

const fail = (message: string): never => {
  throw new EngineError('VALIDATION_FAILED', message);
};

function str(body: Record<string, unknown>, name: string, required: boolean, max = 1024): string | undefined {
  const v = body[name];
  if (v === undefined || v === null) {
    if (required) fail(`${name} is required (a non-empty string)`);
    return undefined;
  }
  if (typeof v !== 'string' || v.trim() === '' || v.length > max)
    fail(`${name} must be a non-empty string of at most ${max} characters`);
  return v as string;
}

function httpUrl(name: string, v: string | undefined): void {
  if (v === undefined) return;
  let u: URL | null = null;
  try {
    u = new URL(v);
  } catch {
    /* reported below */
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:'))
    fail(`${name} must be an http:// or https:// URL`);
}

function prefixOf(body: Record<string, unknown>): string | undefined {
  const p = str(body, 'prefix', false);
  if (p === undefined) return undefined;
  const problem = checkStoragePath(p.replace(/^\/+/, ''));
  if (problem) fail(`prefix ${problem}`);
  return cleanPrefix(p) || undefined;
}

function onlyKeys(body: Record<string, unknown>, allowed: string[]): void {
  const extra = Object.keys(body).filter((k) => !allowed.includes(k));
  if (extra.length) fail(`unknown field(s) ${extra.join(', ')}; accepted: ${allowed.join(', ')}`);
}

/**
 * Checks a `PUT /clients/<name>/storage/<kind>` body and splits it into settings and secrets.
 * @throws {EngineError} `VALIDATION_FAILED` naming the field and what is accepted.
 */
export function parseStorageBody(
  kind: string,
  body: unknown,
): { kind: RemoteKind; settings: Record<string, unknown>; secrets: Record<string, unknown> } {
  if (!(REMOTE_KINDS as readonly string[]).includes(kind))
    fail(`storage kind ${JSON.stringify(kind)} is not configurable; use one of: ${REMOTE_KINDS.join(', ')}`);
  if (!body || typeof body !== 'object' || Array.isArray(body)) fail('the body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (kind === 's3') {
    onlyKeys(b, [
      'endpoint',
      'region',
      'bucket',
      'prefix',
      'access_key_id',
      'secret_access_key',
      'force_path_style',
    ]);
    const endpoint = str(b, 'endpoint', true);
    httpUrl('endpoint', endpoint);
    const region = str(b, 'region', true, 64)!;
    const bucket = str(b, 'bucket', true, 255)!;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/.test(bucket))
      fail('bucket must be a bucket name (letters, digits, ".", "_", "-")');
    const fps = b.force_path_style;
    if (fps !== undefined && typeof fps !== 'boolean') fail('force_path_style must be true or false');
    const settings: S3Settings = { endpoint, region, bucket, force_path_style: fps === true };
    const prefix = prefixOf(b);
    if (prefix) settings.prefix = prefix;
    const secrets: S3Secrets = {
      access_key_id: str(b, 'access_key_id', true)!,
      secret_access_key: str(b, 'secret_access_key', true)!,
    };
    return { kind: 's3', settings: { ...settings }, secrets: { ...secrets } };
  }
  onlyKeys(b, ['connection_string', 'account_name', 'account_key', 'endpoint', 'container', 'prefix']);
  const container = str(b, 'container', true, 63)!;
  if (!/^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$/.test(container))
    fail('container must be 3 to 63 lower-case letters, digits and single hyphens');
  const cs = str(b, 'connection_string', false, 4096);
  const accountName = str(b, 'account_name', false, 64);
  const accountKey = str(b, 'account_key', false, 1024);
  const endpoint = str(b, 'endpoint', false);
  httpUrl('endpoint', endpoint);
  if (cs && (accountName || accountKey || endpoint))
    fail('give either connection_string, or account_name and account_key (and endpoint), not both');
  if (!cs && !(accountName && accountKey))
    fail('give connection_string, or account_name and account_key (endpoint optional)');
  if (cs && !/AccountKey=|SharedAccessSignature=|UseDevelopmentStorage=/i.test(cs))
    fail('connection_string must hold AccountKey or SharedAccessSignature');
  const settings: AzureSettings = { container };
  const prefix = prefixOf(b);
  if (prefix) settings.prefix = prefix;
  if (accountName) settings.account_name = accountName;
  if (endpoint) settings.endpoint = endpoint;
  const secrets: AzureSecrets = cs ? { connection_string: cs } : { account_key: accountKey };
  if (cs) settings.endpoint = azureEndpoint(settings, secrets);
  return { kind: 'azure_blob', settings: { ...settings }, secrets: { ...secrets } };
}

/** The endpoint URL a back-end's requests go to (for the egress check). */
export function endpointOf(kind: RemoteKind, settings: Record<string, unknown>): string {
  if (kind === 's3')
    return (settings.endpoint as string | undefined) ?? `https://s3.${String(settings.region)}.amazonaws.com`;
  return azureEndpoint(settings as unknown as AzureSettings, {});
}

/**
 * Stores (or replaces) `client`'s back-end from a request body.
 * @returns what {@link showClientStorage} shows for it.
 * @throws {EngineError} `VALIDATION_FAILED` for a bad body or an endpoint the egress rules refuse.
 */
export async function putClientStorage(
  db: Queryable,
  policy: EgressPolicy,
  client: string,
  kind: string,
  body: unknown,
  now: Date,
): Promise<{ kind: RemoteKind; settings: Record<string, unknown> }> {
  const parsed = parseStorageBody(kind, body);
  const reason = await checkEgressUrl(policy, endpointOf(parsed.kind, parsed.settings));
  if (reason) fail(`endpoint is refused by the egress rules: ${reason}; allow it in TASK_ENGINE_EGRESS`);
  await upsertClientStorage.run(db, {
    client,
    kind: parsed.kind,
    settings: JSON.stringify(parsed.settings),
    secrets: JSON.stringify(parsed.secrets),
    now,
  });
  return { kind: parsed.kind, settings: parsed.settings };
}

/** `client`'s configured back-ends without secrets: `{ s3?: {...}, azure_blob?: {...} }`. */
export async function showClientStorage(db: Queryable, client: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const r of await listClientStorage.rows(db, { client }))
    out[r.kind] = { ...r.settings, created_at: r.created_at, updated_at: r.updated_at };
  return out;
}

/** Removes `client`'s back-end `kind`. @returns whether there was one. */
export async function removeClientStorage(db: Queryable, client: string, kind: string): Promise<boolean> {
  if (!(REMOTE_KINDS as readonly string[]).includes(kind))
    fail(`storage kind ${JSON.stringify(kind)} is not configurable; use one of: ${REMOTE_KINDS.join(', ')}`);
  return (await deleteClientStorage.first(db, { client, kind })) !== null;
}

/** The storage kinds of a job. */
export interface JobStorageKinds {
  source: StorageKind;
  destination: StorageKind;
}

/**
 * Reads `source_storage` / `destination_storage` (case-insensitive).
 * @returns the kinds, or a message naming the parameter and the accepted values.
 */
export function readStorageKinds(params: Record<string, unknown>): JobStorageKinds | string {
  const isKind = (k: string): k is StorageKind => (STORAGE_KINDS as readonly string[]).includes(k);
  const read = (name: string, fallback: StorageKind): { kind: StorageKind } | { problem: string } => {
    const v = params[name];
    if (v === undefined || v === null || v === '') return { kind: fallback };
    const k = typeof v === 'string' ? v.toLowerCase() : '';
    if (!isKind(k))
      return {
        problem: `parameters.${name} must be one of ${STORAGE_KINDS.join(', ')} (any case); got ${JSON.stringify(v)}`,
      };
    return { kind: k };
  };
  const source = read('source_storage', 'local');
  if ('problem' in source) return source.problem;
  const destination = read('destination_storage', source.kind);
  if ('problem' in destination) return destination.problem;
  return { source: source.kind, destination: destination.kind };
}

/** True when a job's files go through a staging folder (either side is not `local`). */
export function usesStaging(kinds: JobStorageKinds): boolean {
  return kinds.source !== 'local' || kinds.destination !== 'local';
}

/**
 * The last task of a workflow: the one task without `when` that no other task without `when`
 * needs (null when there are several). A job with object storage publishes after it succeeds.
 */
export function lastTaskName(tasks: readonly TaskDefinition[]): string | null {
  const main = tasks.filter((t) => !t.when);
  const needed = new Set(main.flatMap((t) => t.needs));
  const sinks = main.filter((t) => !needed.has(t.name));
  return sinks.length === 1 ? sinks[0]!.name : null;
}

/**
 * The submission check: the storage parameters are valid, every object storage they name is
 * configured for `client`, and the workflow has one unconditional last task to publish after.
 * @throws {EngineError} `VALIDATION_FAILED` naming the parameter and what is missing.
 */
export async function assertJobStorage(
  db: Queryable,
  client: string,
  params: Record<string, unknown>,
  definition: Pick<WorkflowDefinition, 'name' | 'tasks'>,
): Promise<void> {
  const kinds = readStorageKinds(params);
  if (typeof kinds === 'string') return fail(kinds);
  const k = kinds;
  if (usesStaging(k)) {
    const last = lastTaskName(definition.tasks);
    const lastTask = definition.tasks.find((t) => t.name === last);
    if (!lastTask || lastTask.if !== undefined)
      fail(
        `workflow "${definition.name}" cannot use s3 or azure_blob storage: its outputs are published after its one last task, and it has ${lastTask ? 'a conditional last task' : 'no single last task'}; use local storage`,
      );
  }
  for (const [name, kind] of [
    ['source_storage', k.source],
    ['destination_storage', k.destination],
  ] as const) {
    if (kind === 'local') continue;
    if (!(await selectClientStorage.first(db, { client, kind })))
      fail(
        `parameters.${name} is ${kind}, but client ${client} has no ${kind} storage configured; an admin sets it with PUT /clients/${client}/storage/${kind}`,
      );
  }
}

/**
 * Opens `client`'s back-end `kind` for a task.
 * @throws PermanentTaskError when it is not configured (any more) or the egress rules refuse it.
 */
export async function openBackend(
  db: Queryable,
  policy: EgressPolicy,
  storageRoot: string,
  client: string,
  kind: StorageKind,
): Promise<StorageBackend> {
  if (kind === 'local') return localBackend(storageRoot, client);
  const row = await selectClientStorage.first(db, { client, kind });
  if (!row) throw new PermanentTaskError(`client ${client} has no ${kind} storage configured`);
  const reason = await checkEgressUrl(policy, endpointOf(kind, row.settings));
  if (reason) throw new PermanentTaskError(`${kind} endpoint is refused by the egress rules: ${reason}`);
  return kind === 's3'
    ? s3Backend(row.settings as unknown as S3Settings, row.secrets as unknown as S3Secrets)
    : azureBackend(row.settings as unknown as AzureSettings, row.secrets);
}
