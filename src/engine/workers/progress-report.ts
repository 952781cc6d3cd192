/**
 * What a handler's `ctx.progress(fraction, message?, detail?)` call means, checked and bounded
 * (pure): the value the progress writer (`progress-writer.ts`) stores on the task, or why the call
 * is ignored.
 */

/** Bounds of one progress report. */
export const PROGRESS_LIMITS = {
  /** Characters of `progress_message` kept (longer messages are cut, with `…`). */
  messageChars: 200,
  /** Bytes of `progress_detail` as JSON; a larger detail is dropped (the fraction is kept). */
  detailBytes: 2048,
} as const;

/** A checked progress report, as it is written to the task. */
export interface ProgressValue {
  /** 0 to 1. */
  fraction: number;
  /** Trimmed, one line, at most {@link PROGRESS_LIMITS}.messageChars; null when none was given. */
  message: string | null;
  /** A JSON object as text (at most {@link PROGRESS_LIMITS}.detailBytes), or null. */
  detail: string | null;
}

/** The outcome of {@link readProgressReport}. */
export interface ProgressReading {
  /** The value to write, or null when the call is ignored (`fraction` not a finite number). */
  value: ProgressValue | null;
  /** What was wrong with the call (empty when nothing was). */
  problems: string[];
}

/**
 * Checks one `ctx.progress` call. `fraction` must be a finite number; it is clamped to 0..1. A
 * `message` is turned into one trimmed line (control characters become spaces) and cut to
 * {@link PROGRESS_LIMITS}.messageChars; empty means none (a message that is not a string is dropped). `detail` must be a plain JSON object of at
 * most {@link PROGRESS_LIMITS}.detailBytes as JSON, else it is dropped with a problem. Never throws.
 */
export function readProgressReport(fraction: unknown, message?: unknown, detail?: unknown): ProgressReading {
  const problems: string[] = [];
  if (typeof fraction !== 'number' || !Number.isFinite(fraction)) {
    problems.push(
      `progress ${describe(fraction)} was ignored: the fraction must be a finite number from 0 to 1`,
    );
    return { value: null, problems };
  }
  return {
    value: {
      fraction: Math.min(1, Math.max(0, fraction)),
      message: readMessage(message, problems),
      detail: readDetail(detail, problems),
    },
    problems,
  };
}

/** Runs of control characters (newlines, tabs, escapes), each turned into one space. */
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]+/g;

function readMessage(message: unknown, problems: string[]): string | null {
  if (message === undefined || message === null) return null;
  if (typeof message !== 'string' && typeof message !== 'number') {
    problems.push(`progress message ${describe(message)} was dropped: it must be a string`);
    return null;
  }
  const line = String(message).replace(CONTROL_CHARACTERS, ' ').trim();
  if (line.length === 0) return null;
  const chars = [...line];
  return chars.length > PROGRESS_LIMITS.messageChars
    ? `${chars.slice(0, PROGRESS_LIMITS.messageChars - 1).join('')}…`
    : line;
}

function readDetail(detail: unknown, problems: string[]): string | null {
  if (detail === undefined || detail === null) return null;
  if (typeof detail !== 'object' || Array.isArray(detail)) {
    problems.push(`progress detail ${describe(detail)} was dropped: it must be a JSON object`);
    return null;
  }
  let json: string;
  try {
    json = JSON.stringify(detail);
  } catch (err) {
    problems.push(`progress detail was dropped: it is not JSON (${(err as Error).message})`);
    return null;
  }
  if (Buffer.byteLength(json) > PROGRESS_LIMITS.detailBytes) {
    problems.push(
      `progress detail was dropped: ${Buffer.byteLength(json)} bytes as JSON, more than the ${PROGRESS_LIMITS.detailBytes} accepted`,
    );
    return null;
  }
  return json;
}

function describe(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (v === null || v === undefined) return String(v);
  return Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}
