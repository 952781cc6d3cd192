/**
 * Small checks shared by the built-in handlers: each turns a bad input into a
 * {@link PermanentTaskError} that names the task input and what is accepted.
 */
import { PermanentTaskError } from '../../errors/task-errors.js';

/** True for a plain JSON object (not null, not an array). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * A number of seconds from a task input: a finite number >= 0, or a string holding one.
 * @returns `fallback` when the input is absent.
 * @throws PermanentTaskError naming `handler` and `name` when the value is anything else.
 */
export function readSeconds(handler: string, name: string, value: unknown, fallback?: number): number {
  if (value === undefined || value === null) {
    if (fallback !== undefined) return fallback;
    throw new PermanentTaskError(`${handler}: input "${name}" is required (a number of seconds >= 0)`);
  }
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0)
    throw new PermanentTaskError(
      `${handler}: input "${name}" must be a number of seconds >= 0 (got ${JSON.stringify(value)})`,
    );
  return n;
}

/**
 * An abort error for `signal`: its reason when that is an Error, otherwise a plain Error.
 */
export function abortError(signal: AbortSignal, what: string): Error {
  const reason: unknown = signal.reason;
  const detail =
    reason instanceof Error
      ? reason.message
      : typeof reason === 'string'
        ? reason
        : reason === undefined
          ? 'aborted'
          : JSON.stringify(reason);
  return new Error(`${what} was stopped: ${detail}`, { cause: reason });
}
