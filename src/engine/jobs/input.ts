/**
 * Readers for values that arrive in request bodies and query strings. Each returns the typed
 * value or throws a `VALIDATION_FAILED` {@link EngineError} that names the field, echoes the bad
 * value and says what is accepted (SPEC section 4: "Messages say what was wrong and what is accepted").
 */
import { EngineError } from '../../errors/catalogue.js';
import { readNumericString } from '../../workflows/numeric-string.js';
import { describe } from './time.js';
import type { ResolvedWorkflow, WorkflowCatalog } from '../../workflows/types.js';

/** True for a JSON object (not null, not an array). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Reads a job id from a path segment (`/jobs/<id>`).
 * @returns the id as a number.
 * @throws {EngineError} `VALIDATION_FAILED` when the text is not a positive whole number
 * (for example `abc`, `-1`, `1.5`).
 */
export function parseJobId(idText: string): number {
  const text = String(idText).trim();
  if (/^\d{1,16}$/.test(text)) {
    const n = Number(text);
    if (n >= 1 && Number.isSafeInteger(n)) return n;
  }
  throw new EngineError(
    'VALIDATION_FAILED',
    `job id ${JSON.stringify(idText)} is not valid; a job id is a positive whole number`,
  );
}

/**
 * Reads a whole number given as a JSON number or a numeric string (`"2"` → 2; the rule of
 * `workflows/numeric-string.ts`, which workflow parameters follow too), within bounds.
 * @throws {EngineError} `VALIDATION_FAILED` naming `field` and the accepted range.
 */
export function parseInteger(field: string, value: unknown, min: number, max: number): number {
  let n = NaN;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string') {
    const read = readNumericString(value);
    if (read.ok) n = read.value;
  }
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new EngineError(
      'VALIDATION_FAILED',
      `${field} must be a whole number from ${min} to ${max} (a number or a numeric string); got ${describe(value)}`,
    );
  return n;
}

const TRUE_WORDS = new Set(['1', 'true']);
const FALSE_WORDS = new Set(['0', 'false']);

/**
 * Reads a flag: `true`/`false`, `1`/`0`, or those as strings (case-insensitive).
 * @throws {EngineError} `VALIDATION_FAILED` naming `field` and the accepted values.
 */
export function parseFlag(field: string, value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 1 || value === 0) return value === 1;
  if (typeof value === 'string') {
    const w = value.trim().toLowerCase();
    if (TRUE_WORDS.has(w)) return true;
    if (FALSE_WORDS.has(w)) return false;
  }
  throw new EngineError(
    'VALIDATION_FAILED',
    `${field} must be true or false (also accepted: 1 or 0); got ${describe(value)}`,
  );
}

/** Longest URL accepted in `semaphore_url`. */
export const MAX_URL_LENGTH = 2048;

/**
 * Reads an absolute http(s) URL.
 * @returns the URL text as given (trimmed).
 * @throws {EngineError} `VALIDATION_FAILED` naming `field` when it is not a string, not an
 * absolute http:// or https:// URL, or longer than {@link MAX_URL_LENGTH}.
 */
export function parseHttpUrl(field: string, value: unknown): string {
  const accepted = `an absolute http:// or https:// URL of at most ${MAX_URL_LENGTH} characters`;
  if (typeof value !== 'string')
    throw new EngineError('VALIDATION_FAILED', `${field} must be ${accepted}; got ${describe(value)}`);
  const text = value.trim();
  let url: URL | null;
  try {
    url = new URL(text);
  } catch {
    url = null;
  }
  if (
    !url ||
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    !url.hostname ||
    text.length > MAX_URL_LENGTH
  )
    throw new EngineError('VALIDATION_FAILED', `${field} must be ${accepted}; got ${describe(value)}`);
  return text;
}

/**
 * Refuses fields outside `allowed`.
 * @throws {EngineError} `VALIDATION_FAILED` naming every unknown field and listing the accepted ones.
 */
export function rejectUnknownFields(
  where: string,
  obj: Record<string, unknown>,
  allowed: readonly string[],
): void {
  const unknown = Object.keys(obj).filter((k) => !allowed.includes(k));
  if (unknown.length === 0) return;
  throw new EngineError(
    'VALIDATION_FAILED',
    `${where}: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}; accepted: ${allowed.join(', ')}`,
  );
}

/**
 * The workflow `name` as client `client` sees it (its own copy first, then the common one).
 * @throws {EngineError} `UNKNOWN_WORKFLOW` (400) naming the workflows the client has.
 */
export function resolveWorkflow(catalog: WorkflowCatalog, client: string, name: string): ResolvedWorkflow {
  const resolved = catalog.resolve(client, name);
  if (resolved) return resolved;
  const names = catalog
    .list(client)
    .map((w) => w.definition.name)
    .sort();
  throw new EngineError(
    'UNKNOWN_WORKFLOW',
    `workflow "${name}" does not exist for client "${client}"; available: ${names.length ? names.join(', ') : 'none'}`,
  );
}

/**
 * Runs `read` (the reading of a request about job `jobId`) and gives an {@link EngineError} it
 * throws the job's id, so the error reply names the job.
 * @throws what `read` throws, an EngineError with `jobId` added.
 */
export function withJobId<T>(jobId: number, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof EngineError)
      throw new EngineError(err.code, err.message, { jobId, details: err.details });
    throw err;
  }
}
