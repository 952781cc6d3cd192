/**
 * Queue: the started, queued, pending, scheduled and paused jobs in admission order with their
 * positions. `GET /dashboard` gives the started jobs and the head (first 100) of every other
 * list, so the page draws at once; each list of waiting jobs is a virtualised list (only the rows
 * in view are drawn) whose further rows are read page by page as they scroll into view, with
 * `GET /jobs?state=…&order_by=position&asc=1&limit=` (the same order and positions), its length
 * from `GET /stats/job-count`. A page that follows a page already read continues right after its
 * last job (`after_id=`, as cheap at any depth as the first page); a page reached by jumping (a
 * dragged scroll bar) is read by `offset=`. An engine whose dashboard does not list pending or
 * paused jobs has them read from `GET /jobs` alone.
 */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { get } from '../lib/api';
import { formatRelative, formatTime } from '../lib/format';
import { useLive, useThrottle } from '../lib/live';
import { useResource } from '../lib/resource';
import { Link } from '../lib/router';
import type { Dashboard, JobRecord } from '../lib/types';
import { useVirtualizer } from '../lib/virtual';
import { Empty, ErrorBox, Loading, Section } from '../components/common';

type WaitingKey = 'queued' | 'pending' | 'scheduled' | 'paused';

const LISTS: { key: WaitingKey; title: string; note: string }[] = [
  { key: 'queued', title: 'Queued', note: 'waiting for a slot, in the order they will be admitted' },
  { key: 'pending', title: 'Pending', note: 'waiting for their semaphore' },
  { key: 'scheduled', title: 'Scheduled', note: 'waiting for their run_at' },
  { key: 'paused', title: 'Paused', note: 'waiting to be resumed' },
];

/** Rows per page read from `GET /jobs`. */
const PAGE = 100;
/** Height of one row, px. */
const ROW_H = 30;

/** The length of a list: exact, or at least `count` when the count is capped. */
interface Count {
  count: number;
  capped: boolean;
}

interface QueueData {
  dashboard: Dashboard;
  counts: Record<WaitingKey, Count>;
}

async function load(signal: AbortSignal): Promise<QueueData> {
  const count = (state: WaitingKey) => get<Count>('/stats/job-count', { state }, signal).catch(() => null);
  const [d, ...counted] = await Promise.all([
    get<Dashboard>('/dashboard', undefined, signal),
    ...LISTS.map((l) => count(l.key)),
  ]);
  const counts = {} as Record<WaitingKey, Count>;
  LISTS.forEach((l, i) => {
    const head = d[l.key];
    counts[l.key] = counted[i] ?? { count: head?.length ?? 0, capped: (head?.length ?? 0) >= PAGE };
  });
  return { dashboard: d, counts };
}

function whenOf(j: JobRecord, kind: string): string {
  if (kind === 'scheduled') return `${formatTime(j.run_at)} (${formatRelative(j.run_at)})`;
  if (kind === 'started') return formatTime(j.started_at);
  return formatTime(j.created_at);
}

function Head({ kind }: { kind: string }): JSX.Element {
  return (
    <div class="qrow qhead" role="row">
      <span class="num">position</span>
      <span>job</span>
      <span>client</span>
      <span>workflow</span>
      <span class="num">priority</span>
      <span>{kind === 'scheduled' ? 'run at' : kind === 'started' ? 'started' : 'created'}</span>
    </div>
  );
}

function Cells({ j, kind }: { j: JobRecord; kind: string }): JSX.Element {
  return (
    <>
      <span class="num">{j.position}</span>
      <span>
        <Link to={`/jobs/${j.id}`}>#{j.id}</Link>
        {j.top_of_queue ? <span class="badge">top</span> : null}
      </span>
      <span>{j.client}</span>
      <span>{j.workflow}</span>
      <span class="num">{j.priority}</span>
      <span>{whenOf(j, kind)}</span>
    </>
  );
}

/** The started jobs: at most `max_jobs`, drawn whole. */
function StartedList({ jobs }: { jobs: JobRecord[] }): JSX.Element {
  if (jobs.length === 0) return <Empty>None.</Empty>;
  return (
    <div class="qtable" data-list="started" role="table">
      <Head kind="started" />
      {jobs.map((j) => (
        <div class="qrow" role="row" key={j.id} data-job={j.id}>
          <Cells j={j} kind="started" />
        </div>
      ))}
    </div>
  );
}

/**
 * One list of waiting jobs, virtualised: `head` (the dashboard's first rows) shows at once, the
 * other pages are read when they come into view. `generation` changes on every refresh, which
 * drops the pages read so far (they are read again as they are seen).
 */
