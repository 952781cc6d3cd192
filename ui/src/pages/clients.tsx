/**
 * Clients (admins): every client with the last four characters of its key (`GET /clients`);
 * adding one (`POST /clients`) shows its API key and signing secret this once; revoking one
 * (`DELETE /clients/<name>`) stops its key at once; rotating a signing secret shows the new one
 * once.
 */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { del, get, messageOf, post } from '../lib/api';
import { formatTime } from '../lib/format';
import { useResource } from '../lib/resource';
import type { Session } from '../lib/session';
import type { ClientRecord } from '../lib/types';
import { ActionButton } from '../components/action';
import { ErrorBox, Loading, Section } from '../components/common';

interface Secret {
  title: string;
  lines: [string, string][];
}

function SecretBox({ secret, onClose }: { secret: Secret; onClose: () => void }): JSX.Element {
  return (
    <div class="secret" role="status" data-testid="secret">
      <strong>{secret.title}</strong>
      <p class="small">Shown only this once: copy it now.</p>
      {secret.lines.map(([k, v]) => (
        <div key={k} class="secret-line">
          <span class="muted">{k}</span>
          <code data-secret={k}>{v}</code>
          <button type="button" onClick={() => void navigator.clipboard?.writeText(v)}>
            Copy
          </button>
        </div>
      ))}
      <button type="button" class="link" onClick={onClose}>
        I have copied it
      </button>
    </div>
  );
}

export function Clients({ session }: { session: Session }): JSX.Element {
  const res = useResource((signal) => get<ClientRecord[]>('/clients', undefined, signal), []);
  const [name, setName] = useState('');
  const [admin, setAdmin] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [secret, setSecret] = useState<Secret | null>(null);
  const add = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(null);
    try {
      const c = await post<{ name: string; api_key: string; signing_secret: string }>('/clients', {
        name: name.trim(),
        admin,
      });
      setSecret({
        title: `Client "${c.name}" added`,
        lines: [
          ['API key', c.api_key],
          ['signing secret', c.signing_secret],
        ],
      });
      setName('');
      setAdmin(false);
      res.reload();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <main class="page">
      <h1>Clients</h1>
      {secret ? <SecretBox secret={secret} onClose={() => setSecret(null)} /> : null}
      <Section title="Add a client">
        <form class="inline-form" onSubmit={(e) => void add(e)}>
          <input
            name="client-name"
            placeholder="name (a-z 0-9 - _)"
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
          <label class="inline">
            <input type="checkbox" checked={admin} onChange={(e) => setAdmin(e.currentTarget.checked)} />{' '}
            admin
          </label>
          <button type="submit" class="primary">
            Add
          </button>
        </form>
        <ErrorBox error={error} title="Refused" />
      </Section>
      <ErrorBox error={res.error} />
      {!res.data ? (
        res.error ? null : (
          <Loading />
        )
      ) : (
        <Section title="Clients">
          <table class="table">
            <thead>
              <tr>
                <th>name</th>
                <th>key</th>
                <th>created</th>
                <th>revoked</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {res.data.map((c) => (
                <tr key={c.name} class={c.revoked_at ? 'revoked' : ''} data-client={c.name}>
                  <td>
                    {c.name}
                    {c.admin ? <span class="badge">admin</span> : null}
                    {c.name === session.client ? <span class="badge">you</span> : null}
                  </td>
                  <td>
                    <code>…{c.api_key_last4}</code>
                  </td>
                  <td>{formatTime(c.created_at)}</td>
                  <td>{formatTime(c.revoked_at)}</td>
                  <td>
                    {c.revoked_at ? null : (
                      <div class="row-actions">
                        <ActionButton
                          label="Rotate signing secret"
                          confirm={`Give "${c.name}" a new callback signing secret? The old one keeps signing alongside until the overlap is ended.`}
                          run={() =>
                            post<{ signing_secret: string }>(
                              `/clients/${encodeURIComponent(c.name)}/signing-secret`,
                              { keep_previous: true },
                            )
                          }
                          onDone={(r) =>
                            setSecret({
                              title: `New signing secret of "${c.name}"`,
                              lines: [['signing secret', (r as { signing_secret: string }).signing_secret]],
                            })
                          }
                        />
                        <ActionButton
                          label="Revoke"
                          danger
                          confirm={`Revoke "${c.name}"? Its key stops working at once; its jobs stay. The name can be added again with a new key.`}
                          run={() => del(`/clients/${encodeURIComponent(c.name)}`)}
                          onDone={res.reload}
                        />
                      </div>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </Section>
      )}
    </main>
  );
}
