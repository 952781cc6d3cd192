/**
 * Validation of `job.parameters` against a workflow's `parameters` JSON Schema (SPEC section 5.1),
 * with defaults applied, defaults that refer to other parameters, and the `storage-path` format.
 *
 * Schemas are JSON Schema draft 2020-12 as Ajv implements it, in strict mode (an unknown keyword
 * or format is a definition error), with the ajv-formats formats plus `storage-path`. The one
 * coercion is SPEC section 4's rule for numbers: where the schema takes a `number` or an `integer`
 * and not a string, a numeric string (see `numeric-string.ts`) is read as that number in the
 * resolved parameters (`"5"` → 5; `"2.5"` is still no integer). Nothing else is coerced: `"true"`
 * is not a boolean.
 *
 * Reference defaults (from the original product's manual, e.g. `mp4_filename` defaults to
 * `{content_id}.mp4` and `output_folder` to `{source_folder}`): a string `default` of a top-level
 * property may contain `{name}` where `name` is another top-level parameter. When the parameter is
 * not submitted, its default is filled from the other parameter's resolved value, in dependency
 * order: a default that is exactly `"{name}"` takes the value with its type (`create_dref`
 * defaults to `{generate_vod}`, a boolean); otherwise the references are interpolated into the
 * string. When a referenced parameter has no value (not submitted, no default), the default
 * cannot be built and the submission is refused, naming both parameters: a task would otherwise
 * fail at run time for want of the value. A reference to an undeclared parameter, or a cycle of
 * references, is a definition error found at load.
 */
import { posix } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { parseMediaTime } from '../media/timecode.js';
import { readNumericString } from './numeric-string.js';
import type { ParameterValidation, WorkflowDefinition } from './types.js';

const addFormats = addFormatsModule.default;

/** Name of the format for paths that must stay inside the client's storage folder. */
export const STORAGE_PATH_FORMAT = 'storage-path';

/** What the `storage-path` format accepts, as shown in validation messages. */
export const STORAGE_PATH_RULE =
  "a path relative to the client's storage folder (no leading /, no .. that climbs out, no backslash, NUL or control characters)";

/**
 * The `storage-path` rule: a non-empty relative POSIX path that stays inside the folder it is
 * relative to. Rejects absolute paths, Windows drive prefixes, backslashes, NUL and other control
 * characters, `..` segments that climb above the start, and paths that name the folder itself
 * (`.`, `a/..`). Symlinks are checked when a task resolves the path (`StorageContext.resolve`).
 */
export function isStoragePath(value: string): boolean {
  if (value.length === 0 || value.length > 4096) return false;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(value)) return false;
  if (value.startsWith('/') || /^[A-Za-z]:/.test(value)) return false;
  const normal = posix.normalize(value);
  if (normal === '.' || normal === './' || normal === '..' || normal.startsWith('../')) return false;
  return true;
}

/**
 * Name of the object keyword `timeOrder: [first, second]`: when both properties are present and
 * both read as media offsets (seconds or `hh:mm:ss(.fff)`, see `parseMediaTime`), the second must be
 * after the first. UTC timestamps, or one of each kind, are left to the handler (an offset and an
 * instant cannot be compared without the source).
 */
export const TIME_ORDER_KEYWORD = 'timeOrder';

/** True unless both `names` of `data` are media offsets and the second is not after the first. */
function timesInOrder(data: Record<string, unknown>, [a, b]: [string, string]): boolean {
  if (data[a] === undefined || data[b] === undefined) return true;
  const ta = parseMediaTime(data[a]);
  const tb = parseMediaTime(data[b]);
  if (ta?.kind !== 'offset' || tb?.kind !== 'offset') return true;
  return tb.seconds > ta.seconds;
}

