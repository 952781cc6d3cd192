/** The engine's version as last read (at sign-in, by the overview), for the header. */
import { useEffect, useState } from 'preact/hooks';

let known: string | null = null;
const listeners = new Set<(v: string) => void>();

/** Records the version an API reply carried. */
export function noteVersion(v: string | undefined): void {
  if (!v || v === known) return;
  known = v;
  for (const l of listeners) l(v);
}

/** The engine's version, or null until one is known. */
export function useVersion(): string | null {
  const [v, set] = useState(known);
  useEffect(() => {
    listeners.add(set);
    set(known);
    return () => {
      listeners.delete(set);
    };
  }, []);
  return v;
}
