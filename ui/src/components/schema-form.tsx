/**
 * A form generated from a workflow's parameter schema (JSON Schema): one field per property,
 * its input chosen by its type (text, number, checkbox, a list for an enum, one line per item for a
 * list of strings, JSON for anything else), defaults filled in, required ones marked. A field left
 * at its default is not sent, so the engine applies the default exactly as the schema says
 * (defaults built from other parameters included). The engine checks the values: its 400 is read
 * back into messages per field with {@link fieldErrors}.
 */
import type { JSX } from 'preact';
import type { JsonSchema } from '../lib/types';

/** What the operator typed, per property (checkboxes as booleans). */
export type RawValues = Record<string, string | boolean>;

type Kind = 'string' | 'number' | 'boolean' | 'enum' | 'lines' | 'json';

function typesOf(s: JsonSchema): string[] {
  return s.type === undefined ? [] : Array.isArray(s.type) ? s.type : [s.type];
}

/** How a property is edited. */
export function kindOf(s: JsonSchema): Kind {
  if (Array.isArray(s.enum) && s.enum.every((v) => typeof v === 'string' || typeof v === 'number'))
    return 'enum';
  const t = typesOf(s).filter((x) => x !== 'null');
  if (t.length === 1) {
    if (t[0] === 'string') return 'string';
    if (t[0] === 'number' || t[0] === 'integer') return 'number';
    if (t[0] === 'boolean') return 'boolean';
    if (t[0] === 'array' && s.items && typesOf(s.items).join() === 'string') return 'lines';
  }
  return 'json';
}

/** The text a default shows as in its field. */
function defaultText(s: JsonSchema, kind: Kind): string | boolean {
  const d = s.default;
  if (kind === 'boolean') return d === true;
  if (d === undefined) return '';
  if (kind === 'lines') return Array.isArray(d) ? d.map(String).join('\n') : '';
  if (kind !== 'json' && (typeof d === 'string' || typeof d === 'number' || typeof d === 'boolean'))
    return String(d);
  return JSON.stringify(d, null, 2);
}

/** The fields' first values: every default filled in. */
export function initialValues(schema: JsonSchema): RawValues {
  const out: RawValues = {};
  for (const [name, s] of Object.entries(schema.properties ?? {})) out[name] = defaultText(s, kindOf(s));
  return out;
}

/**
 * The parameters to submit: every field that differs from its default (or is required), read as
 * its type says. A value that cannot be read (JSON that does not parse) is a problem for that field.
 */
export function toParameters(
  schema: JsonSchema,
  raw: RawValues,
): { parameters: Record<string, unknown>; problems: Record<string, string> } {
  const parameters: Record<string, unknown> = {};
  const problems: Record<string, string> = {};
  const required = new Set(schema.required ?? []);
  for (const [name, s] of Object.entries(schema.properties ?? {})) {
    const kind = kindOf(s);
    const v = raw[name];
    const atDefault = v === defaultText(s, kind) && s.default !== undefined;
    if (atDefault && !required.has(name)) continue;
    if (kind === 'boolean') {
      if (v === true || required.has(name) || s.default !== undefined) parameters[name] = v === true;
      continue;
    }
    const text = typeof v === 'string' ? v : '';
    if (text.trim() === '') continue;
    if (kind === 'string') parameters[name] = text;
    else if (kind === 'enum') {
      const option = (s.enum ?? []).find((o) => String(o) === text);
      parameters[name] = option ?? text;
    } else if (kind === 'number') {
      const n = Number(text.trim());
      // A numeric string the engine reads as a number; anything else is sent as typed, so the
      // engine's own message says what is wrong with it.
      parameters[name] = Number.isFinite(n) ? n : text;
    } else if (kind === 'lines')
      parameters[name] = text
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
    else
      try {
        parameters[name] = JSON.parse(text);
      } catch (err) {
        problems[name] = `not valid JSON (${(err as Error).message})`;
      }
  }
  return { parameters, problems };
}

