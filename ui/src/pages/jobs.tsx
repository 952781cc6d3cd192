/**
 * Jobs: every filter of `GET /jobs` (state, failed, client for admins, search, creation window,
 * job ids, persist), sorting by any column the API sorts by, and paging with the total from
 * `GET /stats/job-count`. The filters live in the URL, so a filtered list can be bookmarked.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { get } from '../lib/api';
import {
  elapsed,
  formatCount,
  formatDuration,
  formatRelative,
  formatTime,
  localInputToUtc,
  utcToLocalInput,
} from '../lib/format';
import { useLive, useThrottle } from '../lib/live';
import { useResource } from '../lib/resource';
import { Link, navigate, useLocation } from '../lib/router';
import type { Session } from '../lib/session';
import { JOB_STATES, type ClientRecord, type JobRecord } from '../lib/types';
import { Empty, ErrorBox, StateChip } from '../components/common';

/** The query parameters of `/jobs` the page keeps in its URL. */
const FILTERS = [
  'state',
  'failed',
  'client',
  'search',
  'from',
  'to',
  'job_ids',
  'persist',
  'order_by',
  'asc',
  'limit',
  'offset',
] as const;
type Filters = Partial<Record<(typeof FILTERS)[number], string>>;

const PAGE_SIZES = ['10', '25', '50', '100', '250'];
const DEFAULT_LIMIT = '25';

/** Sortable columns: the header text and the `order_by` value. */
const COLUMNS: { label: string; order?: string; class?: string }[] = [
  { label: 'id', order: 'id' },
  { label: 'client', order: 'client' },
  { label: 'workflow', order: 'workflow' },
  { label: 'state', order: 'queue_state' },
  { label: 'priority', order: 'priority', class: 'num' },
  { label: 'created', order: 'created_at' },
  { label: 'updated', order: 'updated_at' },
  { label: 'run at', order: 'run_at' },
  { label: 'took' },
];

function readFilters(query: URLSearchParams): Filters {
  const f: Filters = {};
  for (const k of FILTERS) {
    const v = query.get(k);
    if (v !== null && v !== '') f[k] = v;
  }
  return f;
}