/** Keys every workflow accepts even when its schema does not declare them (SPEC section 7). */
export const COMMON_PARAMETER_SCHEMAS: Readonly<Record<string, Record<string, unknown>>> = {
  rest_endpoints: {
    type: 'array',
    description: 'callback URLs: each gets the task and job events by HTTP POST',
    items: { type: 'string', format: 'uri', pattern: '^https?://' },
  },
  custom_data: { description: 'any JSON; returned unchanged in the job-end callback' },
};

/**
 * Returns `schema` with {@link COMMON_PARAMETER_SCHEMAS} added to its `properties` where it does
 * not declare them itself (a workflow's own declaration wins). The input is not modified.
 */
export function withCommonParameters(schema: Record<string, unknown>): Record<string, unknown> {
  const properties = isPlainObject(schema.properties) ? { ...schema.properties } : {};
  for (const [key, value] of Object.entries(COMMON_PARAMETER_SCHEMAS))
    if (!(key in properties)) properties[key] = structuredClone(value);
  return { ...schema, properties };
}

/** A default that refers to other parameters. */
interface ReferenceDefault {
  /** The default text, e.g. `{content_id}.mp4`. */
  text: string;
  /** Names referred to, in order of appearance. */
  refs: string[];
  /** True when the text is exactly one `{name}`: the value keeps its type. */
  whole: boolean;
}

/** A parameter schema ready to validate submissions. */
interface CompiledParameters {
  validate: ValidateFunction;
  referenceDefaults: Map<string, ReferenceDefault>;
  /** Names with reference defaults, each after the names it refers to. */
  order: string[];
}

const REFERENCE = /(?<!\{)\{([A-Za-z_][A-Za-z0-9_-]*)\}(?!\})/g;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function createAjv(): Ajv2020 {
  const ajv = new Ajv2020({
    allErrors: true,
    verbose: true,
    useDefaults: true,
    coerceTypes: false,
    strict: true,
    strictTypes: false,
    strictTuples: false,
    strictRequired: false,
    allowUnionTypes: true,
    validateFormats: true,
  });
  addFormats(ajv);
  ajv.addFormat(STORAGE_PATH_FORMAT, { type: 'string', validate: isStoragePath });
  ajv.addKeyword({
    keyword: TIME_ORDER_KEYWORD,
    type: 'object',
    schemaType: 'array',
    metaSchema: { type: 'array', items: { type: 'string' }, minItems: 2, maxItems: 2 },
    error: {
      message: (cxt) => {
        const [a, b] = cxt.schema as [string, string];
        return `${b} must be after ${a}`;
      },
    },
    validate: (names: [string, string], data: Record<string, unknown>) => timesInOrder(data, names),
  });
  return ajv;
}

const ajv = createAjv();

/**
 * Finds the reference defaults of a top-level parameter schema and orders them.
 * @returns the defaults, their order, the schema with those defaults removed (Ajv must not insert
 *   the raw `{name}` text), and every problem (unknown reference, cycle).
 */
function analyseReferenceDefaults(schema: Record<string, unknown>): {
  referenceDefaults: Map<string, ReferenceDefault>;
  order: string[];
  stripped: Record<string, unknown>;
  problems: string[];
} {
  const referenceDefaults = new Map<string, ReferenceDefault>();
  const problems: string[] = [];
  const properties = isPlainObject(schema.properties) ? schema.properties : {};
  const strippedProperties: Record<string, unknown> = {};
  for (const [name, prop] of Object.entries(properties)) {
    strippedProperties[name] = prop;
    if (!isPlainObject(prop) || typeof prop.default !== 'string') continue;
    const text = prop.default;
    const refs = [...text.matchAll(REFERENCE)].map((m) => m[1] as string);
    if (refs.length === 0) continue;
    const unknown = refs.filter((r) => !(r in properties));
    if (unknown.length > 0) {
      problems.push(
        `parameters.properties.${name}.default "${text}" refers to ${unknown.map((u) => `{${u}}`).join(', ')}, which is not a declared parameter (declared: ${Object.keys(properties).join(', ')})`,
      );
      continue;
    }
    referenceDefaults.set(name, { text, refs, whole: text === `{${refs[0]}}` && refs.length === 1 });
    const { default: _dropped, ...rest } = prop;
    strippedProperties[name] = rest;
  }
  // Depth-first topological order; a grey node met again is a cycle.
  const order: string[] = [];
  const state = new Map<string, 'grey' | 'black'>();
  const visit = (name: string, trail: string[]): void => {
    const s = state.get(name);
    if (s === 'black') return;
    if (s === 'grey') {
      const cycle = [...trail.slice(trail.indexOf(name)), name];
      problems.push(`parameters: defaults refer to each other in a cycle: ${cycle.join(' -> ')}`);
      return;
    }
    state.set(name, 'grey');
    for (const ref of referenceDefaults.get(name)?.refs ?? [])
      if (referenceDefaults.has(ref)) visit(ref, [...trail, name]);
    state.set(name, 'black');
    order.push(name);
  };
  for (const name of referenceDefaults.keys()) visit(name, []);
  const stripped = isPlainObject(schema.properties) ? { ...schema, properties: strippedProperties } : schema;
  return { referenceDefaults, order, stripped, problems };
}