/**
 * Reads a refusal of `POST /job` into messages per field: each `parameters.<name> …` or
 * `job.<name> …` problem goes to that field (`job.` ones under `job.<name>`), the rest to `''`.
 */
export function fieldErrors(message: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const add = (k: string, m: string): void => {
    (out[k] ??= []).push(m);
  };
  const m = /^parameters are not valid for workflow "[^"]*": ([\s\S]*)$/.exec(message);
  const problems = m ? m[1]!.split('; ') : [message];
  for (const p of problems) {
    const field = /^(parameters|job)(?:\.([A-Za-z_][\w-]*)|\["((?:[^"\\]|\\.)*)"\])/.exec(p.trim());
    if (field)
      add(field[1] === 'job' ? `job.${field[2] ?? field[3]}` : (field[2] ?? field[3] ?? ''), p.trim());
    else add('', p.trim());
  }
  return out;
}

/** The generated fields (see the module comment). */
export function SchemaForm(props: {
  schema: JsonSchema;
  values: RawValues;
  onChange: (name: string, value: string | boolean) => void;
  errors: Record<string, string[]>;
}): JSX.Element {
  const props_ = Object.entries(props.schema.properties ?? {});
  const required = new Set(props.schema.required ?? []);
  if (props_.length === 0)
    return (
      <p class="muted">
        This workflow declares no parameters
        {props.schema.additionalProperties === false ? '' : '; any extra ones can go in the JSON box below'}.
      </p>
    );
  return (
    <div class="schema-form">
      {props_.map(([name, s]) => {
        const kind = kindOf(s);
        const v = props.values[name];
        const errs = props.errors[name];
        const id = `param-${name}`;
        const hint = [
          s.description,
          s.default !== undefined ? `default ${JSON.stringify(s.default)}` : null,
          s.minimum !== undefined ? `≥ ${s.minimum}` : null,
          s.maximum !== undefined ? `≤ ${s.maximum}` : null,
          s.format ? `format ${s.format}` : null,
          kind === 'lines' ? 'one per line' : null,
          kind === 'json' ? 'JSON' : null,
        ]
          .filter(Boolean)
          .join(' · ');
        let input: JSX.Element;
        const common = {
          id,
          name,
          'aria-invalid': errs ? ('true' as const) : undefined,
          'aria-describedby': `${id}-hint`,
        };
        if (kind === 'boolean')
          input = (
            <input
              {...common}
              type="checkbox"
              checked={v === true}
              onChange={(e) => props.onChange(name, e.currentTarget.checked)}
            />
          );
        else if (kind === 'enum')
          input = (
            <select
              {...common}
              value={String(v ?? '')}
              onChange={(e) => props.onChange(name, e.currentTarget.value)}
            >
              <option value="">—</option>
              {(s.enum ?? []).map((o) => (
                <option key={String(o)} value={String(o)}>
                  {String(o)}
                </option>
              ))}
            </select>
          );
        else if (kind === 'lines' || kind === 'json')
          input = (
            <textarea
              {...common}
              rows={kind === 'json' ? 3 : 2}
              value={String(v ?? '')}
              onInput={(e) => props.onChange(name, e.currentTarget.value)}
              spellcheck={false}
            />
          );
        else
          input = (
            <input
              {...common}
              type="text"
              inputMode={kind === 'number' ? 'decimal' : undefined}
              value={String(v ?? '')}
              onInput={(e) => props.onChange(name, e.currentTarget.value)}
            />
          );
        return (
          <div class={`field ${errs ? 'has-error' : ''}`} key={name} data-field={name}>
            <label for={id}>
              {name}
              {required.has(name) ? (
                <span class="req" title="required">
                  {' '}
                  *
                </span>
              ) : null}
              <span class="muted small"> {typesOf(s).join(' | ') || 'any'}</span>
            </label>
            {input}
            {hint ? (
              <div class="hint muted small" id={`${id}-hint`}>
                {hint}
              </div>
            ) : null}
            {errs ? (
              <div class="field-error" role="alert">
                {errs.join('; ')}
              </div>
            ) : null}
          </div>
        );
      })}
    </div>
  );
}
