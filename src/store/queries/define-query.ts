/**
 * Named-parameter statements: the one way engine code states SQL. A query module under
 * `src/store/queries/` declares each statement once with {@link defineQuery}; callers pass an
 * object of named values and get typed rows back. `$name` placeholders in the text are compiled
 * to PostgreSQL's positional `$1..$n` once, when the module loads, so a statement's text and its
 * parameter list can never drift apart.
 *
 * Values only ever travel as bind parameters: no request value is spliced into SQL text.
 */
import type { Queryable, QueryResult } from '../executor.js';

/** A compiled statement: `run` binds the named values in the order the text first uses them. */
export interface Query<P extends object, R> {
  /** The statement's name (kebab-case), for logs and for finding it in its module. */
  readonly name: string;
  /** The text as sent to PostgreSQL, with `$1..$n`. */
  readonly text: string;
  /** The parameter names, in `$n` order. */
  readonly params: readonly (keyof P & string)[];
  /**
   * Runs the statement on `q` (the executor or a transaction).
   * @throws Error when a named parameter is missing from `values` (a programming error), or the
   *   driver's error when the statement fails.
   */
  run(q: Queryable, values: P): Promise<QueryResult<R>>;
  /** {@link run}, returning only the rows. */
  rows(q: Queryable, values: P): Promise<R[]>;
  /** {@link run}, returning the first row or null. */
  first(q: Queryable, values: P): Promise<R | null>;
}

/** Parameters of a statement that takes none. */
export type NoParams = Record<string, never>;

/** Statement text (as sent) → its name, for timing statements by name (src/engine/metrics). */
const NAMES_BY_TEXT = new Map<string, string>();

/**
 * The name of the statement declared with `text` (compiled, as sent to the executor), or
 * undefined for text no {@link defineQuery} declared (migrations, `BEGIN`).
 */
export function queryNameOf(text: string): string | undefined {
  return NAMES_BY_TEXT.get(text);
}

const PLACEHOLDER = /\$([A-Za-z_][A-Za-z0-9_]*)(\$?)/g;

/**
 * Declares a statement. `$name` stands for the value `values.name`; the same name may appear
 * several times and is bound once. Casts (`$ids::bigint[]`) work as usual.
 * @param name - kebab-case name of the statement, unique within its module.
 * @param text - SQL with `$name` placeholders (no positional `$1`, no dollar-quoted strings).
 * @throws Error at module load when the text uses positional `$1` or dollar quoting.
 */
export function defineQuery<P extends object = NoParams, R = Record<string, unknown>>(
  name: string,
  text: string,
): Query<P, R> {
  if (/\$\d/.test(text)) throw new Error(`query ${name}: use $name placeholders, not positional $n`);
  const order: string[] = [];
  const compiled = text.replace(PLACEHOLDER, (_m, id: string, dollar: string) => {
    if (dollar) throw new Error(`query ${name}: dollar-quoted strings are not supported ($${id}$)`);
    let i = order.indexOf(id);
    if (i < 0) i = order.push(id) - 1;
    return `$${i + 1}`;
  });
  if (!NAMES_BY_TEXT.has(compiled)) NAMES_BY_TEXT.set(compiled, name);
  const bind = (values: P): unknown[] => {
    const v = values as Record<string, unknown>;
    return order.map((k) => {
      if (!(k in v)) throw new Error(`query ${name}: parameter ${k} is missing`);
      const x = v[k];
      return x === undefined ? null : x;
    });
  };
  const run = async (q: Queryable, values: P): Promise<QueryResult<R>> =>
    order.length === 0 ? q.query<R>(compiled) : q.query<R>(compiled, bind(values));
  return {
    name,
    text: compiled,
    params: order as (keyof P & string)[],
    run,
    rows: async (q, values) => (await run(q, values)).rows,
    first: async (q, values) => (await run(q, values)).rows[0] ?? null,
  };
}
