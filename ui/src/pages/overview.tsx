/**
 * Overview: the slots in use of `max_jobs` (and the `priority_slots` kept for urgent jobs), the
 * queues with their workers, running and ready tasks, the jobs per state, and the jobs that ended
 * per minute over the last hour (`GET /stats`).
 */
import type { JSX } from 'preact';
import { get } from '../lib/api';
import { formatCount, formatTime } from '../lib/format';
import { useLive, useThrottle } from '../lib/live';
import { useResource } from '../lib/resource';
import { Link } from '../lib/router';
import { getSession } from '../lib/session';
import { JOB_STATES, type Dashboard, type Health, type Stats } from '../lib/types';
import { noteVersion } from '../lib/version';
import { Empty, ErrorBox, Loading, Section, StateChip } from '../components/common';
import { Bars } from '../components/sparkline';

interface OverviewData {
  health: Health;
  dashboard: Dashboard;
  stats: Stats | null;
  threshold: number | null;
}

async function load(signal: AbortSignal): Promise<OverviewData> {
  const [health, dashboard, stats, settings] = await Promise.all([
    get<Health>('/health', undefined, signal),
    get<Dashboard>('/dashboard', undefined, signal),
    get<Stats>('/stats', { minutes: 60 }, signal).catch(() => null),
    get<{ settings: Record<string, unknown> }>('/settings', undefined, signal).catch(() => null),
  ]);
  noteVersion(health.version);
  const t = settings?.settings.priority_threshold;
  return { health, dashboard, stats, threshold: typeof t === 'number' ? t : null };
}

/** The slots as boxes: used ones filled, the reserved ones marked. */
function Slots({
  mine,
  used,
  max,
  reserved,
  threshold,
}: {
  /** The caller is not an admin: the count is of its own jobs only. */
  mine: boolean;
  used: number;
  max: number;
  reserved: number;
  threshold: number | null;
}): JSX.Element {
  const shown = Math.min(max, 64);
  return (
    <div>
      <p class="big" data-testid="slots">
        <strong>{used}</strong> of {max} slots in use{mine ? ' by your jobs' : ''}
      </p>
      <div class="slots" aria-hidden="true">
        {Array.from({ length: shown }, (_, i) => (
          <span key={i} class={`slot ${i < used ? 'used' : ''} ${i >= shown - reserved ? 'reserved' : ''}`} />
        ))}
      </div>
      <p class="muted small">
        {reserved > 0
          ? `${reserved} of them kept for urgent jobs (priority ≤ ${threshold ?? 'priority_threshold'})`
          : 'no slots kept for urgent jobs (priority_slots is 0)'}
      </p>
    </div>
  );
}

export function Overview(): JSX.Element {
  const res = useResource(load, []);
  // /health counts every job: at most one read every 3 s however busy the engine is.
  const refresh = useThrottle(res.reload, 3000);
  const admin = getSession()?.admin ?? false;
  useLive({ kinds: 'job,task' }, refresh, refresh);
  const d = res.data;
  if (!d) return <main class="page">{res.error ? <ErrorBox error={res.error} /> : <Loading />}</main>;
  const { health, dashboard, stats } = d;
  const jobs = health.jobs;
  const states = [...JOB_STATES, 'failed'];
  const labels = stats?.buckets.map((b) => formatTime(b.at).slice(11, 16)) ?? [];
  return (
    <main class="page">
      <h1>Overview</h1>
      <ErrorBox error={res.error} />
      <div class="grid">
        <Section title="Slots">
          <Slots
            mine={!admin}
            used={dashboard.started.length}
            max={dashboard.max_jobs}
            reserved={dashboard.priority_slots}
            threshold={d.threshold}
          />
        </Section>
        <Section title="Jobs by state">
          <ul class="counts">
            {states.map((s) => (
              <li key={s}>
                <Link to={s === 'failed' ? '/jobs?failed=1' : `/jobs?state=${s}`}>
                  <StateChip state={s} />{' '}
                  <span class="n" data-state={s}>
                    {formatCount(jobs[s] ?? 0)}
                  </span>
                </Link>
              </li>
            ))}
          </ul>
          {jobs.superseded ? (
            <p class="muted small">{formatCount(jobs.superseded)} broken jobs were replaced by a rerun.</p>
          ) : null}
        </Section>
        <Section title="Last hour">
          {stats ? (
            <div class="charts">
              <div>
                <p>
                  Ended per minute:{' '}
                  <strong>{formatCount(stats.totals.completed + stats.totals.failed)}</strong> completed
                </p>
                <Bars
                  title="jobs completed per minute"
                  labels={labels}
                  series={[
                    { label: 'completed', values: stats.buckets.map((b) => b.completed), class: 'fill-ok' },
                    { label: 'failed', values: stats.buckets.map((b) => b.failed), class: 'fill-bad' },
                  ]}
                />
              </div>
              <div>
                <p>
                  Failures: <strong>{formatCount(stats.totals.failed)}</strong> failed,{' '}
                  <strong>{formatCount(stats.totals.broken)}</strong> broken
                </p>
                <Bars
                  title="jobs failed or broken per minute"
                  labels={labels}
                  series={[
                    { label: 'failed', values: stats.buckets.map((b) => b.failed), class: 'fill-bad' },
                    { label: 'broken', values: stats.buckets.map((b) => b.broken), class: 'fill-broken' },
                  ]}
                />
              </div>
            </div>
          ) : (
            <Empty>This engine does not report throughput (GET /stats is not available).</Empty>
          )}
        </Section>
      </div>
      <div class="grid two">
        <Section title="Queues">
          <table class="table">
            <thead>
              <tr>
                <th>queue</th>
                <th class="num">workers</th>
                <th class="num">working</th>
                <th class="num">pending</th>
              </tr>
            </thead>
            <tbody>
              {Object.entries(health.queues).map(([name, q]) => (
                <tr key={name}>
                  <td>{name}</td>
                  <td class="num">{q.workers}</td>
                  <td class="num">{q.working}</td>
                  <td class="num">{q.pending}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p class="muted small">
            Tasks: {formatCount(health.tasks.processed)} succeeded, {formatCount(health.tasks.failed)} failed,{' '}
            {formatCount(health.tasks.pending)} ready. Databases:{' '}
            {Object.entries(health.databases)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')}
            .
          </p>
        </Section>
        <Section title="Running now" actions={<Link to="/queue">Queue</Link>}>
          {dashboard.started.length === 0 ? (
            <Empty>No job is running.</Empty>
          ) : (
            <table class="table">
              <tbody>
                {dashboard.started.slice(0, 12).map((j) => (
                  <tr key={j.id}>
                    <td>
                      <Link to={`/jobs/${j.id}`}>#{j.id}</Link>
                    </td>
                    <td>{j.workflow}</td>
                    <td>{j.client}</td>
                    <td class="num">p{j.priority}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Section>
      </div>
    </main>
  );
}
