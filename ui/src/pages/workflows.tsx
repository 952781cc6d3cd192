/**
 * Workflows: the ones this client may submit (`GET /workflows`) with their descriptions and
 * tasks; one workflow's page has its task graph, its parameter schema and a submit form generated
 * from that schema. A refused submission shows the engine's problems next to their fields.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, get, messageOf, post } from '../lib/api';
import { localInputToUtc } from '../lib/format';
import { useResource } from '../lib/resource';
import { Link, navigate } from '../lib/router';
import { getSession } from '../lib/session';
import type { TaskRecord, Workflow } from '../lib/types';
import { ActionButton } from '../components/action';
import { Empty, ErrorBox, JsonBlock, Loading, Notice, Section } from '../components/common';
import {
  fieldErrors,
  initialValues,
  type RawValues,
  SchemaForm,
  toParameters,
} from '../components/schema-form';
import { TaskGraph } from '../components/task-graph';

export function Workflows(): JSX.Element {
  const res = useResource((signal) => get<Workflow[]>('/workflows', undefined, signal), []);
  const [note, setNote] = useState<string | null>(null);
  return (
    <main class="page">
      <div class="title-row">
        <h1>Workflows</h1>
        {getSession()?.admin ? (
          <ActionButton
            label="Reload definitions"
            confirm="Read the workflow files again? If any file is bad, nothing changes and the problem is shown."
            run={() => post<{ workflows: string[] }>('/workflows/reload')}
            onDone={(r) => {
              setNote(`Reloaded: ${(r as { workflows: string[] }).workflows.join(', ')}`);
              res.reload();
            }}
          />
        ) : null}
      </div>
      {note ? <Notice>{note}</Notice> : null}
      <ErrorBox error={res.error} />
      {!res.data ? (
        res.error ? null : (
          <Loading />
        )
      ) : res.data.length === 0 ? (
        <Empty>No workflow is defined for this client.</Empty>
      ) : (
        <div class="cards">
          {res.data.map((w) => (
            <article class="card wf" key={w.name} data-workflow={w.name}>
              <h2>
                <Link to={`/workflows/${encodeURIComponent(w.name)}`}>{w.name}</Link>
                {w.source === 'client' ? <span class="badge">own</span> : null}
              </h2>
              <p>{w.description ?? <span class="muted">No description.</span>}</p>
              <p class="muted small">
                {w.tasks.length} task{w.tasks.length === 1 ? '' : 's'}:{' '}
                {w.tasks.map((t) => t.name).join(', ')}
              </p>
              <Link to={`/workflows/${encodeURIComponent(w.name)}`} class="button">
                Submit…
              </Link>
            </article>
          ))}
        </div>
      )}
    </main>
  );
}

interface JobOptions {
  priority: string;
  run_at: string;
  semaphore_url: string;
  idempotency_key: string;
  persist: boolean;
  top_of_queue: boolean;
}

const NO_OPTIONS: JobOptions = {
  priority: '',
  run_at: '',
  semaphore_url: '',
  idempotency_key: '',
  persist: false,
  top_of_queue: false,
};

function SubmitForm({ workflow }: { workflow: Workflow }): JSX.Element {
  const [values, setValues] = useState<RawValues>(() => initialValues(workflow.parameters));
  const [extra, setExtra] = useState('');
  const [options, setOptions] = useState<JobOptions>(NO_OPTIONS);
  const [errors, setErrors] = useState<Record<string, string[]>>({});
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    setValues(initialValues(workflow.parameters));
    setErrors({});
  }, [workflow.name]);

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    const { parameters, problems } = toParameters(workflow.parameters, values);
    const local: Record<string, string[]> = Object.fromEntries(
      Object.entries(problems).map(([k, v]) => [k, [v]]),
    );
    if (extra.trim()) {
      try {
        const more = JSON.parse(extra) as unknown;
        if (more === null || typeof more !== 'object' || Array.isArray(more))
          throw new Error('an object is needed');
        Object.assign(parameters, more);
      } catch (err) {
        local.extra = [`more parameters: not a JSON object (${messageOf(err)})`];
      }
    }
    if (Object.keys(local).length) {
      setErrors(local);
      return;
    }
    const job: Record<string, unknown> = { workflow: workflow.name };
    if (options.priority.trim()) job.priority = options.priority.trim();
    if (options.run_at) job.run_at = localInputToUtc(options.run_at) ?? options.run_at;
    if (options.semaphore_url.trim()) job.semaphore_url = options.semaphore_url.trim();
    if (options.idempotency_key) job.idempotency_key = options.idempotency_key;
    if (options.persist) job.persist = true;
    if (options.top_of_queue) job.top_of_queue = true;
    setBusy(true);
    setErrors({});
    try {
      const r = await post<{ id: number }>('/job', { job, parameters });
      navigate(`/jobs/${r.id}`);
    } catch (err) {
      setErrors(
        err instanceof ApiError && err.status === 400 ? fieldErrors(err.message) : { '': [messageOf(err)] },
      );
    } finally {
      setBusy(false);
    }
  };

  const known = new Set([...Object.keys(workflow.parameters.properties ?? {}), '']);
  const general = [
    ...(errors[''] ?? []),
    ...Object.entries(errors)
      .filter(([k]) => !known.has(k) && !k.startsWith('job.') && k !== 'extra')
      .flatMap(([, v]) => v),
  ];
  const jobError = (k: string): JSX.Element | null =>
    errors[`job.${k}`] ? (
      <div class="field-error" role="alert">
        {errors[`job.${k}`]!.join('; ')}
      </div>
    ) : null;
  const opt = (k: keyof JobOptions, v: string | boolean): void => setOptions({ ...options, [k]: v });

  return (
    <form class="submit-form" onSubmit={(e) => void submit(e)} noValidate>
      <SchemaForm
        schema={workflow.parameters}
        values={values}
        errors={errors}
        onChange={(name, v) => setValues((old) => ({ ...old, [name]: v }))}
      />
      {workflow.parameters.additionalProperties !== false ? (
        <div class={`field ${errors.extra ? 'has-error' : ''}`}>
          <label for="param-extra">More parameters (JSON object, merged over the fields)</label>
          <textarea
            id="param-extra"
            rows={2}
            value={extra}
            onInput={(e) => setExtra(e.currentTarget.value)}
            spellcheck={false}
          />
          {errors.extra ? <div class="field-error">{errors.extra.join('; ')}</div> : null}
        </div>
      ) : null}
      <details class="job-options" open={Object.keys(errors).some((k) => k.startsWith('job.'))}>
        <summary>Job options</summary>
        <div class="schema-form">
          <div class="field">
            <label for="job-priority">priority</label>
            <input
              id="job-priority"
              name="priority"
              type="number"
              min="1"
              max="10"
              placeholder="5"
              value={options.priority}
              onInput={(e) => opt('priority', e.currentTarget.value)}
            />
            <div class="hint muted small">1 most urgent … 10; default 5</div>
            {jobError('priority')}
          </div>
          <div class="field">
            <label for="job-run-at">run at</label>
            <input
              id="job-run-at"
              name="run_at"
              type="datetime-local"
              step="1"
              value={options.run_at}
              onInput={(e) => opt('run_at', e.currentTarget.value)}
            />
            <div class="hint muted small">your local time; empty: now</div>
            {jobError('run_at')}
          </div>
          <div class="field">
            <label for="job-semaphore">semaphore URL</label>
            <input
              id="job-semaphore"
              name="semaphore_url"
              value={options.semaphore_url}
              onInput={(e) => opt('semaphore_url', e.currentTarget.value)}
            />
            <div class="hint muted small">queued once it answers 2xx/3xx</div>
            {jobError('semaphore_url')}
          </div>
          <div class="field">
            <label for="job-key">idempotency key</label>
            <input
              id="job-key"
              name="idempotency_key"
              value={options.idempotency_key}
              onInput={(e) => opt('idempotency_key', e.currentTarget.value)}
            />
            {jobError('idempotency_key')}
          </div>
          <label class="inline">
            <input
              type="checkbox"
              checked={options.persist}
              onChange={(e) => opt('persist', e.currentTarget.checked)}
            />{' '}
            persist (keep out of the clean-up)
          </label>
          <label class="inline">
            <input
              type="checkbox"
              checked={options.top_of_queue}
              onChange={(e) => opt('top_of_queue', e.currentTarget.checked)}
            />{' '}
            top of queue
          </label>
        </div>
      </details>
      {general.length ? <ErrorBox error={general.join('; ')} title="Refused" /> : null}
      <div class="form-buttons">
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Submitting…' : `Submit ${workflow.name}`}
        </button>
        <button
          type="button"
          onClick={() => {
            setValues(initialValues(workflow.parameters));
            setExtra('');
            setOptions(NO_OPTIONS);
            setErrors({});
          }}
        >
          Reset to defaults
        </button>
      </div>
    </form>
  );
}

export function WorkflowPage({ name }: { name: string }): JSX.Element {
  const res = useResource((signal) => get<Workflow[]>('/workflows', undefined, signal), []);
  const w = res.data?.find((x) => x.name === name);
  if (!res.data) return <main class="page">{res.error ? <ErrorBox error={res.error} /> : <Loading />}</main>;
  if (!w)
    return (
      <main class="page">
        <h1>{name}</h1>
        <ErrorBox error={`No workflow "${name}" for this client.`} />
        <Link to="/workflows">All workflows</Link>
      </main>
    );
  const graphTasks: TaskRecord[] = w.tasks.map((t, i) => ({
    id: i + 1,
    name: t.name,
    queue: t.queue,
    state: 'waiting',
    attempts: 0,
    started_at: null,
    finished_at: null,
    error: null,
    needs: t.needs,
  }));
  return (
    <main class="page wide">
      <div class="title-row">
        <h1>{w.name}</h1>
        <span class="muted">
          {w.source === 'client' ? "this client's own definition" : 'common definition'}
        </span>
      </div>
      {w.description ? <p>{w.description}</p> : null}
      <div class="grid two">
        <Section title="Submit a job">
          <SubmitForm workflow={w} />
        </Section>
        <div>
          <Section title="Tasks">
            <TaskGraph tasks={graphTasks} />
            <table class="table">
              <thead>
                <tr>
                  <th>task</th>
                  <th>runs</th>
                  <th>queue</th>
                  <th>needs</th>
                </tr>
              </thead>
              <tbody>
                {w.tasks.map((t) => (
                  <tr key={t.name}>
                    <td>{t.name}</td>
                    <td>{t.run}</td>
                    <td>{t.queue}</td>
                    <td>{t.needs.join(', ') || '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Section>
          <Section title="Parameter schema">
            <JsonBlock value={w.parameters} />
          </Section>
        </div>
      </div>
    </main>
  );
}
