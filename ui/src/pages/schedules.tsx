/**
 * Schedules: the engine's four maintenance schedules and the user schedules (`GET /schedules`),
 * each switched on or off with `PUT /scheduler` (admins); user schedules added with
 * `POST /schedules` and deleted with `DELETE /schedules/<name>`.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, del, get, messageOf, post, put } from '../lib/api';
import { formatRelative, formatTime } from '../lib/format';
import { useResource } from '../lib/resource';
import type { Session } from '../lib/session';
import type { ScheduleInfo, Workflow } from '../lib/types';
import { ActionButton } from '../components/action';
import { Empty, ErrorBox, Loading, Notice, Section } from '../components/common';

function every(s: ScheduleInfo): string {
  if (s.cron) return `${s.cron}${s.timezone ? ` (${s.timezone})` : ''}`;
  const e = s.every;
  if (Array.isArray(e)) return `every ${String(e[0])} s`;
  return e === undefined ? '—' : JSON.stringify(e);
}

function Switch({
  name,
  s,
  admin,
  onDone,
}: {
  name: string;
  s: ScheduleInfo;
  admin: boolean;
  onDone: () => void;
}): JSX.Element {
  // What the operator asked for, shown until the engine's answer arrives with the list.
  const [wanted, setWanted] = useState<boolean | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setWanted(null), [s.active]);
  const checked = wanted ?? s.active;
  return (
    <>
      <label class="switch" title={admin ? undefined : 'switching a schedule needs an admin client'}>
        <input
          type="checkbox"
          role="switch"
          name={`active-${name}`}
          checked={checked}
          disabled={wanted !== null}
          onChange={(e) => {
            const active = e.currentTarget.checked;
            setWanted(active);
            setError(null);
            put('/scheduler', { schedule: name, active })
              .then(onDone)
              .catch((err: unknown) => {
                setWanted(null);
                setError(messageOf(err));
              });
          }}
        />
        <span>{checked ? 'on' : 'off'}</span>
      </label>
      <ErrorBox error={error} />
    </>
  );
}

function AddSchedule({ onDone }: { onDone: () => void }): JSX.Element {
  const workflows = useResource((signal) => get<Workflow[]>('/workflows', undefined, signal), []);
  const [f, setF] = useState({
    name: '',
    cron: '0 * * * *',
    timezone: 'UTC',
    workflow: '',
    parameters: '{}',
    priority: '',
    overlap: 'skip',
    catch_up: 'latest',
    description: '',
  });
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const set = (k: keyof typeof f) => (e: { currentTarget: { value: string } }) =>
    setF({ ...f, [k]: e.currentTarget.value });
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(null);
    let parameters: unknown;
    try {
      parameters = f.parameters.trim() ? JSON.parse(f.parameters) : {};
    } catch (err) {
      setError(`parameters: not valid JSON (${messageOf(err)})`);
      return;
    }
    const body: Record<string, unknown> = {
      name: f.name.trim(),
      cron: f.cron.trim(),
      timezone: f.timezone.trim() || 'UTC',
      workflow: f.workflow,
      parameters,
      overlap: f.overlap,
      catch_up: f.catch_up,
    };
    if (f.priority.trim()) body.priority = f.priority.trim();
    if (f.description.trim()) body.description = f.description.trim();
    setBusy(true);
    try {
      await post('/schedules', body);
      setF({ ...f, name: '', description: '' });
      onDone();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="form-grid" onSubmit={(e) => void submit(e)} noValidate>
      <div class="field">
        <label for="sch-name">name *</label>
        <input id="sch-name" value={f.name} onInput={set('name')} placeholder="nightly-report" />
      </div>
      <div class="field">
        <label for="sch-cron">cron *</label>
        <input id="sch-cron" value={f.cron} onInput={set('cron')} />
        <div class="hint muted small">
          minute hour day-of-month month day-of-week (6 fields: seconds first)
        </div>
      </div>
      <div class="field">
        <label for="sch-tz">time zone</label>
        <input id="sch-tz" value={f.timezone} onInput={set('timezone')} />
      </div>
      <div class="field">
        <label for="sch-wf">workflow *</label>
        <select id="sch-wf" value={f.workflow} onChange={set('workflow')}>
          <option value="">—</option>
          {(workflows.data ?? []).map((w) => (
            <option key={w.name} value={w.name}>
              {w.name}
            </option>
          ))}
        </select>
      </div>
      <div class="field wide">
        <label for="sch-params">parameters (JSON)</label>
        <textarea
          id="sch-params"
          rows={2}
          value={f.parameters}
          onInput={set('parameters')}
          spellcheck={false}
        />
      </div>
      <div class="field">
        <label for="sch-priority">priority</label>
        <input
          id="sch-priority"
          type="number"
          min="1"
          max="10"
          placeholder="5"
          value={f.priority}
          onInput={set('priority')}
        />
      </div>
      <div class="field">
        <label for="sch-overlap">overlap</label>
        <select id="sch-overlap" value={f.overlap} onChange={set('overlap')}>
          <option value="skip">skip (not while the last job runs)</option>
          <option value="allow">allow</option>
        </select>
      </div>
      <div class="field">
        <label for="sch-catch">catch up</label>
        <select id="sch-catch" value={f.catch_up} onChange={set('catch_up')}>
          <option value="latest">latest missed slot</option>
          <option value="all">all missed slots</option>
          <option value="none">none</option>
        </select>
      </div>
      <div class="field wide">
        <label for="sch-desc">description</label>
        <input id="sch-desc" value={f.description} onInput={set('description')} />
      </div>
      <div class="wide">
        <ErrorBox error={error} title="Refused" />
        <button type="submit" class="primary" disabled={busy}>
          Add schedule
        </button>
      </div>
    </form>
  );
}

export function Schedules({ session }: { session: Session }): JSX.Element {
  const res = useResource(
    (signal) => get<{ schedules: Record<string, ScheduleInfo> }>('/schedules', undefined, signal),
    [],
  );
  const [note, setNote] = useState<string | null>(null);
  const list = Object.entries(res.data?.schedules ?? {});
  const maintenance = list.filter(([, s]) => !s.cron);
  const user = list.filter(([, s]) => s.cron);
  const row = ([name, s]: [string, ScheduleInfo]): JSX.Element => (
    <tr key={name} data-schedule={name}>
      <td>
        <strong>{name}</strong>
        <div class="muted small">{s.description}</div>
      </td>
      <td>{every(s)}</td>
      <td>{s.workflow ? `${s.workflow}${s.client ? ` as ${s.client}` : ''}` : s.class}</td>
      <td title={s.last_run_at ?? ''}>{formatTime(s.last_run_at)}</td>
      <td title={s.next_run_at ?? ''}>{s.active ? formatRelative(s.next_run_at) : '—'}</td>
      <td>
        <Switch name={name} s={s} admin={session.admin} onDone={res.reload} />
      </td>
      <td>
        {s.cron ? (
          <ActionButton
            label="Delete"
            danger
            confirm={`Delete the schedule "${name}"? The jobs it submitted stay.`}
            run={() => del(`/schedules/${encodeURIComponent(name)}`)}
            onDone={() => {
              setNote(`Deleted ${name}.`);
              res.reload();
            }}
          />
        ) : null}
      </td>
    </tr>
  );
  const head = (
    <thead>
      <tr>
        <th>schedule</th>
        <th>when</th>
        <th>runs</th>
        <th>last run</th>
        <th>next run</th>
        <th>active</th>
        <th />
      </tr>
    </thead>
  );
  return (
    <main class="page wide">
      <h1>Schedules</h1>
      {session.admin ? null : (
        <p class="muted">
          Switching schedules on and off needs an admin client; the engine refuses it otherwise.
        </p>
      )}
      {note ? <Notice>{note}</Notice> : null}
      <ErrorBox error={res.error} />
      {!res.data ? (
        res.error ? null : (
          <Loading />
        )
      ) : (
        <>
          <Section title="Maintenance">
            <table class="table">
              {head}
              <tbody>{maintenance.map(row)}</tbody>
            </table>
          </Section>
          <Section title="User schedules">
            {user.length ? (
              <table class="table">
                {head}
                <tbody>{user.map(row)}</tbody>
              </table>
            ) : (
              <Empty>No user schedule yet.</Empty>
            )}
          </Section>
          <Section title="Add a user schedule">
            <AddSchedule
              onDone={() => {
                setNote('Schedule added.');
                res.reload();
              }}
            />
          </Section>
        </>
      )}
    </main>
  );
}