function compile(schema: Record<string, unknown>): { compiled?: CompiledParameters; problems: string[] } {
  const analysis = analyseReferenceDefaults(schema);
  if (analysis.problems.length > 0) return { problems: analysis.problems };
  try {
    // A top-level `$id` would clash with itself when the same file is compiled again on reload.
    const { $id: _id, ...schemaWithoutId } = analysis.stripped;
    const validate = ajv.compile(schemaWithoutId);
    return {
      compiled: { validate, referenceDefaults: analysis.referenceDefaults, order: analysis.order },
      problems: [],
    };
  } catch (err) {
    return { problems: [`parameters is not a usable JSON Schema: ${(err as Error).message}`] };
  }
}

/**
 * Checks a workflow's `parameters` schema at load time.
 * @returns every problem found (empty when the schema compiles and its reference defaults are sound).
 */
export function checkParameterSchema(schema: unknown): string[] {
  if (!isPlainObject(schema)) return ['parameters must be a JSON Schema object'];
  if (schema.type !== undefined && schema.type !== 'object')
    return [
      `parameters.type must be "object" (job parameters are a JSON object), not ${JSON.stringify(schema.type)}`,
    ];
  return compile(schema).problems;
}

const byDefinition = new WeakMap<WorkflowDefinition, CompiledParameters>();
const bySchemaText = new Map<string, CompiledParameters>();
const SCHEMA_CACHE_LIMIT = 200;

function compiledFor(def: WorkflowDefinition): CompiledParameters {
  const hit = byDefinition.get(def);
  if (hit) return hit;
  // Definitions read back from a job row are new objects each time; key those by schema text.
  const text = JSON.stringify(def.parameters ?? {});
  let compiled = bySchemaText.get(text);
  if (!compiled) {
    const result = compile(def.parameters ?? {});
    if (!result.compiled)
      throw new Error(`workflow ${def.name}: parameters schema is not usable: ${result.problems.join('; ')}`);
    compiled = result.compiled;
    if (bySchemaText.size >= SCHEMA_CACHE_LIMIT) bySchemaText.clear();
    bySchemaText.set(text, compiled);
  }
  byDefinition.set(def, compiled);
  return compiled;
}

/** Renders an Ajv instance path (`/clips/0/start`) as `parameters.clips[0].start`. */
function paramPath(instancePath: string, child?: string): string {
  let out = 'parameters';
  const steps = instancePath === '' ? [] : instancePath.slice(1).split('/');
  if (child !== undefined) steps.push(child);
  for (const raw of steps) {
    const step = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(step)
      ? `[${step}]`
      : /^[A-Za-z_][A-Za-z0-9_-]*$/.test(step)
        ? `.${step}`
        : `[${JSON.stringify(step)}]`;
  }
  return out;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number' && Number.isInteger(v)) return 'integer';
  return typeof v;
}

