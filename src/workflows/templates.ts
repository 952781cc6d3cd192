/**
 * `{{ path }}` templates in workflow definitions (SPEC section 11).
 *
 * A template is a string holding zero or more expressions `{{ path }}` (spaces optional). A path is
 * a root (`parameters`, `job`, `tasks`, `storage`) followed by `.name` and `[n]` steps, for example
 * `{{ tasks.probe.output.streams[0].codec_name }}`. A leading `!` negates the value's truthiness
 * (`{{ !parameters.generate_vod }}` renders a boolean). Nothing else is accepted: no calls, no
 * operators, no filters. Templates are data lookups that never evaluate code and never reach a shell.
 *
 * Rendering rules:
 * - A string that is exactly one expression renders to the value itself, keeping its type
 *   (number, boolean, object, array, null); a missing value renders `undefined`.
 * - A string mixing text and expressions interpolates: strings as they are, numbers and booleans
 *   with `String()`, objects and arrays JSON-encoded, `null` and missing values as the empty string.
 * - Objects are rendered value by value (keys are never templates); a key whose value renders
 *   `undefined` is left out. Array elements that render `undefined` become `null`.
 * - Lookups read own properties only, so `constructor`, `__proto__` and other inherited names
 *   always resolve to nothing.
 */

/** A root a template path may start with. */
export const TEMPLATE_ROOTS = ['parameters', 'job', 'tasks', 'storage'] as const;
/** One of {@link TEMPLATE_ROOTS}. */
export type TemplateRoot = (typeof TEMPLATE_ROOTS)[number];

/** The fields of `job` a template may read. */
export const TEMPLATE_JOB_FIELDS = ['id', 'client', 'workflow', 'priority'] as const;
/** The fields of `storage` a template may read. */
export const TEMPLATE_STORAGE_FIELDS = ['root'] as const;

/** What templates are rendered against (SPEC section 11). */
export interface TemplateScope {
  /** The job's resolved parameters. */
  parameters: Record<string, unknown>;
  job: { id: number; client: string; workflow: string; priority: number };
  /** Tasks that have ended, by name: `{ output, state }`. */
  tasks: Record<string, { output?: unknown; state?: string }>;
  /** The client's storage: `root` is the absolute folder `<storage root>/<client>`. */
  storage: { root: string };
}

/** One `{{ … }}` expression, parsed. */
export interface TemplateExpression {
  /** The text between the braces, trimmed. */
  source: string;
  /** The root and each step: names are strings, `[n]` indexes are numbers. */
  path: [TemplateRoot, ...(string | number)[]];
  /** True for `{{ !path }}`: renders `!isTruthy(value)`. */
  negate: boolean;
}

/** A parsed template: literal text and expressions in order. */
export interface ParsedTemplate {
  parts: (string | TemplateExpression)[];
  /** True when the whole string is exactly one expression (the value keeps its type). */
  whole: boolean;
}

/** A template that does not parse. `message` says where and what is accepted. */
export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

const NAME = /^[A-Za-z_][A-Za-z0-9_-]*/;
const INDEX = /^\[(\d{1,9})\]/;

/**
 * Parses the text of one expression (between the braces) into a path.
 * @throws TemplateError when it is not `root(.name|[n])*` with a known root.
 */
export function parseExpression(text: string): TemplateExpression {
  const source = text.trim();
  let rest = source;
  let negate = false;
  if (rest.startsWith('!')) {
    negate = true;
    rest = rest.slice(1).trimStart();
  }
  const accepted = `accepted: a path such as parameters.name, job.id, tasks.<task>.output.field, storage.root, with .name and [n] steps, optionally preceded by !`;
  const first = NAME.exec(rest);
  if (!first) throw new TemplateError(`template expression {{ ${source} }} is not a path (${accepted})`);
  const root = first[0];
  if (!(TEMPLATE_ROOTS as readonly string[]).includes(root))
    throw new TemplateError(
      `template expression {{ ${source} }} starts with "${root}"; it must start with ${TEMPLATE_ROOTS.join(', ')}`,
    );
  const path: [TemplateRoot, ...(string | number)[]] = [root as TemplateRoot];
  rest = rest.slice(root.length);
  while (rest.length > 0) {
    if (rest.startsWith('.')) {
      const m = NAME.exec(rest.slice(1));
      if (!m)
        throw new TemplateError(`template expression {{ ${source} }} has a bad step after "." (${accepted})`);
      path.push(m[0]);
      rest = rest.slice(1 + m[0].length);
      continue;
    }
    const idx = INDEX.exec(rest);
    if (idx) {
      path.push(Number(idx[1]));
      rest = rest.slice(idx[0].length);
      continue;
    }
    throw new TemplateError(
      `template expression {{ ${source} }} has unexpected text "${rest}" (${accepted})`,
    );
  }
  return { source, path, negate };
}

const parsedCache = new Map<string, ParsedTemplate>();
const PARSED_CACHE_LIMIT = 5000;