function toPath(f: Filters): string {
  const q = new URLSearchParams();
  for (const k of FILTERS) {
    const v = f[k];
    if (v !== undefined && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `/jobs?${s}` : '/jobs';
}

/** What a job's parameters say about it in one line (its content_id first). */
function summary(p: Record<string, unknown> | undefined): string {
  if (!p) return '';
  const id = p.content_id;
  const text = JSON.stringify(p);
  return typeof id === 'string' ? id : text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

export function Jobs({ session }: { session: Session }): JSX.Element {
  const loc = useLocation();
  const filters = readFilters(loc.query);
  const key = toPath(filters);
  const set = (patch: Filters, replace = false): void => {
    const next: Filters = { ...filters, ...patch };
    if (!('offset' in patch)) delete next.offset;
    for (const k of Object.keys(patch) as (keyof Filters)[]) if (patch[k] === undefined) delete next[k];
    navigate(toPath(next), replace);
  };

  const list = useResource(
    async (signal) => {
      const query = { ...filters, limit: filters.limit ?? DEFAULT_LIMIT };
      const [jobs, total] = await Promise.all([
        get<JobRecord[]>('/jobs', query, signal),
        get<{ count: number; capped: boolean }>(
          '/stats/job-count',
          { ...filters, limit: undefined, offset: undefined, order_by: undefined, asc: undefined },
          signal,
        ).catch(() => null),
      ]);
      return { jobs, total };
    },
    [key],
  );
  const refresh = useThrottle(list.reload, 1000);
  useLive({ kinds: 'job' }, refresh, refresh);

  const clients = useResource(
    async (signal) => (session.admin ? get<ClientRecord[]>('/clients', undefined, signal) : []),
    [session.admin],
  );

  const [search, setSearch] = useState(filters.search ?? '');
  const [jobIds, setJobIds] = useState(filters.job_ids ?? '');
  useEffect(() => {
    setSearch(filters.search ?? '');
    setJobIds(filters.job_ids ?? '');
  }, [filters.search, filters.job_ids]);

  const limit = Number(filters.limit ?? DEFAULT_LIMIT);
  const offset = Number(filters.offset ?? 0);
  const jobs = list.data?.jobs ?? [];
  const total = list.data?.total;
  const orderBy = filters.order_by ?? 'id';
  const asc = filters.asc === '1';

  return (
    <main class="page wide">
      <h1>Jobs</h1>
      <div class="filters card">
        <div class="chips" role="group" aria-label="state">
          <button
            type="button"
            class={`chip-btn ${!filters.state && !filters.failed ? 'on' : ''}`}
            onClick={() => set({ state: undefined, failed: undefined })}
          >
            all
          </button>
          {JOB_STATES.map((s) => (
            <button
              type="button"
              key={s}
              class={`chip-btn s-${s} ${filters.state === s ? 'on' : ''}`}
              aria-pressed={filters.state === s}
              onClick={() => set({ state: filters.state === s ? undefined : s })}
            >
              {s}
            </button>
          ))}
          <button
            type="button"
            class={`chip-btn s-failed ${filters.failed ? 'on' : ''}`}
            aria-pressed={!!filters.failed}
            onClick={() => set({ failed: filters.failed ? undefined : '1' })}
          >
            failed
          </button>
        </div>
        <form
          class="filter-row"
          onSubmit={(e) => {
            e.preventDefault();
            set({ search: search.trim() || undefined, job_ids: jobIds.trim() || undefined });
          }}
        >
          <label>
            Search
            <input
              name="search"
              type="search"
              value={search}
              placeholder="content_id or parameter text"
              onInput={(e) => setSearch(e.currentTarget.value)}
            />
          </label>
          <label>
            Job ids
            <input
              name="job_ids"
              value={jobIds}
              placeholder="12,15,20"
              onInput={(e) => setJobIds(e.currentTarget.value)}
            />
          </label>
          {session.admin ? (
            <label>
              Client
              <select
                name="client"
                value={filters.client ?? ''}
                onChange={(e) => set({ client: e.currentTarget.value || undefined })}
              >
                <option value="">every client</option>
                {(clients.data ?? []).map((c) => (
                  <option key={c.name} value={c.name}>
                    {c.name}
                    {c.revoked_at ? ' (revoked)' : ''}
                  </option>
                ))}
              </select>
            </label>
          ) : null}
          <label>
            Created from
            <input
              name="from"
              type="datetime-local"
              step="1"
              value={utcToLocalInput(filters.from)}
              onChange={(e) => set({ from: localInputToUtc(e.currentTarget.value) ?? undefined })}
            />
          </label>
          <label>
            to
            <input
              name="to"
              type="datetime-local"
              step="1"
              value={utcToLocalInput(filters.to)}
              onChange={(e) => set({ to: localInputToUtc(e.currentTarget.value) ?? undefined })}
            />
          </label>
          <label>
            Persist
            <select
              name="persist"
              value={filters.persist ?? ''}
              onChange={(e) => set({ persist: e.currentTarget.value || undefined })}
            >
              <option value="">any</option>
              <option value="1">kept (persist)</option>
              <option value="0">not kept</option>
            </select>
          </label>
          <button type="submit" class="primary">
            Apply
          </button>
          {Object.keys(filters).some((k) => k !== 'limit') ? (
            <button
              type="button"
              class="link"
              onClick={() => navigate(filters.limit ? `/jobs?limit=${filters.limit}` : '/jobs')}
            >
              Clear filters
            </button>
          ) : null}
        </form>
      </div>
      <ErrorBox error={list.error} />
      <div class="card">
        <table class="table jobs-table" aria-busy={list.loading}>
          <thead>
            <tr>
              {COLUMNS.map((c) => (
                <th key={c.label} class={c.class}>
                  {c.order ? (
                    <button
                      type="button"
                      class={`sort ${orderBy === c.order ? 'on' : ''}`}
                      onClick={() =>
                        set({
                          order_by: c.order === 'id' ? undefined : c.order,
                          asc: orderBy === c.order ? (asc ? undefined : '1') : undefined,
                        })
                      }
                    >
                      {c.label}
                      {orderBy === c.order ? (asc ? ' ▲' : ' ▼') : ''}
                    </button>
                  ) : (
                    c.label
                  )}
                </th>
              ))}
              <th>parameters</th>
            </tr>
          </thead>
          <tbody>
            {jobs.map((j) => (
              <tr key={j.id} data-job={j.id}>
                <td>
                  <Link to={`/jobs/${j.id}`}>#{j.id}</Link>
                </td>
                <td>{j.client}</td>
                <td>
                  <Link to={`/workflows/${encodeURIComponent(j.workflow)}`}>{j.workflow}</Link>
                </td>
                <td>
                  <StateChip state={j.queue_state} failed={j.failed} />
                  {j.top_of_queue ? <span class="badge">top</span> : null}
                  {j.persist ? <span class="badge">kept</span> : null}
                </td>
                <td class="num">{j.priority}</td>
                <td title={j.created_at}>{formatTime(j.created_at)}</td>
                <td title={j.updated_at}>{formatRelative(j.updated_at)}</td>
                <td title={j.run_at ?? ''}>
                  {j.queue_state === 'scheduled' ? formatRelative(j.run_at) : formatTime(j.run_at)}
                </td>
                <td>{j.started_at ? formatDuration(elapsed(j.started_at, j.finished_at)) : '—'}</td>
                <td class="params" title={JSON.stringify(j.parameters ?? {})}>
                  {summary(j.parameters)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {!list.loading && jobs.length === 0 && !list.error ? (
          <Empty>No job matches these filters.</Empty>
        ) : null}
        <div class="pager">
          <span data-testid="job-total">
            {jobs.length === 0
              ? '0 jobs'
              : `${formatCount(offset + 1)}–${formatCount(offset + jobs.length)} of ${
                  total
                    ? total.capped
                      ? `more than ${formatCount(total.count)}`
                      : formatCount(total.count)
                    : '?'
                }`}
          </span>
          <button
            type="button"
            disabled={offset === 0}
            onClick={() => set({ offset: offset - limit > 0 ? String(offset - limit) : undefined })}
          >
            ‹ Previous
          </button>
          <button
            type="button"
            disabled={
              jobs.length < limit ||
              (total !== null && total !== undefined && !total.capped && offset + limit >= total.count)
            }
            onClick={() => set({ offset: String(offset + limit) })}
          >
            Next ›
          </button>
          <label class="inline">
            per page
            <select
              value={String(limit)}
              onChange={(e) =>
                set({ limit: e.currentTarget.value === DEFAULT_LIMIT ? undefined : e.currentTarget.value })
              }
            >
              {PAGE_SIZES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
        </div>
      </div>
    </main>
  );
}