function PagedList(props: {
  kind: WaitingKey;
  head: JobRecord[] | undefined;
  count: Count;
  generation: number;
}): JSX.Element {
  const { kind, head, count, generation } = props;
  const [, redraw] = useState(0);
  const store = useRef({
    generation: -1,
    rows: new Map<number, JobRecord>(),
    pages: new Set<number>(),
    total: 0,
  });
  const s = store.current;
  if (s.generation !== generation) {
    s.generation = generation;
    s.rows = new Map();
    s.pages = new Set();
    (head ?? []).forEach((j, i) => s.rows.set(i, j));
    // The dashboard's head is page 0 when it is whole.
    if (head && head.length >= Math.min(PAGE, count.count)) s.pages.add(0);
    s.total = Math.max(count.count, head?.length ?? 0);
  }
  const scroller = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count: s.total,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_H,
    overscan: 10,
  });
  const items = virtualizer.getVirtualItems();
  const first = items[0]?.index ?? 0;
  const last = items[items.length - 1]?.index ?? 0;
  useEffect(() => {
    const at = s.generation;
    for (let p = Math.floor(first / PAGE); p <= Math.floor(last / PAGE); p++) {
      if (s.pages.has(p) || p * PAGE >= s.total) continue;
      s.pages.add(p);
      const query = { state: kind, order_by: 'position', asc: 1, limit: PAGE };
      const byOffset = () => get<JobRecord[]>('/jobs', { ...query, offset: p * PAGE });
      // The row just before this page, when its page was read: the page continues after it. Its
      // job may be gone since (cleaned up: a 400); the page is then read by offset.
      const before = p > 0 ? s.rows.get(p * PAGE - 1) : undefined;
      void (
        before ? get<JobRecord[]>('/jobs', { ...query, after_id: before.id }).catch(byOffset) : byOffset()
      )
        .then((rows) => {
          if (s.generation !== at) return;
          rows.forEach((j, i) => s.rows.set(p * PAGE + i, j));
          // A capped count grows while full pages keep coming.
          if (count.capped && rows.length === PAGE) s.total = Math.max(s.total, (p + 2) * PAGE);
          if (rows.length < PAGE) s.total = Math.min(s.total, p * PAGE + rows.length);
          redraw((x) => x + 1);
        })
        .catch(() => s.pages.delete(p));
    }
  });
  if (s.total === 0) return <Empty>None.</Empty>;
  return (
    <div class="qtable" data-list={kind} role="table" data-total={s.total}>
      <Head kind={kind} />
      <div class="qscroll" ref={scroller} style={{ height: `${Math.min(s.total, 12) * ROW_H + 2}px` }}>
        <div style={{ height: `${virtualizer.getTotalSize()}px`, position: 'relative' }}>
          {items.map((item) => {
            const j = s.rows.get(item.index);
            return (
              <div
                class="qrow qvrow"
                role="row"
                key={item.key}
                data-job={j?.id}
                style={{ transform: `translateY(${item.start}px)`, height: `${ROW_H}px` }}
              >
                {j ? <Cells j={j} kind={kind} /> : <span class="muted">…</span>}
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}

export function QueuePage(): JSX.Element {
  const res = useResource(load, []);
  const refresh = useThrottle(res.reload, 1000);
  useLive({ kinds: 'job' }, refresh, refresh);
  // A new generation whenever a fresh dashboard arrives.
  const generation = useRef({ data: null as QueueData | null, n: 0 });
  if (res.data && generation.current.data !== res.data) {
    generation.current.data = res.data;
    generation.current.n++;
  }
  const d = res.data?.dashboard;
  return (
    <main class="page">
      <h1>Queue</h1>
      <ErrorBox error={res.error} />
      {!d || !res.data ? (
        <Loading />
      ) : (
        <>
          <p class="muted">
            {d.started.length} of {d.max_jobs} slots in use; {d.priority_slots} kept for urgent jobs.
          </p>
          <Section title={`Started (${d.started.length})`} id="list-started">
            <p class="muted small">running now, using a slot each</p>
            <StartedList jobs={d.started} />
          </Section>
          {LISTS.map((l) => {
            const c = res.data!.counts[l.key];
            return (
              <Section
                key={l.key}
                title={`${l.title} (${c.capped ? 'more than ' : ''}${c.count.toLocaleString('en')})`}
                id={`list-${l.key}`}
              >
                <p class="muted small">{l.note}</p>
                <PagedList kind={l.key} head={d[l.key]} count={c} generation={generation.current.n} />
              </Section>
            );
          })}
        </>
      )}
    </main>
  );
}
