/**
 * The CLI's client of a running engine's HTTP API (every command but `serve`, `worker`, `migrate`,
 * and `clients` without `--url`).
 * Connection: `--url`, `--client`, `--api-key`, else `TASK_ENGINE_URL`, `TASK_ENGINE_CLIENT`,
 * `TASK_ENGINE_API_KEY`; without a URL, the API of the engine that holds the local embedded data
 * folder (from its lock file), else `http://127.0.0.1:<TASK_ENGINE_PORT or 3000>`.
 */
import type { Command } from 'commander';
import { loadConfig } from '../config/load-config.js';
import { readDataDirHolder } from '../data-dir-lock.js';
import { CliError, type CliIO } from './io.js';

/** Where and as whom to call the API. */
export interface ApiConnection {
  url: string;
  client: string;
  apiKey: string;
}

/** Options every API-talking command accepts. */
export interface ConnectionOptions {
  url?: string;
  client?: string;
  apiKey?: string;
}

/** Adds `--url`, `--client` and `--api-key` to a command. */
export function addConnectionOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'API base URL (env TASK_ENGINE_URL; default: the local engine)')
    .option('--client <name>', 'client name (env TASK_ENGINE_CLIENT)')
    .option('--api-key <key>', 'API key (env TASK_ENGINE_API_KEY)');
}

/**
 * Resolves the connection from options, then the environment, then the local engine.
 * @throws {CliError} (exit 2) when the client or key is missing, or the URL is not http(s).
 */
export async function resolveConnection(io: CliIO, opts: ConnectionOptions): Promise<ApiConnection> {
  const client = opts.client ?? io.env.TASK_ENGINE_CLIENT;
  const apiKey = opts.apiKey ?? io.env.TASK_ENGINE_API_KEY;
  if (!client || !apiKey)
    throw new CliError(
      'credentials needed: pass --client and --api-key, or set TASK_ENGINE_CLIENT and TASK_ENGINE_API_KEY',
      2,
    );
  let url = opts.url ?? io.env.TASK_ENGINE_URL;
  if (!url) {
    try {
      const config = loadConfig(io.env);
      const holder = await readDataDirHolder(config.dataDir);
      url = holder?.url ?? `http://127.0.0.1:${config.port || 3000}`;
    } catch {
      url = 'http://127.0.0.1:3000';
    }
  }
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
  } catch {
    throw new CliError(`--url ${JSON.stringify(url)} is not an http:// or https:// URL`, 2);
  }
  return { url: url.replace(/\/+$/, ''), client, apiKey };
}

/** The credential headers of `conn` (the `client` and `api-key` headers of the API). */
export function authHeaders(conn: ApiConnection): Record<string, string> {
  return { client: conn.client, 'api-key': conn.apiKey };
}

/**
 * Reads a job id argument: a positive whole number.
 * @throws {CliError} (exit 2) naming the argument and what it accepts.
 */
export function jobIdArgument(text: string, name = '<id>'): number {
  if (!/^[1-9]\d{0,15}$/.test(text) || !Number.isSafeInteger(Number(text)))
    throw new CliError(`${name} must be a job id such as 42 (got ${JSON.stringify(text)})`, 2);
  return Number(text);
}

/** Prints `data` as the API gave it: one line of JSON (for `--json`). */
export function printJson(io: CliIO, data: unknown): void {
  io.out(JSON.stringify(data));
}

/**
 * Calls the API and returns the parsed JSON reply.
 * @throws {CliError} with the server's error message (and status) on a non-2xx reply, or naming
 * the URL when the engine cannot be reached.
 */
export async function callApi<T = unknown>(
  conn: ApiConnection,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const headers: Record<string, string> = { ...authHeaders(conn), accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`${conn.url}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw unreachable(conn, err);
  }
  const text = await res.text();
  if (!res.ok) throw apiError(method, path, res.status, text);
  try {
    return (text ? JSON.parse(text) : null) as T;
  } catch {
    return text as T;
  }
}

/**
 * The error of a non-2xx reply: `<METHOD> <path> failed (<status>): <the API's message>` (the
 * reply's `error` field, else its text).
 */
export function apiError(method: string, path: string, status: number, text: string): CliError {
  let message = text;
  try {
    const data = JSON.parse(text) as unknown;
    if (data && typeof data === 'object' && 'error' in data) message = String(data.error);
  } catch {
    // not JSON: the text as it came
  }
  return new CliError(`${method} ${path} failed (${status}): ${message}`);
}

/** The error when the engine cannot be reached at all, naming its URL and the reason. */
export function unreachable(conn: ApiConnection, err: unknown): CliError {
  const reason =
    err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
  return new CliError(
    `cannot reach the engine at ${conn.url} (${reason}); is it running? (task-engine serve)`,
  );
}
