/**
 * Live pages: {@link useLive} opens the event stream a page needs and hands it each event; when
 * the engine has no stream (status `polling`) it calls the page's `refresh` on a timer instead,
 * and after a reconnect or an `event: reset` it calls `refresh` once, since the page's state may
 * have missed changes. The status is shared for the header's indicator.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { type LiveEvent, type LiveStatus, openEventStream, type StreamQuery } from './events';

/** How often a page reads its data again when there is no event stream. */
export const POLL_MS = 2000;

const statusListeners = new Set<(s: LiveStatus | null) => void>();
let sharedStatus: LiveStatus | null = null;

function publish(s: LiveStatus | null): void {
  sharedStatus = s;
  for (const l of statusListeners) l(s);
}

/** The status of the current page's stream (null on pages without one). */
export function useLiveStatus(): LiveStatus | null {
  const [s, set] = useState(sharedStatus);
  useEffect(() => {
    statusListeners.add(set);
    set(sharedStatus);
    return () => {
      statusListeners.delete(set);
    };
  }, []);
  return s;
}

/**
 * Keeps a page live.
 * @param query - what to stream (null: nothing yet); the stream is reopened when it changes.
 * @param onEvent - each event (job, task, log); `reset` is handled here by calling `refresh`.
 * @param refresh - reads the page's data again.
 */
export function useLive(
  query: StreamQuery | null,
  onEvent: (e: LiveEvent) => void,
  refresh: () => void,
): LiveStatus | null {
  const [status, setStatus] = useState<LiveStatus | null>(null);
  const handlers = useRef({ onEvent, refresh });
  handlers.current = { onEvent, refresh };
  const key = query ? JSON.stringify(query) : null;
  useEffect(() => {
    if (!query) return;
    let timer: ReturnType<typeof setInterval> | null = null;
    let wasLive = false;
    const close = openEventStream(
      query,
      (e) => {
        if (e.kind === 'reset') handlers.current.refresh();
        else handlers.current.onEvent(e);
      },
      (s) => {
        setStatus(s);
        publish(s);
        if (s === 'live') {
          if (wasLive) handlers.current.refresh();
          wasLive = true;
        }
        if (s === 'polling' && !timer) timer = setInterval(() => handlers.current.refresh(), POLL_MS);
      },
    );
    return () => {
      close();
      if (timer) clearInterval(timer);
      publish(null);
    };
  }, [key]);
  return status;
}

/**
 * A function that runs `fn` at most once per `ms` (the last call within a window runs at its end),
 * for reading a page again after a burst of events.
 */
export function useThrottle(fn: () => void, ms: number): () => void {
  const state = useRef({ fn, timer: null as ReturnType<typeof setTimeout> | null, last: 0 });
  state.current.fn = fn;
  useEffect(
    () => () => {
      if (state.current.timer) clearTimeout(state.current.timer);
    },
    [],
  );
  const ref = useRef<() => void>(() => {
    const s = state.current;
    if (s.timer) return;
    const wait = Math.max(0, s.last + ms - Date.now());
    s.timer = setTimeout(() => {
      s.timer = null;
      s.last = Date.now();
      s.fn();
    }, wait);
  });
  return ref.current;
}

/** Re-renders the caller every `ms` while `active` (times that grow while something runs). */
export function useTick(active: boolean, ms = 1000): void {
  const [, set] = useState(0);
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => set((n) => n + 1), ms);
    return () => clearInterval(t);
  }, [active, ms]);
}