/**
 * Parses a template string into literal text and expressions. Used at load time to reject bad
 * templates, and (cached) when rendering.
 * @throws TemplateError naming the expression and what is accepted; also for an unclosed `{{`.
 */
export function parseTemplate(text: string): ParsedTemplate {
  const cached = parsedCache.get(text);
  if (cached) return cached;
  const parts: (string | TemplateExpression)[] = [];
  let pos = 0;
  while (pos < text.length) {
    const open = text.indexOf('{{', pos);
    if (open < 0) {
      parts.push(text.slice(pos));
      break;
    }
    const close = text.indexOf('}}', open + 2);
    if (close < 0) throw new TemplateError(`template "${text}" has a "{{" without a closing "}}"`);
    if (open > pos) parts.push(text.slice(pos, open));
    parts.push(parseExpression(text.slice(open + 2, close)));
    pos = close + 2;
  }
  const parsed: ParsedTemplate = { parts, whole: parts.length === 1 && typeof parts[0] !== 'string' };
  if (parsedCache.size >= PARSED_CACHE_LIMIT) parsedCache.clear();
  parsedCache.set(text, parsed);
  return parsed;
}

/** True when `text` holds at least one `{{`. Cheap test before parsing. */
export function hasTemplate(text: string): boolean {
  return text.includes('{{');
}

/**
 * Reads `path` from `scope`, own properties only; anything missing on the way gives `undefined`.
 */
export function lookupPath(scope: TemplateScope, path: readonly (string | number)[]): unknown {
  let current: unknown = scope;
  for (const step of path) {
    if (current === null || typeof current !== 'object') return undefined;
    if (typeof step === 'number') {
      if (!Array.isArray(current)) return undefined;
      current = step < current.length ? current[step] : undefined;
    } else {
      if (Array.isArray(current) || !Object.prototype.hasOwnProperty.call(current, step)) return undefined;
      current = (current as Record<string, unknown>)[step];
    }
  }
  return current;
}

function evaluate(expr: TemplateExpression, scope: TemplateScope): unknown {
  const value = lookupPath(scope, expr.path);
  return expr.negate ? !isTruthy(value) : value;
}

function interpolate(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  return JSON.stringify(value);
}

function renderString(text: string, scope: TemplateScope): unknown {
  if (!hasTemplate(text)) return text;
  const parsed = parseTemplate(text);
  if (parsed.whole) return evaluate(parsed.parts[0] as TemplateExpression, scope);
  let out = '';
  for (const part of parsed.parts)
    out += typeof part === 'string' ? part : interpolate(evaluate(part, scope));
  return out;
}

/**
 * Renders every template inside `value` (strings, arrays, plain objects, recursively) against
 * `scope`; other values are returned as they are. The input is never modified.
 * @returns the rendered value (see the module comment for the rules on types and missing values).
 * @throws TemplateError when a string holds an expression that does not parse (definitions are
 *   checked at load, so this means a value that bypassed the loader).
 */
export function renderTemplate(value: unknown, scope: TemplateScope): unknown {
  if (typeof value === 'string') return renderString(value, scope);
  if (Array.isArray(value)) {
    return value.map((item) => {
      const rendered = renderTemplate(item, scope);
      return rendered === undefined ? null : rendered;
    });
  }
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const rendered = renderTemplate(item, scope);
      if (rendered !== undefined) out[key] = rendered;
    }
    return out;
  }
  return value;
}

/**
 * Truthiness of a rendered `if` (and of `!` expressions): false for `undefined`, `null`, `false`,
 * `0`, `NaN`, the empty string, the strings `"false"` (any case) and `"0"` (surrounding spaces
 * ignored), and an empty array; true for everything else, including empty objects.
 */
export function isTruthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false) return false;
  if (typeof v === 'number') return v !== 0 && !Number.isNaN(v);
  if (typeof v === 'string') {
    const t = v.trim().toLowerCase();
    return t !== '' && t !== 'false' && t !== '0';
  }
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

/** Where a template expression was found: a location such as `tasks[1].with.args[0]`. */
export interface TemplateReference {
  where: string;
  expression: TemplateExpression;
}

/**
 * Finds every expression inside `value` (walking strings, arrays and objects) and every parse
 * problem, labelling each with its location under `where`. Used by the loader.
 */
export function collectTemplates(
  value: unknown,
  where: string,
): { references: TemplateReference[]; problems: string[] } {
  const references: TemplateReference[] = [];
  const problems: string[] = [];
  const walk = (v: unknown, at: string): void => {
    if (typeof v === 'string') {
      if (!hasTemplate(v)) return;
      try {
        for (const part of parseTemplate(v).parts)
          if (typeof part !== 'string') references.push({ where: at, expression: part });
      } catch (err) {
        problems.push(`${at}: ${(err as Error).message}`);
      }
    } else if (Array.isArray(v)) {
      v.forEach((item, i) => walk(item, `${at}[${i}]`));
    } else if (v !== null && typeof v === 'object') {
      for (const [key, item] of Object.entries(v)) walk(item, `${at}.${key}`);
    }
  };
  walk(value, where);
  return { references, problems };
}
