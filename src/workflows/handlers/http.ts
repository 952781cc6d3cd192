/**
 * The `http` built-in handler (SPEC section 12): one HTTP request with the global `fetch`.
 *
 * Inputs:
 * - `url` (string, required): an `http:` or `https:` URL.
 * - `method` (default `GET`): GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS.
 * - `headers` (object of name → string/number/boolean).
 * - `json` (any JSON value, sent with `content-type: application/json` unless a header sets it) or
 *   `body` (a string sent as it is); not both.
 * - `expect` (list of statuses): numbers such as `200` or classes such as `"2xx"`; default `["2xx"]`.
 * - `timeout` (seconds, default 30): the whole request, headers and body.
 *
 * Output: `{ status, headers, body }` with header names in lower case and `body` parsed when the
 * response is JSON (`content-type` `application/json` or `+json`), otherwise text. Bodies over
 * {@link HTTP_LIMITS}.bodyBytes are cut and reported with `body_truncated: true` (and not parsed).
 *
 * Failures: a status not in `expect` throws. 5xx, 408 and 429 are retryable errors (a
 * `Retry-After` in seconds gives a {@link RetryAfterError}); any other status is a
 * {@link PermanentTaskError}. Network errors and timeouts are retryable errors.
 */
import { PermanentTaskError, RetryAfterError } from '../../errors/task-errors.js';
import type { HandlerContext } from '../types.js';
import { abortError, isPlainObject, readSeconds } from './inputs.js';

/** Inputs `http` accepts. `url` is required. */
export const HTTP_INPUTS = ['method', 'url', 'headers', 'json', 'body', 'expect', 'timeout'] as const;

/** Methods `http` accepts. */
export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const;

/** Limits of the `http` handler (mutable for tests). */
export const HTTP_LIMITS = {
  /** Default `timeout` in seconds. */
  defaultTimeoutSeconds: 30,
  /** Bytes of the response body kept in the output. */
  bodyBytes: 1024 * 1024,
};

/** What `http` returns. */
export interface HttpOutput {
  status: number;
  headers: Record<string, string>;
  body: unknown;
  body_truncated?: boolean;
}

/** The URL without credentials, query or fragment: safe to put in a log or error message. */
function safeUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

function readExpect(value: unknown): (status: number) => boolean {
  if (value === undefined || value === null) return (s) => s >= 200 && s <= 299;
  const list = Array.isArray(value) ? value : [value];
  const tests = list.map((item) => {
    if (typeof item === 'number' && Number.isInteger(item) && item >= 100 && item <= 599)
      return (s: number) => s === item;
    if (typeof item === 'string' && /^[1-5]\d\d$/.test(item)) return (s: number) => s === Number(item);
    if (typeof item === 'string' && /^[1-5]xx$/i.test(item)) {
      const base = Number(item[0]) * 100;
      return (s: number) => s >= base && s <= base + 99;
    }
    throw new PermanentTaskError(
      `http: input "expect" must list statuses such as 200 or "2xx" (got ${JSON.stringify(item)})`,
    );
  });
  return (s) => tests.some((t) => t(s));
}

async function readBody(res: Response): Promise<{ text: string; truncated: boolean }> {
  if (!res.body) return { text: '', truncated: false };
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (size + value.length > HTTP_LIMITS.bodyBytes) {
      chunks.push(value.subarray(0, HTTP_LIMITS.bodyBytes - size));
      truncated = true;
      await reader.cancel();
      break;
    }
    chunks.push(value);
    size += value.length;
  }
  return { text: Buffer.concat(chunks).toString('utf8'), truncated };
}

function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/**
 * Makes the request described by `ctx.inputs` (see the module comment).
 * @returns {@link HttpOutput}.
 * @throws PermanentTaskError for bad inputs or an unexpected 4xx status; RetryAfterError for a
 *   429/503 with `Retry-After`; Error (retryable) for other 5xx, 408, 429, network errors and
 *   timeouts, and when `ctx.signal` aborts.
 */