function describeError(e: ErrorObject): string {
  const p = paramPath(e.instancePath);
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return `${paramPath(e.instancePath, String(params.missingProperty))} is required`;
    case 'type': {
      const types = expectedTypes(e);
      if (typeof e.data === 'string' && takesNumber(types)) {
        const read = readNumericString(e.data);
        if (!read.ok && read.reason === 'unsafe-integer')
          return `${p} is ${JSON.stringify(e.data)}, a whole number beyond ±${Number.MAX_SAFE_INTEGER} (2^53 - 1) that a number cannot hold exactly; send a smaller number (a workflow that needs such ids declares the parameter as a string)`;
        return `${p} must be ${types.join(' or ')} (got string ${quoteShort(e.data)}; a number or a numeric string such as "5" is accepted)`;
      }
      return `${p} must be ${types.join(' or ')} (got ${typeOf(e.data)})`;
    }
    case 'additionalProperties': {
      const extra = String(params.additionalProperty);
      const props = isPlainObject(e.parentSchema?.properties) ? Object.keys(e.parentSchema.properties) : [];
      return `${paramPath(e.instancePath, extra)} is not accepted${props.length ? ` (accepted: ${props.join(', ')})` : ''}`;
    }
    case 'enum':
      return `${p} must be one of: ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `${p} must be ${JSON.stringify(params.allowedValue)}${why(e)}`;
    case 'not':
      return `${p} is not accepted${why(e)}`;
    case TIME_ORDER_KEYWORD: {
      const [a, b] = e.schema as [string, string];
      const d = e.data as Record<string, unknown>;
      return `${p}: ${b} ${JSON.stringify(d[b])} must be after ${a} ${JSON.stringify(d[a])}`;
    }
    case 'format':
      return params.format === STORAGE_PATH_FORMAT
        ? `${p} must be ${STORAGE_PATH_RULE}`
        : `${p} must be a valid ${String(params.format)}`;
    default:
      return `${p} ${e.message ?? 'is not accepted'}`;
  }
}

/** ` (<description>)` of the schema that failed, when it has one: the rule in words. */
function why(e: ErrorObject): string {
  const d = (e.parentSchema as { description?: unknown } | undefined)?.description;
  return typeof d === 'string' && d ? ` (${d})` : '';
}

/** The types a `type` error expected. */
function expectedTypes(e: ErrorObject): string[] {
  const t = (e.params as Record<string, unknown>).type;
  return Array.isArray(t) ? t.map(String) : String(t).split(',');
}

/** True when a value of `types` may be a number but not a string: where numeric strings are read as numbers. */
function takesNumber(types: readonly string[]): boolean {
  return (types.includes('number') || types.includes('integer')) && !types.includes('string');
}

function quoteShort(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/**
 * Replaces, in `resolved`, each string that a `type` error says should be a number or an integer
 * by the number it spells (SPEC section 4), where it does spell one of the expected type.
 * @returns true when anything was replaced (the caller validates again).
 */
function coerceNumericStrings(resolved: Record<string, unknown>, errors: readonly ErrorObject[]): boolean {
  let changed = false;
  for (const e of errors) {
    if (e.keyword !== 'type' || typeof e.data !== 'string' || e.instancePath === '') continue;
    const types = expectedTypes(e);
    if (!takesNumber(types)) continue;
    const read = readNumericString(e.data);
    if (!read.ok || (!types.includes('number') && !Number.isInteger(read.value))) continue;
    const steps = e.instancePath
      .slice(1)
      .split('/')
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    let parent: unknown = resolved;
    for (const step of steps.slice(0, -1)) parent = (parent as Record<string, unknown>)[step];
    const last = steps[steps.length - 1]!;
    if (parent === null || typeof parent !== 'object' || (parent as Record<string, unknown>)[last] !== e.data)
      continue;
    (parent as Record<string, unknown>)[last] = read.value;
    changed = true;
  }
  return changed;
}

function problemsOf(validate: ValidateFunction): string[] {
  const seen = new Set<string>();
  for (const e of validate.errors ?? []) {
    // An `if`/`then` failure is reported by the errors inside `then`, which name the value.
    if (e.keyword === 'if') continue;
    seen.add(describeError(e));
  }
  return [...seen];
}

function fillReferenceDefault(ref: ReferenceDefault, resolved: Record<string, unknown>): unknown {
  if (ref.whole) return structuredClone(resolved[ref.refs[0]!]);
  return ref.text.replace(REFERENCE, (_m, name: string) => {
    const v = resolved[name];
    if (v === null) return '';
    return typeof v === 'string' ? v : JSON.stringify(v);
  });
}

/** Deepest nesting of arrays and objects accepted in `job.parameters` (the object itself is 1). */
export const MAX_PARAMETER_DEPTH = 100;

/** The most problems {@link storabilityProblems} lists before it stops looking. */
const MAX_STORABILITY_PROBLEMS = 10;

/** A UTF-16 surrogate half without its partner: cannot be encoded as UTF-8, so PostgreSQL refuses it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * What in `value` cannot be stored as PostgreSQL `jsonb` or handled without recursion limits: NUL
 * characters (`\u0000`, which `jsonb` text cannot hold and no program argument may contain), lone
 * UTF-16 surrogates (not valid Unicode), in keys or strings, and nesting deeper than
 * {@link MAX_PARAMETER_DEPTH}. Walks iteratively, so a hostile body cannot overflow the stack.
 * @returns a message per problem, naming the parameter path; empty when storable.
 */
export function storabilityProblems(value: unknown): string[] {
  // Almost every value is storable: find that out without building a path per node.
  if (plainlyStorable(value, 1)) return [];
  const problems: string[] = [];
  const stack: { v: unknown; path: string; depth: number }[] = [{ v: value, path: 'parameters', depth: 1 }];
  const checkText = (text: string, where: string): void => {
    if (text.includes('\u0000'))
      problems.push(`${where} contains a NUL character (\\u0000), which is not accepted in parameters`);
    else if (LONE_SURROGATE.test(text))
      problems.push(
        `${where} contains an unpaired UTF-16 surrogate (not valid Unicode); send valid UTF-8 text`,
      );
  };
  while (stack.length > 0 && problems.length < MAX_STORABILITY_PROBLEMS) {
    const { v, path, depth } = stack.pop()!;
    if (typeof v === 'string') {
      checkText(v, path);
      continue;
    }
    if (typeof v !== 'object' || v === null) continue;
    if (depth > MAX_PARAMETER_DEPTH) {
      problems.push(
        `${path} is nested too deeply; parameters accept at most ${MAX_PARAMETER_DEPTH} levels of arrays and objects`,
      );
      continue;
    }
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--)
        stack.push({ v: v[i], path: `${path}[${i}]`, depth: depth + 1 });
      continue;
    }
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      const keyPath = /^[A-Za-z_][A-Za-z0-9_]*$/.test(key)
        ? `${path}.${key}`
        : `${path}[${JSON.stringify(key)}]`;
      checkText(key, `the key ${JSON.stringify(key)} of ${path}`);
      stack.push({ v: (v as Record<string, unknown>)[key], path: keyPath, depth: depth + 1 });
    }
  }
  return problems;
}

/**
 * Whether `value`, at nesting `depth` (the parameters object is 1), holds nothing that
 * {@link storabilityProblems} reports: the same checks, answered without allocating. Recursion is
 * bounded by {@link MAX_PARAMETER_DEPTH} (deeper is answered false, and the iterative walk then
 * names the problem).
 */
function plainlyStorable(value: unknown, depth: number): boolean {
  if (typeof value === 'string') return !value.includes('\u0000') && !LONE_SURROGATE.test(value);
  if (typeof value !== 'object' || value === null) return true;
  if (depth > MAX_PARAMETER_DEPTH) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!plainlyStorable(value[i], depth + 1)) return false;
    return true;
  }
  for (const key of Object.keys(value)) {
    if (key.includes('\u0000') || LONE_SURROGATE.test(key)) return false;
    if (!plainlyStorable((value as Record<string, unknown>)[key], depth + 1)) return false;
  }
  return true;
}

/**
 * A deep copy of parameters, equal to `structuredClone(value)`: plain objects and arrays (all that
 * a JSON body holds) are copied here, which is several times faster for the small objects of a
 * submission; anything else (a `Date`, a `Map`, a class instance from an embedding caller) goes
 * through `structuredClone`, which also throws for what it cannot clone (a function).
 * Called only on values that {@link storabilityProblems} accepted (so at most
 * {@link MAX_PARAMETER_DEPTH} levels deep, without cycles).
 */
function cloneParameters<T>(value: T): T {
  if (typeof value !== 'object' || value === null)
    return typeof value === 'function' || typeof value === 'symbol' ? structuredClone(value) : value;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return structuredClone(value);
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) if (i in value) out[i] = cloneParameters(value[i] as unknown);
    return out as T;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return structuredClone(value);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const copy = cloneParameters((value as Record<string, unknown>)[key]);
    // An own "__proto__" key (JSON.parse makes one) stays a key; an assignment would set the prototype.
    if (key === '__proto__')
      Object.defineProperty(out, key, { value: copy, enumerable: true, writable: true, configurable: true });
    else out[key] = copy;
  }
  return out as T;
}

/**
 * Validates submitted `params` against `def.parameters`, applying defaults (including defaults that
 * refer to other parameters). `undefined` counts as `{}`. The input is never modified.
 * @returns `{ok: true, resolved}` with every default applied, or `{ok: false, problems}` listing
 *   every violation, each naming the parameter and what is accepted, e.g.
 *   `parameters.content_id is required`, `parameters.seconds must be number (got string)`.
 * @throws Error only when the definition's schema itself does not compile (the loader rejects such
 *   files, so this means a definition that bypassed it).
 */
export function validateParameters(def: WorkflowDefinition, params: unknown): ParameterValidation {
  const input = params === undefined ? {} : params;
  if (!isPlainObject(input))
    return { ok: false, problems: [`parameters must be an object (got ${typeOf(input)})`] };
  const unstorable = storabilityProblems(input);
  if (unstorable.length > 0) return { ok: false, problems: unstorable };
  const compiled = compiledFor(def);
  const resolved = cloneParameters(input);
  let valid = compiled.validate(resolved);
  // Numeric strings where a number is expected: read them as numbers, then check again (the
  // number may still break `minimum`, or an `anyOf` branch may now match).
  if (!valid && coerceNumericStrings(resolved, compiled.validate.errors ?? []))
    valid = compiled.validate(resolved);
  if (!valid) return { ok: false, problems: problemsOf(compiled.validate) };
  let filled = false;
  const unbuilt: string[] = [];
  for (const name of compiled.order) {
    if (resolved[name] !== undefined) continue;
    const ref = compiled.referenceDefaults.get(name)!;
    const missing = [...new Set(ref.refs.filter((r) => resolved[r] === undefined))];
    if (missing.length > 0) {
      unbuilt.push(
        `parameters.${name} has no value: its default ${JSON.stringify(ref.text)} is built from ${missing.map((m) => `parameters.${m}`).join(' and ')}, which ${missing.length > 1 ? 'were' : 'was'} not given; give ${missing.join(', ')} or ${name}`,
      );
      continue;
    }
    resolved[name] = fillReferenceDefault(ref, resolved);
    filled = true;
  }
  if (unbuilt.length > 0) return { ok: false, problems: unbuilt };
  // A filled value must satisfy its own property schema too (e.g. a number referred into a string).
  if (filled && !compiled.validate(resolved)) return { ok: false, problems: problemsOf(compiled.validate) };
  return { ok: true, resolved };
}
