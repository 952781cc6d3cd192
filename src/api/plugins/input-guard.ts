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

/** What an unstorable-text refusal asks for instead. */
const STORABLE = 'send valid UTF-8 text without NUL';

/** Describes the first unstorable piece of text in `value`, or null when there is none. */
export function findUnstorableText(value: unknown, root: string): string | null {
  // Almost every value is clean: find that out without building a path per node.
  if (plainlyStorable(value, 0)) return null;
  // Iterative walk: a deeply nested body must not exhaust the stack.
  const stack: { v: unknown; path: string; depth: number }[] = [{ v: value, path: root, depth: 0 }];
  while (stack.length > 0) {
    const { v, path, depth } = stack.pop()!;
    if (typeof v === 'string') {
      if (UNSTORABLE.test(v))
        return `${path} contains a NUL character or an unpaired surrogate, which cannot be stored; ${STORABLE}`;
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (depth >= MAX_BODY_DEPTH)
      return `${path} is nested deeper than ${MAX_BODY_DEPTH} levels; send objects and arrays at most ${MAX_BODY_DEPTH} levels deep`;
    for (const [k, child] of Object.entries(v as Record<string, unknown>)) {
      if (UNSTORABLE.test(k))
        return `${path} has a key with a NUL character or an unpaired surrogate; ${STORABLE}`;
      stack.push({ v: child, path: Array.isArray(v) ? `${path}[${k}]` : `${path}.${k}`, depth: depth + 1 });
    }
  }
  return null;
}

/**
 * Whether `value`, at nesting `depth` (the root is 0), holds nothing that
 * {@link findUnstorableText} reports: the same checks, answered without allocating. Recursion is
 * bounded by {@link MAX_BODY_DEPTH} (deeper is answered false, and the iterative walk then names
 * the problem).
 */
function plainlyStorable(value: unknown, depth: number): boolean {
  if (typeof value === 'string') return !UNSTORABLE.test(value);
  if (value === null || typeof value !== 'object') return true;
  if (depth >= MAX_BODY_DEPTH) return false;
  for (const key of Object.keys(value)) {
    if (UNSTORABLE.test(key)) return false;
    if (!plainlyStorable((value as Record<string, unknown>)[key], depth + 1)) return false;
  }
  return true;
}

/** Largest integer magnitude a JSON number keeps exactly: `Number.MAX_SAFE_INTEGER`, 2^53 − 1. */
const MAX_SAFE_DIGITS = String(Number.MAX_SAFE_INTEGER);

/** What {@link scanJsonText} found wrong with a body that `JSON.parse` accepted. */
export interface JsonTextProblem {
  /** `duplicate-key`: an object repeats a key; `unsafe-integer`: an integer literal beyond ±(2^53 − 1). */
  kind: 'duplicate-key' | 'unsafe-integer';
  /** Where, as `body.parameters.id` or `body.list[2]` (for a duplicate key: the repeated key's path). */
  path: string;
  /** The repeated key, or the integer literal as sent. */
  text: string;
}

/** One open object or array while scanning. */
interface ScanFrame {
  array: boolean;
  /** Arrays: the index of the current element. */
  index: number;
  /** Objects: the keys seen so far (made on the second key). */
  keys: Set<string> | null;
  /** Objects: the current key. */
  key: string | null;
}

function pathStep(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function pathOf(root: string, stack: readonly ScanFrame[]): string {
  let out = root;
  for (const f of stack) out += f.array ? `[${f.index}]` : f.key === null ? '' : pathStep(f.key);
  return out;
}

/**
 * Scans JSON text that `JSON.parse` has already accepted for what `JSON.parse` silently changes:
 * an object that repeats a key (the last one wins, so two parsers may read different values — a
 * parser differential), and an integer literal beyond ±(2^53 − 1) (its digits would be rounded,
 * `3544790567247868102` becoming `3544790567247868000`). A literal with a fraction or an exponent
 * is a double-precision number by definition and is left alone.
 *
 * One pass over the text without building values (strings are skipped with `indexOf`; a key is
 * decoded only when it holds an escape), iterative, so a deep or large body costs little and
 * cannot exhaust the stack.
 * @param text - JSON text already accepted by `JSON.parse` (the scan does not validate syntax).
 * @param root - the name of the whole value in the path, e.g. `body`.
 * @returns the first problem, or null.
 */
export function scanJsonText(text: string, root = 'body'): JsonTextProblem | null {
  const stack: ScanFrame[] = [];
  // After `{` or `,` inside an object the next string is a key.
  let expectKey = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i + 1;
      let end = text.indexOf('"', start);
      // A quote preceded by an odd number of backslashes is escaped: look further.
      for (;;) {
        let backslashes = 0;
        for (let j = end - 1; j >= start && text.charCodeAt(j) === 0x5c; j--) backslashes++;
        if (backslashes % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      if (expectKey) {
        const frame = stack[stack.length - 1]!;
        const raw = text.slice(start, end);
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (frame.key === null) frame.key = key;
        else {
          frame.keys ??= new Set([frame.key]);
          frame.key = key;
          if (frame.keys.has(key)) return { kind: 'duplicate-key', path: pathOf(root, stack), text: key };
          frame.keys.add(key);
        }
        expectKey = false;
      }
      i = end + 1;
      continue;
    }
    if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      const start = i;
      let integer = true;
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d >= 0x30 && d <= 0x39) i++;
        else if (d === 0x2e || d === 0x65 || d === 0x45 || d === 0x2b || d === 0x2d) {
          integer = false;
          i++;
        } else break;
      }
      if (integer) {
        const digits = text.charCodeAt(start) === 0x2d ? i - start - 1 : i - start;
        // JSON forbids leading zeros, so more digits means a larger number.
        if (
          digits > MAX_SAFE_DIGITS.length ||
          (digits === MAX_SAFE_DIGITS.length && text.slice(i - digits, i) > MAX_SAFE_DIGITS)
        )
          return { kind: 'unsafe-integer', path: pathOf(root, stack), text: text.slice(start, i) };
      }
      continue;
    }
    switch (c) {
      case 0x7b /* { */:
        stack.push({ array: false, index: 0, keys: null, key: null });
        expectKey = true;
        break;
      case 0x5b /* [ */:
        stack.push({ array: true, index: 0, keys: null, key: null });
        break;
      case 0x7d /* } */:
      case 0x5d /* ] */:
        stack.pop();
        expectKey = false;
        break;
      case 0x2c /* , */: {
        const frame = stack[stack.length - 1]!;
        if (frame.array) frame.index++;
        else expectKey = true;
        break;
      }
      default:
      // whitespace, `:`, and the letters of true / false / null
    }
    i++;
  }
  return null;
}

