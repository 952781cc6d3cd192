/**
 * A small history router for the console's pages under `/ui/`. The engine answers every page path
 * with index.html, so links are ordinary URLs (`/ui/jobs/42`) that can be bookmarked and shared.
 */
import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';

/** The console's base path. */
export const BASE = '/ui';

/** The page now: the path inside the console (`/jobs/42`) and the query string. */
export interface Location {
  path: string;
  query: URLSearchParams;
}

const listeners = new Set<() => void>();

function current(): Location {
  const p = window.location.pathname;
  const inner = p.startsWith(BASE) ? p.slice(BASE.length) || '/' : p;
  return { path: inner.replace(/\/+$/, '') || '/', query: new URLSearchParams(window.location.search) };
}

window.addEventListener('popstate', () => {
  for (const l of listeners) l();
});

/** The full URL of a console path (`/jobs/42` → `/ui/jobs/42`). */
export function href(path: string): string {
  return `${BASE}${path.startsWith('/') ? path : `/${path}`}`;
}

/**
 * Goes to a console path.
 * @param replace - replace the history entry (filters typed into a page) instead of adding one.
 */
export function navigate(path: string, replace = false): void {
  const url = href(path);
  if (url === window.location.pathname + window.location.search) return;
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  if (!replace) window.scrollTo(0, 0);
  for (const l of listeners) l();
}

/** The current location, re-rendering on every navigation. */
export function useLocation(): Location {
  const [loc, set] = useState(current);
  useEffect(() => {
    const on = (): void => set(current());
    listeners.add(on);
    return () => {
      listeners.delete(on);
    };
  }, []);
  return loc;
}

/**
 * Matches `path` against a pattern with `:name` segments.
 * @returns the decoded segment values, or null when it does not match.
 */
export function match(pattern: string, path: string): Record<string, string> | null {
  const a = pattern.split('/');
  const b = path.split('/');
  if (a.length !== b.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    const p = a[i]!;
    if (p.startsWith(':')) out[p.slice(1)] = decodeURIComponent(b[i]!);
    else if (p !== b[i]) return null;
  }
  return out;
}

/** A link to a console page; plain clicks navigate without reloading. */
export function Link(props: {
  to: string;
  children: ComponentChildren;
  class?: string;
  title?: string;
  'aria-current'?: 'page';
}): JSX.Element {
  const { to, children } = props;
  return (
    <a
      class={props.class}
      title={props.title}
      aria-current={props['aria-current']}
      href={href(to)}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(to);
      }}
    >
      {children}
    </a>
  );
}
