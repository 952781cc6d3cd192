/**
 * Sign-in: a client name and its API key, checked against the engine (`GET /health`); whether the
 * client is an admin is read from `GET /clients` (admins only). Kept in sessionStorage.
 */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError, messageOf, request } from '../lib/api';
import { sessionEndReason, setSession } from '../lib/session';
import type { Health } from '../lib/types';
import { ErrorBox } from '../components/common';
import { noteVersion } from '../lib/version';

export function SignIn(): JSX.Element {
  const [client, setClient] = useState('');
  const [apiKey, setApiKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(sessionEndReason());

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const credentials = { client: client.trim(), apiKey: apiKey.trim() };
    try {
      const health = await request<Health>('GET', '/health', undefined, { credentials });
      noteVersion(health.data.version);
      let admin = false;
      try {
        await request('GET', '/clients', undefined, { credentials });
        admin = true;
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 403) throw err;
      }
      setSession({ ...credentials, admin });
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="signin">
      <form class="card signin-card" onSubmit={(e) => void submit(e)}>
        <h1>Task Engine</h1>
        <p class="muted">Sign in with a client name and its API key.</p>
        <label>
          Client
          <input
            name="client"
            autoComplete="username"
            value={client}
            onInput={(e) => setClient(e.currentTarget.value)}
            placeholder="demo-client"
            required
            autoFocus
          />
        </label>
        <label>
          API key
          <input
            name="api-key"
            type="password"
            autoComplete="current-password"
            value={apiKey}
            onInput={(e) => setApiKey(e.currentTarget.value)}
            required
          />
        </label>
        <ErrorBox error={error} />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p class="muted small">
          A new embedded engine prints the key of <code>demo-client</code> when it starts. The key is kept in
          this browser tab only (sessionStorage) and sent as{' '}
          <code>Authorization: Bearer &lt;client&gt;:&lt;key&gt;</code>.
        </p>
      </form>
    </main>
  );
}
