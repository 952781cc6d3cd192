/**
 * A job: its state and facts, the actions the API offers on it (pause, resume, break, rerun,
 * retry, priority, top of queue, run_at, persist; each confirmed, a refusal shown as the API
 * said it), its parameters and outputs, the task graph, the tasks, the attempts on a time axis,
 * the live log and the callback deliveries. Live from `GET /events?job_id=`.
 */
import { Fragment, type JSX } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, get, patch, post } from '../lib/api';
import type { LiveEvent } from '../lib/events';
import {
  elapsed,
  formatDuration,
  formatRelative,
  formatTime,
  localInputToUtc,
  utcToLocalInput,
} from '../lib/format';
import { useLive, useThrottle, useTick } from '../lib/live';
import { useResource } from '../lib/resource';
import { Link, navigate } from '../lib/router';
import type { Attempt, CallbackDelivery, JobDetail, TaskRecord } from '../lib/types';
import { ActionButton } from '../components/action';
import {
  Empty,
  ErrorBox,
  JsonBlock,
  Loading,
  Progress,
  Section,
  StateChip,
  TaskChip,
} from '../components/common';
import { LogView, type LogSink } from '../components/log-view';
import { TaskGraph } from '../components/task-graph';
import { Timeline } from '../components/timeline';

/** A list the engine may not offer yet: null when it answers 404. */
async function optional<T>(path: string, signal: AbortSignal): Promise<T | null> {
  try {
    return await get<T>(path, undefined, signal);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

const WAITING = ['scheduled', 'pending', 'queued'];
const RUNNABLE = [...WAITING, 'started'];

function Actions({ job, reload }: { job: JobDetail; reload: () => void }): JSX.Element {
  const [priority, setPriority] = useState(String(job.priority));
  const [runAt, setRunAt] = useState(utcToLocalInput(job.run_at));
  useEffect(() => setPriority(String(job.priority)), [job.priority]);
  useEffect(() => setRunAt(utcToLocalInput(job.run_at)), [job.run_at]);
  const s = job.queue_state;
  const change = (body: Record<string, unknown>) => () => patch(`/jobs/${job.id}`, body);
  const finalState = s === 'completed' || s === 'broken';
  return (
    <div class="actions" data-testid="actions">
      {RUNNABLE.includes(s) ? (
        <ActionButton
          label="Pause"
          confirm={`Pause job ${job.id}? ${s === 'started' ? 'Its running tasks finish; no new task starts until it is resumed.' : 'It is not started until it is resumed.'}`}
          run={change({ queue_state: 'paused' })}
          onDone={reload}
        />
      ) : null}
      {s === 'paused' ? (
        <ActionButton
          label="Resume"
          confirm={`Resume job ${job.id}? It is queued again.`}
          run={change({ queue_state: 'queued' })}
          onDone={reload}
        />
      ) : null}
      {s === 'scheduled' || s === 'pending' ? (
        <ActionButton
          label="Run now"
          confirm={`Queue job ${job.id} now, without waiting for ${s === 'scheduled' ? 'its run_at' : 'its semaphore'}?`}
          run={change({ queue_state: 'queued' })}
          onDone={reload}
        />
      ) : null}
      {!finalState ? (
        <ActionButton
          label="Break"
          danger
          confirm={`Break job ${job.id}? Its running tasks are stopped and it will not run again (a retry or a rerun can).`}
          run={change({ queue_state: 'broken' })}
          onDone={reload}
        />
      ) : null}
      <ActionButton
        label="Rerun"
        confirm={
          <>
            Run job {job.id} again as a new job with the same workflow, priority and parameters?{' '}
            {finalState
              ? 'This job is set to broken (its results are superseded).'
              : 'This job is broken first.'}
          </>
        }
        run={() => post<{ id: number }>(`/jobs/${job.id}/rerun`)}
        onDone={(r) => navigate(`/jobs/${(r as { id: number }).id}`)}
      />
      {(s === 'completed' && job.failed) || s === 'broken' ? (
        <ActionButton
          label="Retry"
          confirm={`Retry job ${job.id} from the tasks that did not succeed? Succeeded tasks keep their outputs.`}
          run={() => post(`/jobs/${job.id}/retry`)}
          onDone={reload}
        />
      ) : null}
      {!finalState ? (
        <>
          <ActionButton
            label="Priority…"
            title={`Priority of job ${job.id}`}
            confirmLabel="Set priority"
            body={
              <label>
                Priority (1 most urgent … 10)
                <input
                  name="priority"
                  type="number"
                  min="1"
                  max="10"
                  step="1"
                  value={priority}
                  onInput={(e) => setPriority(e.currentTarget.value)}
                />
              </label>
            }
            run={() => patch(`/jobs/${job.id}`, { priority: priority.trim() })}
            onDone={reload}
          />
          <ActionButton
            label={job.top_of_queue ? 'Leave top of queue' : 'Top of queue'}
            confirm={
              job.top_of_queue
                ? `Let job ${job.id} wait in its normal place in the queue?`
                : `Put job ${job.id} at the top of the queue (admitted before every other queued job)?`
            }
            run={change({ top_of_queue: !job.top_of_queue })}
            onDone={reload}
          />
          <ActionButton
            label="Run at…"
            title={`When job ${job.id} runs`}
            confirmLabel="Set run_at"
            body={
              <label>
                Run at (your local time; sent as UTC)
                <input
                  name="run_at"
                  type="datetime-local"
                  step="1"
                  value={runAt}
                  onInput={(e) => setRunAt(e.currentTarget.value)}
                />
              </label>
            }
            run={() => patch(`/jobs/${job.id}`, { run_at: localInputToUtc(runAt) ?? runAt })}
            onDone={reload}
          />
        </>
      ) : null}
      <ActionButton
        label={job.persist ? 'Do not keep' : 'Keep (persist)'}
        confirm={
          job.persist
            ? `Let the clean-up delete job ${job.id} and its log after the retention period?`
            : `Keep job ${job.id} and its log out of the clean-up?`
        }
        run={change({ persist: !job.persist })}
        onDone={reload}
      />
    </div>
  );
}

function Facts({ job }: { job: JobDetail }): JSX.Element {
  useTick(job.queue_state === 'started' || job.queue_state === 'scheduled');
  const rows: [string, JSX.Element | string][] = [
    ['client', job.client],
    ['workflow', <Link to={`/workflows/${encodeURIComponent(job.workflow)}`}>{job.workflow}</Link>],
    ['priority', `${job.priority}${job.top_of_queue ? ' · top of queue' : ''}`],
    ['created', formatTime(job.created_at)],
    [
      'run at',
      `${formatTime(job.run_at)}${job.queue_state === 'scheduled' ? ` (${formatRelative(job.run_at)})` : ''}`,
    ],
    ['started', formatTime(job.started_at)],
    ['finished', formatTime(job.finished_at)],
    ['took', job.started_at ? formatDuration(elapsed(job.started_at, job.finished_at)) : '—'],
    ['run', `${job.run}${job.retried_at ? ` (retried ${formatTime(job.retried_at)})` : ''}`],
    ['persist', job.persist ? 'kept' : 'no'],
  ];
  if (job.rerun_of) rows.push(['rerun of', <Link to={`/jobs/${job.rerun_of}`}>#{job.rerun_of}</Link>]);
  if (job.rerun_by) rows.push(['rerun by', <Link to={`/jobs/${job.rerun_by}`}>#{job.rerun_by}</Link>]);
  if (job.schedule) rows.push(['schedule', `${job.schedule} (${formatTime(job.scheduled_for)})`]);
  if (job.semaphore_url) rows.push(['semaphore', job.semaphore_url]);
  if (job.idempotency_key) rows.push(['idempotency key', job.idempotency_key]);
  return (
    <dl class="facts">
      {rows.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd data-fact={k}>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

function Tasks({
  tasks,
  selected,
  onSelect,
}: {
  tasks: TaskRecord[];
  selected: string | null;
  onSelect: (n: string) => void;
}): JSX.Element {
  return (
    <table class="table">
      <thead>
        <tr>
          <th>task</th>
          <th>queue</th>
          <th>state</th>
          <th class="num">attempts</th>
          <th>started</th>
          <th>took</th>
          <th>progress</th>
        </tr>
      </thead>
      <tbody>
        {tasks.map((t) => (
          <Fragment key={t.id}>
            <tr
              class={selected === t.name ? 'selected' : ''}
              onClick={() => onSelect(t.name)}
              data-task-row={t.name}
            >
              <td>{t.name}</td>
              <td>{t.queue}</td>
              <td>
                <TaskChip state={t.state} />
              </td>
              <td class="num">{t.attempts}</td>
              <td>{formatTime(t.started_at)}</td>
              <td>
                {t.started_at ? formatDuration(t.duration_ms ?? elapsed(t.started_at, t.finished_at)) : '—'}
              </td>
              <td>
                {t.state === 'running' ? (
                  <>
                    <Progress value={t.progress} label={t.progress_message} />
                    {t.progress_message ? <span class="muted small"> {t.progress_message}</span> : null}
                  </>
                ) : null}
              </td>
            </tr>
            {selected === t.name ? (
              <tr class="detail">
                <td colSpan={7}>
                  {t.error ? <ErrorBox error={t.error} title="Error" /> : null}
                  {t.needs && t.needs.length ? <p class="small">needs: {t.needs.join(', ')}</p> : null}
                  {t.progress_detail ? <JsonBlock value={t.progress_detail} /> : null}
                  {t.output !== undefined && t.output !== null ? (
                    <>
                      <p class="small">output:</p>
                      <JsonBlock value={t.output} />
                    </>
                  ) : (
                    <p class="muted small">No output yet.</p>
                  )}
                </td>
              </tr>
            ) : null}
          </Fragment>
        ))}
      </tbody>
    </table>
  );
}

function Callbacks({ list }: { list: CallbackDelivery[] | null | undefined }): JSX.Element {
  if (list === undefined) return <Loading />;
  if (list === null)
    return (
      <Empty>Callback deliveries are not available from this engine (GET /jobs/&lt;id&gt;/callbacks).</Empty>
    );
  if (list.length === 0) return <Empty>This job has no callback deliveries (no rest_endpoints).</Empty>;
  return (
    <table class="table">
      <thead>
        <tr>
          <th>event</th>
          <th>target</th>
          <th>state</th>
          <th class="num">attempts</th>
          <th>last status</th>
          <th>created</th>
          <th>delivered / next try</th>
        </tr>
      </thead>
      <tbody>
        {list.map((c) => (
          <tr key={c.id}>
            <td>
              {c.event}
              <span class="muted small"> {c.kind}</span>
            </td>
            <td class="params" title={c.target}>
              {c.target}
            </td>
            <td>
              <span class={`chip d-${c.state}`}>{c.state}</span>
            </td>
            <td class="num">{c.attempts}</td>
            <td title={c.last_error ?? ''}>
              {c.last_status ?? '—'}
              {c.last_error ? <span class="muted small"> {c.last_error}</span> : null}
            </td>
            <td>{formatTime(c.created_at)}</td>
            <td>
              {c.delivered_at
                ? formatTime(c.delivered_at)
                : c.next_attempt_at
                  ? `next ${formatRelative(c.next_attempt_at)}`
                  : '—'}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function JobPage({ id }: { id: string }): JSX.Element {
  const job = useResource(
    (signal) => get<JobDetail>(`/jobs/${encodeURIComponent(id)}`, undefined, signal),
    [id],
  );
  const extra = useResource(
    async (signal) => {
      const [attempts, callbacks] = await Promise.all([
        optional<Attempt[]>(`/jobs/${encodeURIComponent(id)}/attempts`, signal),
        optional<CallbackDelivery[]>(`/jobs/${encodeURIComponent(id)}/callbacks`, signal),
      ]);
      return { attempts, callbacks };
    },
    [id],
  );
  const [selected, setSelected] = useState<string | null>(null);
  const logSink = useRef<LogSink | null>(null);
  const reloadJob = useThrottle(job.reload, 700);
  const reloadExtra = useThrottle(extra.reload, 1500);
  const refresh = (): void => {
    reloadJob();
    reloadExtra();
    logSink.current?.refresh();
  };
  const numericId = /^\d+$/.test(id) ? Number(id) : null;
  useLive(
    numericId && job.data ? { job_id: numericId, kinds: 'job,task,log', show_all: true } : null,
    (e: LiveEvent) => {
      if (e.kind === 'log') logSink.current?.append(e.data);
      else if (e.kind === 'task') {
        const t = e.data;
        job.set((d) =>
          d
            ? {
                ...d,
                tasks: d.tasks.map((x) =>
                  x.id === t.task_id
                    ? {
                        ...x,
                        state: t.state as TaskRecord['state'],
                        attempts: t.attempts,
                        progress: t.progress,
                        progress_message: t.progress_message,
                        progress_detail: t.progress_detail,
                      }
                    : x,
                ),
              }
            : d,
        );
        if (t.state !== t.previous_state) {
          reloadJob();
          reloadExtra();
        }
      } else if (e.kind === 'job') {
        const j = e.data;
        job.set((d) =>
          d
            ? {
                ...d,
                queue_state: j.queue_state as JobDetail['queue_state'],
                failed: j.failed,
                priority: j.priority,
                run: j.run,
              }
            : d,
        );
        reloadJob();
        reloadExtra();
      }
    },
    refresh,
  );
  const taskNames = useMemo(
    () => new Map((job.data?.tasks ?? []).map((t) => [t.id, t.name])),
    [job.data?.tasks],
  );

  const d = job.data;
  if (!d)
    return (
      <main class="page">
        <h1>Job {id}</h1>
        {job.error ? <ErrorBox error={job.error} /> : <Loading />}
        {job.status === 404 ? (
          <p>
            <Link to="/jobs">Back to the jobs</Link>
          </p>
        ) : null}
      </main>
    );
  return (
    <main class="page wide">
      <div class="title-row">
        <h1>
          Job #{d.id} <span class="muted">{d.workflow}</span>
        </h1>
        <StateChip state={d.queue_state} failed={d.failed} />
        {d.position && WAITING.includes(d.queue_state) ? (
          <span class="muted">position {d.position}</span>
        ) : null}
      </div>
      <ErrorBox error={job.error} />
      <Actions job={d} reload={job.reload} />
      {d.error ? <ErrorBox error={d.error} title={d.queue_state === 'broken' ? 'Broken' : 'Failed'} /> : null}
      <div class="grid two">
        <Section title="Details">
          <Facts job={d} />
        </Section>
        <Section title="Parameters">
          <JsonBlock value={d.parameters ?? {}} />
          <h3>Outputs</h3>
          {d.outputs === undefined ? (
            <Empty>This engine does not report outputs.</Empty>
          ) : d.outputs === null ? (
            <Empty>None yet: outputs are rendered when the job ends.</Empty>
          ) : (
            <div data-testid="outputs">
              <JsonBlock value={d.outputs} />
            </div>
          )}
        </Section>
      </div>
      <Section title="Task graph">
        <TaskGraph
          tasks={d.tasks}
          selected={selected}
          onSelect={(n) => setSelected(selected === n ? null : n)}
        />
      </Section>
      <Section title="Tasks">
        <Tasks tasks={d.tasks} selected={selected} onSelect={(n) => setSelected(selected === n ? null : n)} />
      </Section>
      <Section title="Timeline">
        <Timeline tasks={d.tasks} attempts={extra.data?.attempts ?? null} />
      </Section>
      <Section title="Log">
        <LogView jobId={d.id} taskNames={taskNames} sink={logSink} />
      </Section>
      <Section title="Callback deliveries">
        <ErrorBox error={extra.error} />
        <Callbacks list={extra.data ? extra.data.callbacks : undefined} />
      </Section>
    </main>
  );
}