export async function httpHandler(ctx: HandlerContext): Promise<HttpOutput> {
  const { inputs, signal } = ctx;
  if (typeof inputs.url !== 'string' || inputs.url === '')
    throw new PermanentTaskError(`http: input "url" is required: an http:// or https:// URL`);
  let url: URL;
  try {
    url = new URL(inputs.url);
  } catch {
    throw new PermanentTaskError(`http: input "url" is not a valid URL (got ${JSON.stringify(inputs.url)})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new PermanentTaskError(`http: input "url" must use http or https (got ${url.protocol})`);
  const method =
    typeof inputs.method === 'string'
      ? inputs.method.toUpperCase()
      : inputs.method === undefined
        ? 'GET'
        : null;
  if (method === null || !(HTTP_METHODS as readonly string[]).includes(method))
    throw new PermanentTaskError(
      `http: input "method" must be one of ${HTTP_METHODS.join(', ')} (got ${JSON.stringify(inputs.method)})`,
    );
  const headers = new Headers();
  if (inputs.headers !== undefined && inputs.headers !== null) {
    if (!isPlainObject(inputs.headers))
      throw new PermanentTaskError(`http: input "headers" must be an object of name: value`);
    for (const [name, v] of Object.entries(inputs.headers)) {
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
        throw new PermanentTaskError(`http: header "${name}" must be a string, number or boolean`);
      try {
        headers.set(name, String(v));
      } catch {
        throw new PermanentTaskError(`http: header "${name}" is not a valid header name or value`);
      }
    }
  }
  // Tracing on: the attempt span's context, unless the task's `headers` set one (docs/tracing.md).
  if (ctx.traceparent && !headers.has('traceparent')) headers.set('traceparent', ctx.traceparent);
  if (inputs.json !== undefined && inputs.body !== undefined)
    throw new PermanentTaskError(`http: give either "json" or "body", not both`);
  let body: string | undefined;
  if (inputs.json !== undefined) {
    body = JSON.stringify(inputs.json);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  } else if (inputs.body !== undefined && inputs.body !== null) {
    if (typeof inputs.body !== 'string')
      throw new PermanentTaskError(`http: input "body" must be a string (use "json" for structured data)`);
    body = inputs.body;
  }
  if (body !== undefined && (method === 'GET' || method === 'HEAD'))
    throw new PermanentTaskError(`http: a ${method} request cannot carry a body; use POST, PUT or PATCH`);
  const expected = readExpect(inputs.expect);
  const timeoutSeconds = readSeconds('http', 'timeout', inputs.timeout, HTTP_LIMITS.defaultTimeoutSeconds);
  const where = `${method} ${safeUrl(url)}`;
  if (signal.aborted) throw abortError(signal, `http ${where}`);

  const timeoutSignal = AbortSignal.timeout(Math.max(1, Math.round(timeoutSeconds * 1000)));
  const combined = AbortSignal.any([signal, timeoutSignal]);
  let res: Response;
  let text: string;
  let truncated: boolean;
  try {
    res = await ctx.fetch(url, { method, headers, body, signal: combined, redirect: 'follow' });
    ({ text, truncated } = await readBody(res));
  } catch (err) {
    if (signal.aborted) throw abortError(signal, `http ${where}`);
    if (timeoutSignal.aborted)
      throw new Error(`http: ${where} timed out after ${timeoutSeconds} s`, { cause: err });
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const detail = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new Error(`http: ${where} failed: ${detail}`, { cause: err });
  }

  const responseHeaders: Record<string, string> = {};
  res.headers.forEach((value, name) => {
    responseHeaders[name] = value;
  });
  const contentType = res.headers.get('content-type') ?? '';
  let parsed: unknown = text;
  if (!truncated && /\bapplication\/([\w.+-]*\+)?json\b/i.test(contentType) && text.trim() !== '') {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (!expected(res.status)) {
    const snippet = text.length > 300 ? `${text.slice(0, 300)}…` : text;
    const message = `http: ${where} answered ${res.status}, expected ${inputs.expect === undefined ? '2xx' : JSON.stringify(inputs.expect)}${snippet ? `: ${snippet}` : ''}`;
    if (res.status === 429 || res.status === 503) {
      const after = parseRetryAfter(res.headers.get('retry-after'));
      if (after !== undefined) throw new RetryAfterError(message, after);
    }
    if (res.status >= 500 || res.status === 429 || res.status === 408) throw new Error(message);
    throw new PermanentTaskError(message);
  }
  const output: HttpOutput = { status: res.status, headers: responseHeaders, body: parsed };
  if (truncated) output.body_truncated = true;
  return output;
}
