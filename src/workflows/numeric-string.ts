/**
 * The one rule for numbers sent as strings (SPEC section 4: "Numbers given as numeric strings are
 * accepted and stored as numbers"), used by `job.priority`, known settings and workflow parameters
 * whose schema type is `number` or `integer`.
 *
 * A numeric string is, after trimming surrounding whitespace, an optional sign, decimal digits, an
 * optional fraction (`.` and digits) and an optional exponent (`e`/`E`, optional sign, digits):
 * `"2"`, `" -1.5 "`, `"+3"`, `"1e3"`. Not `""`, `"0x10"`, `"Infinity"`, `".5"`, `"1,5"`, `"2 kg"`.
 * It is read as that decimal number (as `Number` reads it); a whole number written without
 * fraction or exponent must lie within ±(2^53 − 1), like an integer literal in a body, so that its
 * digits are never silently changed.
 */

const NUMERIC = /^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/;
const DIGITS_ONLY = /^[+-]?\d+$/;

/** The result of {@link readNumericString}. */
export type NumericStringRead =
  | { ok: true; value: number }
  /** `not-numeric`: not the grammar above (or beyond the double range); `unsafe-integer`: whole digits beyond ±(2^53 − 1). */
  | { ok: false; reason: 'not-numeric' | 'unsafe-integer' };

/** Reads a numeric string by the rule above. */
export function readNumericString(text: string): NumericStringRead {
  const t = text.trim();
  if (!NUMERIC.test(t)) return { ok: false, reason: 'not-numeric' };
  const value = Number(t);
  if (!Number.isFinite(value)) return { ok: false, reason: 'not-numeric' };
  if (DIGITS_ONLY.test(t) && !Number.isSafeInteger(value)) return { ok: false, reason: 'unsafe-integer' };
  return { ok: true, value };
}
