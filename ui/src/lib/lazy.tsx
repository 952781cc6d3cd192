/**
 * A page loaded on first use: its module (and what only it needs, such as the log view's
 * virtualiser) stays out of the first bundle the browser downloads.
 */
import type { ComponentType, JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';

/** Wraps `load` (a dynamic import) as a component that renders the module's `pick` export. */
export function lazyPage<P extends object>(load: () => Promise<ComponentType<P>>): (props: P) => JSX.Element {
  let loaded: ComponentType<P> | null = null;
  let loading: Promise<ComponentType<P>> | null = null;
  return function LazyPage(props: P): JSX.Element {
    const [C, setC] = useState<ComponentType<P> | null>(() => loaded);
    const [error, setError] = useState<string | null>(null);
    useEffect(() => {
      if (C) return;
      loading ??= load().then((c) => (loaded = c));
      loading.then(
        (c) => setC(() => c),
        (err: unknown) => {
          loading = null;
          setError(String(err));
        },
      );
    }, []);
    if (error)
      return (
        <main class="page">
          <div class="error">This page could not be loaded ({error}); reload the browser tab.</div>
        </main>
      );
    if (!C)
      return (
        <main class="page">
          <p class="muted">Loading…</p>
        </main>
      );
    return <C {...props} />;
  };
}
