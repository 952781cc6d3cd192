/**
 * The signed-in client: its name, API key and whether it is an admin, kept in sessionStorage (so
 * it lasts while the tab is open and is gone when the browser session ends), and shared with
 * every component through {@link useSession}.
 */
import { useEffect, useState } from 'preact/hooks';

/** Who is signed in. */
export interface Session {
  client: string;
  apiKey: string;
  /** Whether `GET /clients` answered (admins only); decides which pages are shown. */
  admin: boolean;
}

const KEY = 'task-engine.console.session';
const listeners = new Set<(s: Session | null) => void>();
let current: Session | null = read();
/** Why the last session ended, when it was not the operator's choice (shown on the sign-in page). */
let endReason: string | null = null;

function read(): Session | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Partial<Session>;
    return typeof s.client === 'string' && typeof s.apiKey === 'string'
      ? { client: s.client, apiKey: s.apiKey, admin: s.admin === true }
      : null;
  } catch {
    return null;
  }
}

/** The session now (null when signed out). */
export function getSession(): Session | null {
  return current;
}

/** Signs in (or out, with null) and tells every {@link useSession} user. */
export function setSession(s: Session | null, reason: string | null = null): void {
  current = s;
  endReason = s ? null : reason;
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
  for (const l of listeners) l(s);
}

/** Why the session ended, when the API refused its credentials. */
export function sessionEndReason(): string | null {
  return endReason;
}

/** The `Authorization` header value for the session. */
export function authorization(s: { client: string; apiKey: string }): string {
  return `Bearer ${s.client}:${s.apiKey}`;
}

/** The current session, re-rendering when it changes. */
export function useSession(): Session | null {
  const [s, set] = useState(current);
  useEffect(() => {
    listeners.add(set);
    set(current);
    return () => {
      listeners.delete(set);
    };
  }, []);
  return s;
}
