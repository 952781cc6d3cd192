/**
 * {@link useResource}: data a page reads from the API, read again on demand (`reload`) without
 * blanking what is shown, and with the API's message when it fails.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { messageOf } from './api';

/** What a resource holds now. */
export interface Resource<T> {
  data: T | undefined;
  error: string | null;
  /** The HTTP status of the last failure (0 for a network failure). */
  status: number | null;
  loading: boolean;
  reload: () => void;
  /** Replaces the data shown (for an update from an event). */
  set: (update: (d: T | undefined) => T | undefined) => void;
}

/**
 * Reads `load` when `deps` change, and again on `reload()`. A reply that arrives after a newer
 * request was started is dropped.
 */
export function useResource<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Resource<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<number | null>(null);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  const loader = useRef(load);
  loader.current = load;
  const run = useCallback(() => {
    const mine = ++seq.current;
    const ctrl = new AbortController();
    setLoading(true);
    loader
      .current(ctrl.signal)
      .then((d) => {
        if (mine !== seq.current) return;
        setData(d);
        setError(null);
        setStatus(null);
      })
      .catch((err: unknown) => {
        if (mine !== seq.current || (err as Error).name === 'AbortError') return;
        setError(messageOf(err));
        setStatus(
          typeof (err as { status?: unknown }).status === 'number'
            ? (err as { status: number }).status
            : null,
        );
      })
      .finally(() => {
        if (mine === seq.current) setLoading(false);
      });
    return ctrl;
  }, []);
  useEffect(() => {
    setData(undefined);
    const ctrl = run();
    return () => ctrl.abort();
  }, deps);
  return { data, error, status, loading, reload: run, set: setData };
}
