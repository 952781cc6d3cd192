/**
 * Refuses text that PostgreSQL cannot store before it reaches any route: a NUL character, or a
 * UTF-16 surrogate without its pair, anywhere in the query string or the JSON body (keys included).
 * Without this such a value would fail deep inside a statement and surface as a 500.
 */
import type { FastifyInstance } from 'fastify';
import type { Socket } from 'node:net';
import { EngineError } from '../../errors/catalogue.js';

/** Deepest JSON nesting accepted in a body (objects and arrays). */
export const MAX_BODY_DEPTH = 100;

// A NUL, a high surrogate not followed by a low one, or a low surrogate not preceded by a high one.
// eslint-disable-next-line no-control-regex -- finding NUL is the point of this pattern
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Describes the first unstorable piece of text in `value`, or null when there is none. */
export function findUnstorableText(value: unknown, root: string): string | null {
  // Iterative walk: a deeply nested body must not exhaust the stack.
  const stack: { v: unknown; path: string; depth: number }[] = [{ v: value, path: root, depth: 0 }];
  while (stack.length > 0) {
    const { v, path, depth } = stack.pop()!;
    if (typeof v === 'string') {
      if (UNSTORABLE.test(v))
        return `${path} contains a NUL character or an unpaired surrogate, which cannot be stored`;
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (depth >= MAX_BODY_DEPTH) return `${path} is nested deeper than ${MAX_BODY_DEPTH} levels`;
    for (const [k, child] of Object.entries(v as Record<string, unknown>)) {
      if (UNSTORABLE.test(k)) return `${path} has a key with a NUL character or an unpaired surrogate`;
      stack.push({ v: child, path: Array.isArray(v) ? `${path}[${k}]` : `${path}.${k}`, depth: depth + 1 });
    }
  }
  return null;
}

/** Installs the guard as a `preValidation` hook (after auth and body parsing). */
export function registerInputGuard(app: FastifyInstance): void {
  app.addHook('preValidation', async (request) => {
    const problem =
      findUnstorableText(request.query, 'query') ??
      findUnstorableText(request.params, 'path') ??
      findUnstorableText(request.body, 'body');
    if (problem) throw new EngineError('VALIDATION_FAILED', `${problem}; send valid UTF-8 text without NUL`);
  });
}

/**
 * Answers requests that Node's HTTP parser refuses (bad characters in a header, headers too large)
 * with the same JSON error shape as every other reply, then closes the connection.
 */
export function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
  const body = JSON.stringify({
    error: tooLarge
      ? 'the request headers are too large; send smaller headers'
      : 'the request is not valid HTTP (for example a header holds a control character); send printable header values',
  });
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
