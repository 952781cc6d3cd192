/**
 * Calls to the engine's HTTP API with the session's credentials. Every error reply of the API is
 * `{"error": "…"}`; {@link ApiError} carries that message and the status, so pages show the API's
 * own words when it refuses something. A 401 ends the session.
 */
import { authorization, getSession, setSession } from './session';

/** A refusal or failure of the API. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** A reply: its parsed JSON body and its headers. */
export interface ApiReply<T> {
  data: T;
  headers: Headers;
  status: number;
}

type Query = Record<string, string | number | boolean | null | undefined>;

/** `path` with the query's non-empty values appended. */
export function withQuery(path: string, query: Query = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query))
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/**
 * Sends a request as the signed-in client.
 * @throws {ApiError} for any status but 2xx (its message is the API's `error`), and for a network
 * failure (status 0).
 */
export async function request<T>(
  method: string,
  path: string,
  body?: unknown,
  init: { signal?: AbortSignal; credentials?: { client: string; apiKey: string } } = {},
): Promise<ApiReply<T>> {
  const session = init.credentials ?? getSession();
  const headers: Record<string, string> = { accept: 'application/json' };
  if (session) headers.authorization = authorization(session);
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: init.signal,
      cache: 'no-store',
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, `the engine cannot be reached (${(err as Error).message})`);
  }
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) {
    const message =
      data && typeof data === 'object' && typeof (data as { error?: unknown }).error === 'string'
        ? (data as { error: string }).error
        : `${res.status} ${res.statusText}`;
    if (res.status === 401 && !init.credentials && getSession())
      setSession(null, `The engine no longer accepts these credentials: ${message}`);
    throw new ApiError(res.status, message, data);
  }
  return { data: data as T, headers: res.headers, status: res.status };
}

/** GET `path` (with `query`) and return the body. */
export async function get<T>(path: string, query?: Query, signal?: AbortSignal): Promise<T> {
  return (await request<T>('GET', withQuery(path, query), undefined, { signal })).data;
}

/** POST `body` to `path` and return the reply's body. */
export async function post<T>(path: string, body?: unknown): Promise<T> {
  return (await request<T>('POST', path, body)).data;
}

/** PATCH `path` with `body`. */
export async function patch<T>(path: string, body: unknown): Promise<T> {
  return (await request<T>('PATCH', path, body)).data;
}

/** PUT `path` with `body`. */
export async function put<T>(path: string, body: unknown): Promise<T> {
  return (await request<T>('PUT', path, body)).data;
}

/** DELETE `path`. */
export async function del<T>(path: string): Promise<T> {
  return (await request<T>('DELETE', path)).data;
}

/** The message to show for any thrown value. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
