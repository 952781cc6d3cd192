/**
 * Tables and values as the CLI prints them: columns aligned by `cli-table3`, without borders or
 * colours (so that output can be read by `grep`, `awk` and people alike), and the small formats
 * every command shares (missing values, yes/no, percentages, durations).
 */
import Table from 'cli-table3';
import type { CliIO } from './io.js';

/** A cell: a value shown as text; null and undefined as `-`. */
export type CellValue = string | number | boolean | null | undefined;

/** How a column aligns: numbers usually `right`. */
export type Align = 'left' | 'right';

const NO_BORDERS = {
  top: '',
  'top-mid': '',
  'top-left': '',
  'top-right': '',
  bottom: '',
  'bottom-mid': '',
  'bottom-left': '',
  'bottom-right': '',
  left: '',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '',
  'right-mid': '',
  middle: '  ',
};

/** A cell's text: `-` for null/undefined, `yes`/`no` for booleans. */
export function cellText(v: CellValue): string {
  if (v === null || v === undefined || v === '') return '-';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

/**
 * Lays out `rows` under `head` in aligned columns, two spaces apart, with no trailing spaces.
 * @param align - per column; default left.
 * @returns the lines, head first.
 */
export function tableLines(head: string[], rows: CellValue[][], align: Align[] = []): string[] {
  const table = new Table({
    head,
    chars: NO_BORDERS,
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
    colAligns: head.map((_h, i) => align[i] ?? 'left'),
    wordWrap: false,
  });
  for (const r of rows) table.push(r.map(cellText));
  return table
    .toString()
    .split('\n')
    .map((l) => l.trimEnd());
}

/** Prints a table to standard output, and `empty` (e.g. `(no jobs)`) when there are no rows. */
export function printTable(
  io: Pick<CliIO, 'out'>,
  head: string[],
  rows: CellValue[][],
  opts: { align?: Align[]; empty?: string } = {},
): void {
  for (const line of tableLines(head, rows, opts.align)) io.out(line);
  if (rows.length === 0 && opts.empty) io.out(opts.empty);
}

/** Prints `label: value` pairs with the values aligned (a record shown vertically). */
export function printFields(io: Pick<CliIO, 'out'>, fields: [string, CellValue][]): void {
  const width = Math.max(0, ...fields.map(([k]) => k.length)) + 1;
  for (const [k, v] of fields) io.out(`${`${k}:`.padEnd(width)}  ${cellText(v)}`);
}

/** A fraction 0..1 as a whole percentage (`45%`), or `-`. */
export function percent(fraction: number | null | undefined): string {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return '-';
  return `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`;
}

/** Milliseconds as `850 ms`, `12.3 s`, `4 m 05 s` or `2 h 03 m`; `-` when null. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const total = Math.round(s);
  const [h, m, sec] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  const two = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h} h ${two(m)} m` : `${m} m ${two(sec)} s`;
}

/** A value as one line of compact JSON (strings as they are), cut to `max` characters. */
export function compact(value: unknown, max = 120): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
