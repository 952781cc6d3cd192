/**
 * Queue: the started, queued, pending, scheduled and paused jobs in admission order with their
 * positions (`GET /dashboard`). An engine whose dashboard does not list pending or paused jobs
 * has them read from `GET /jobs?state=` instead.
 */
import type { JSX } from 'preact';
import { get } from '../lib/api';
import { formatRelative, formatTime } from '../lib/format';
import { useLive, useThrottle } from '../lib/live';
import { useResource } from '../lib/resource';
import { Link } from '../lib/router';
import type { Dashboard, JobRecord } from '../lib/types';
import { Empty, ErrorBox, Loading, Section } from '../components/common';

const LISTS: {
  key: 'started' | 'queued' | 'pending' | 'scheduled' | 'paused';
  title: string;
  note: string;
}[] = [
  { key: 'started', title: 'Started', note: 'running now, using a slot each' },
  { key: 'queued', title: 'Queued', note: 'waiting for a slot, in the order they will be admitted' },
  { key: 'pending', title: 'Pending', note: 'waiting for their semaphore' },
  { key: 'scheduled', title: 'Scheduled', note: 'waiting for their run_at' },
  { key: 'paused', title: 'Paused', note: 'waiting to be resumed' },
];

async function load(signal: AbortSignal): Promise<Dashboard> {
  const d = await get<Dashboard>('/dashboard', undefined, signal);
  const fill = async (key: 'pending' | 'paused'): Promise<JobRecord[]> =>
    d[key] ??
    (await get<JobRecord[]>('/jobs', { state: key, asc: 1, limit: 1000 }, signal)).map((j, i) => ({
      ...j,
      position: i + 1,
    }));
  const [pending, paused] = await Promise.all([fill('pending'), fill('paused')]);
  return { ...d, pending, paused };
}

function JobList({ jobs, kind }: { jobs: JobRecord[]; kind: string }): JSX.Element {
  if (jobs.length === 0) return <Empty>None.</Empty>;
  return (
    <table class="table" data-list={kind}>
      <thead>
        <tr>
          <th class="num">position</th>
          <th>job</th>
          <th>client</th>
          <th>workflow</th>
          <th class="num">priority</th>
          <th>{kind === 'scheduled' ? 'run at' : kind === 'started' ? 'started' : 'created'}</th>
        </tr>
      </thead>
      <tbody>
        {jobs.map((j) => (
          <tr key={j.id} data-job={j.id}>
            <td class="num">{j.position}</td>
            <td>
              <Link to={`/jobs/${j.id}`}>#{j.id}</Link>
              {j.top_of_queue ? <span class="badge">top</span> : null}
            </td>
            <td>{j.client}</td>
            <td>{j.workflow}</td>
            <td class="num">{j.priority}</td>
            <td>
              {kind === 'scheduled'
                ? `${formatTime(j.run_at)} (${formatRelative(j.run_at)})`
                : kind === 'started'
                  ? formatTime(j.started_at)
                  : formatTime(j.created_at)}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function QueuePage(): JSX.Element {
  const res = useResource(load, []);
  const refresh = useThrottle(res.reload, 1000);
  useLive({ kinds: 'job' }, refresh, refresh);
  const d = res.data;
  return (
    <main class="page">
      <h1>Queue</h1>
      <ErrorBox error={res.error} />
      {!d ? (
        <Loading />
      ) : (
        <>
          <p class="muted">
            {d.started.length} of {d.max_jobs} slots in use; {d.priority_slots} kept for urgent jobs.
          </p>
          {LISTS.map((l) => (
            <Section key={l.key} title={`${l.title} (${(d[l.key] ?? []).length})`} id={`list-${l.key}`}>
              <p class="muted small">{l.note}</p>
              <JobList jobs={d[l.key] ?? []} kind={l.key} />
            </Section>
          ))}
        </>
      )}
    </main>
  );
}