/**
 * The error for a {@link JsonTextProblem}: a repeated key is `INVALID_JSON` (the body means two
 * things), an integer beyond the exact range is `VALIDATION_FAILED` naming the field.
 */
export function jsonTextError(problem: JsonTextProblem): EngineError {
  if (problem.kind === 'duplicate-key')
    return new EngineError(
      'INVALID_JSON',
      `the body repeats the key ${JSON.stringify(problem.text)} at ${problem.path}; send each key once per object`,
    );
  return new EngineError(
    'VALIDATION_FAILED',
    `${problem.path} is ${problem.text}, an integer beyond ±${Number.MAX_SAFE_INTEGER} (2^53 - 1) that a JSON number cannot hold exactly; send a smaller integer, or send the digits as a string where a string is accepted`,
  );
}

/** Installs the guard as a `preValidation` hook (after auth and body parsing). */
export function registerInputGuard(app: FastifyInstance): void {
  // A callback hook: the check is synchronous, so no promise per request.
  app.addHook('preValidation', (request, _reply, done) => {
    const problem =
      findUnstorableText(request.query, 'query') ??
      findUnstorableText(request.params, 'path') ??
      findUnstorableText(request.body, 'body');
    done(problem ? new EngineError('VALIDATION_FAILED', problem) : undefined);
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
