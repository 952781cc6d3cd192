/** Small pieces every page uses: state chips, error and empty boxes, JSON blocks, progress bars. */
import type { ComponentChildren, JSX } from 'preact';
import { prettyJson } from '../lib/format';

/** A job's state as a coloured chip; a completed job with the failed flag shows `failed`. */
export function StateChip({ state, failed }: { state: string; failed?: boolean }): JSX.Element {
  const label = state === 'completed' && failed ? 'failed' : state;
  return <span class={`chip s-${label}`}>{label}</span>;
}

/** A task's state as a coloured chip. */
export function TaskChip({ state }: { state: string }): JSX.Element {
  return <span class={`chip t-${state}`}>{state}</span>;
}

/** The API's refusal or a failure, as the API said it. */
export function ErrorBox({
  error,
  title,
}: {
  error: string | null | undefined;
  title?: string;
}): JSX.Element | null {
  if (!error) return null;
  return (
    <div class="error" role="alert">
      {title ? <strong>{title}: </strong> : null}
      {error}
    </div>
  );
}

/** A success note. */
export function Notice({ children }: { children: ComponentChildren }): JSX.Element {
  return (
    <div class="notice" role="status">
      {children}
    </div>
  );
}

/** Shown while nothing has been read yet. */
export function Loading(): JSX.Element {
  return <p class="muted">Loading…</p>;
}

/** Shown when a list is empty or a part of the API is missing. */
export function Empty({ children }: { children: ComponentChildren }): JSX.Element {
  return <p class="muted empty">{children}</p>;
}

/** A value as pretty JSON. */
export function JsonBlock({ value }: { value: unknown }): JSX.Element {
  return <pre class="json">{prettyJson(value)}</pre>;
}

/** A 0..1 fraction as a thin bar with its percentage. */
export function Progress({
  value,
  label,
}: {
  value: number | null | undefined;
  label?: string | null;
}): JSX.Element | null {
  if (value === null || value === undefined) return null;
  const pct = Math.round(Math.max(0, Math.min(1, value)) * 100);
  return (
    <span class="progress" title={label ?? `${pct}%`}>
      <span class="bar">
        <span style={{ width: `${pct}%` }} />
      </span>
      <span class="pct">{pct}%</span>
    </span>
  );
}

/** A titled section of a page. */
export function Section(props: {
  title: string;
  actions?: ComponentChildren;
  children: ComponentChildren;
  id?: string;
}): JSX.Element {
  return (
    <section class="card" id={props.id}>
      <header class="card-head">
        <h2>{props.title}</h2>
        {props.actions ? <div class="card-actions">{props.actions}</div> : null}
      </header>
      {props.children}
    </section>
  );
}
