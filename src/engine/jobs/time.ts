/**
 * Timestamps in and out of the API (SPEC section 4).
 *
 * In: `yyyy-MM-ddTHH:mm:ss` with an optional fraction and an optional zone. Without a zone the
 * time **is UTC** (the seed: "The date must be in UTC and in the following format
 * yyyy-MM-ddTHH:mm:ss.fff"); an explicit `Z` or `±HH:mm` offset is honoured. Anything else,
 * including impossible dates such as `2030-02-30` or `24:00:00`, is refused: a bad value is never
 * silently read as "now". The process time zone (`TZ`) plays no part.
 *
 * Out: ISO-8601 UTC with milliseconds and `Z` (`2020-09-24T11:55:33.755Z`).
 */
import { EngineError } from '../../errors/catalogue.js';

/** The accepted input format, as error messages state it. */
export const TIMESTAMP_FORMAT_HELP =
  'yyyy-MM-ddTHH:mm:ss or yyyy-MM-ddTHH:mm:ss.fff (UTC when no zone is given; a trailing Z or ±HH:mm offset is honoured)';

const PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):?(\d{2}))?$/;

/** Result of {@link parseTimestamp}: the instant, or why the text is not one. */
export type TimestampParse = { ok: true; date: Date } | { ok: false; problem: string };

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Parses one timestamp strictly, without throwing.
 * Fractions longer than milliseconds are cut to milliseconds (the engine's precision).
 */
export function parseTimestamp(text: string): TimestampParse {
  const m = PATTERN.exec(text);
  if (!m) return { ok: false, problem: 'is not in the accepted format' };
  const [, ys, mos, ds, hs, mis, ss, frac, zulu, sign, ohs, oms] = m;
  const year = Number(ys);
  const month = Number(mos);
  const day = Number(ds);
  const hour = Number(hs);
  const minute = Number(mis);
  const second = Number(ss);
  if (year < 1) return { ok: false, problem: 'has year 0000' };
  if (month < 1 || month > 12) return { ok: false, problem: `has month ${mos}` };
  if (day < 1 || day > daysInMonth(year, month))
    return { ok: false, problem: `has day ${ds}, but ${ys}-${mos} has ${daysInMonth(year, month)} days` };
  if (hour > 23) return { ok: false, problem: `has hour ${hs}` };
  if (minute > 59) return { ok: false, problem: `has minute ${mis}` };
  if (second > 59) return { ok: false, problem: `has second ${ss}` };
  let offsetMinutes = 0;
  if (!zulu && sign) {
    const oh = Number(ohs);
    const om = Number(oms);
    if (oh > 23 || om > 59) return { ok: false, problem: `has offset ${sign}${ohs}:${oms}` };
    offsetMinutes = (sign === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const ms = frac ? Number(frac.padEnd(3, '0').slice(0, 3)) : 0;
  // Date.UTC maps years 0..99 to 1900..1999, so the year is set separately.
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, ms);
  const date = new Date(d.getTime() - offsetMinutes * 60_000);
  if (Number.isNaN(date.getTime())) return { ok: false, problem: 'is out of range' };
  return { ok: true, date };
}

/**
 * Parses a timestamp given in a request field.
 * @param field - the field's name, for the message (`run_at`, `from`, `to`).
 * @param value - the raw value; must be a string.
 * @returns the instant.
 * @throws {EngineError} `VALIDATION_FAILED` naming the field, the value and the accepted format.
 */
export function parseTimestampIn(field: string, value: unknown): Date {
  if (typeof value !== 'string')
    throw new EngineError(
      'VALIDATION_FAILED',
      `${field} must be a string in the format ${TIMESTAMP_FORMAT_HELP}; got ${describe(value)}`,
    );
  const r = parseTimestamp(value.trim());
  if (!r.ok)
    throw new EngineError(
      'VALIDATION_FAILED',
      `${field} ${JSON.stringify(value)} ${r.problem}; accepted: ${TIMESTAMP_FORMAT_HELP}`,
    );
  return r.date;
}

/** Formats an instant for the API: ISO-8601 UTC with milliseconds and `Z`; null stays null. */
export function formatTimestamp(value: Date | string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** A short description of a JSON value's type and content for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  // A literal such as 1e400 reads as ±Infinity, which JSON.stringify would show as null.
  if (typeof value === 'number' && !Number.isFinite(value))
    return `${String(value)} (a number literal beyond the range of a double, such as 1e400)`;
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
