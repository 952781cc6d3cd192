/**
 * Settings: every setting with its value (`GET /settings`), each changed with `POST /settings`
 * (admins). Known settings take whole numbers, checked here before sending; every other rule
 * (`priority_slots` ≤ `max_jobs` …) is the engine's, and its refusal is shown as it said it.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { get, messageOf, post } from '../lib/api';
import { useResource } from '../lib/resource';
import type { Session } from '../lib/session';
import { ErrorBox, Loading, Notice, Section } from '../components/common';

/** What the known settings mean (docs/api.md, "POST /settings"). */
const KNOWN: Record<string, string> = {
  max_jobs: 'jobs started at once, at most',
  priority_slots: 'of those slots, how many are kept for urgent jobs',
  priority_threshold: 'a job with a priority at or below this is urgent',
  schedule_interval: 'seconds between runs of the queue_scheduled_jobs schedule',
  retry_delay: 'seconds before a failed task is tried again',
  retry_limit: 'tries of a failing task before it fails for good',
  retention_days: 'days a finished job is kept before the clean-up deletes it',
  callback_retry_limit: 'tries of a callback delivery before it is given up',
  stall_timeout: 'seconds without a heartbeat before a running attempt counts as stalled',
  idempotency_retention: 'seconds a job.idempotency_key answers with its job',
};

/** A problem with a value before it is sent, or null. */
function check(name: string, value: string): string | null {
  if (value.trim() === '') return 'give a value';
  if (name in KNOWN && !/^\s*[+-]?\d+\s*$/.test(value)) return `${name} takes a whole number`;
  return null;
}

function SettingRow({
  name,
  value,
  admin,
  onSaved,
}: {
  name: string;
  value: unknown;
  admin: boolean;
  onSaved: (m: string) => void;
}): JSX.Element {
  const [text, setText] = useState(String(value));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => setText(String(value)), [value]);
  const changed = text !== String(value);
  const save = async (e: Event): Promise<void> => {
    e.preventDefault();
    const problem = check(name, text);
    if (problem) {
      setError(problem);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const r = await post<{ message: string }>('/settings', { name, setting: text.trim() });
      onSaved(r.message);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <tr data-setting={name}>
      <td>
        <strong>{name}</strong>
        <div class="muted small">{KNOWN[name] ?? 'not a setting the engine knows: stored as given'}</div>
      </td>
      <td>
        <form class="inline-form" onSubmit={(e) => void save(e)}>
          <input
            name={name}
            value={text}
            disabled={!admin}
            inputMode={name in KNOWN ? 'numeric' : undefined}
            aria-invalid={error ? 'true' : undefined}
            onInput={(e) => {
              setText(e.currentTarget.value);
              setError(null);
            }}
          />
          {admin ? (
            <button type="submit" class={changed ? 'primary' : ''} disabled={busy || !changed}>
              Save
            </button>
          ) : null}
          {changed && admin ? (
            <button type="button" class="link" onClick={() => setText(String(value))}>
              undo
            </button>
          ) : null}
        </form>
        {error ? (
          <div class="field-error" role="alert">
            {error}
          </div>
        ) : null}
      </td>
    </tr>
  );
}

export function Settings({ session }: { session: Session }): JSX.Element {
  const res = useResource(
    (signal) => get<{ settings: Record<string, unknown> }>('/settings', undefined, signal),
    [],
  );
  const [note, setNote] = useState<string | null>(null);
  const [newName, setNewName] = useState('');
  const [newValue, setNewValue] = useState('');
  const [newError, setNewError] = useState<string | null>(null);
  const saved = (m: string): void => {
    setNote(m);
    res.reload();
  };
  const entries = Object.entries(res.data?.settings ?? {});
  return (
    <main class="page">
      <h1>Settings</h1>
      {session.admin ? null : <p class="muted">Changing settings needs an admin client.</p>}
      {note ? <Notice>{note}</Notice> : null}
      <ErrorBox error={res.error} />
      {!res.data ? (
        res.error ? null : (
          <Loading />
        )
      ) : (
        <Section title="Settings">
          <table class="table settings">
            <tbody>
              {entries.map(([name, value]) => (
                <SettingRow key={name} name={name} value={value} admin={session.admin} onSaved={saved} />
              ))}
            </tbody>
          </table>
        </Section>
      )}
      {session.admin ? (
        <Section title="Add a setting">
          <form
            class="inline-form"
            onSubmit={(e) => {
              e.preventDefault();
              const problem = newName.trim() ? check(newName.trim(), newValue) : 'give a name';
              if (problem) {
                setNewError(problem);
                return;
              }
              post<{ message: string }>('/settings', { name: newName.trim(), setting: newValue.trim() })
                .then((r) => {
                  setNewName('');
                  setNewValue('');
                  setNewError(null);
                  saved(r.message);
                })
                .catch((err: unknown) => setNewError(messageOf(err)));
            }}
          >
            <input placeholder="name" value={newName} onInput={(e) => setNewName(e.currentTarget.value)} />
            <input placeholder="value" value={newValue} onInput={(e) => setNewValue(e.currentTarget.value)} />
            <button type="submit">Add</button>
          </form>
          <ErrorBox error={newError} />
        </Section>
      ) : null}
    </main>
  );
}
