/**
 * A job's log as a virtualised list: only the rows in view are drawn, and the entries are read
 * from `GET /logs/<id>?offset=&limit=` a page at a time as they come into view, so a job with
 * 100 000 entries opens as fast as one with ten. The total comes with each page (`x-total-count`).
 *
 * Filters: the lowest severity shown, and `show_all` for the hidden (DEBUG) entries; changing one
 * reads the log again. New entries arrive from the job page's event stream (`append`) or, without
 * one, by reading the end again (`refresh`). "Follow" keeps the newest entry in view.
 */
import type { JSX } from 'preact';
import { useCallback, useEffect, useReducer, useRef, useState } from 'preact/hooks';
import { messageOf, request, withQuery } from '../lib/api';
import { formatClock, formatTime } from '../lib/format';
import type { LogEntry } from '../lib/types';
import { useVirtualizer } from '../lib/virtual';
import { ErrorBox } from './common';

/** Entries per page read. */
const PAGE = 500;
const ROW_H = 22;
const SEVERITIES = ['DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];

/** What the job page calls when the event stream brings something. */
export interface LogSink {
  append: (e: LogEntry) => void;
  refresh: () => void;
}

interface Store {
  /** Bumped on every filter change: replies for an older filter are dropped. */
  gen: number;
  total: number;
  rows: Map<number, LogEntry>;
  /** Pages read or being read. */
  pages: Set<number>;
  /** A page the engine refused or that failed, with the message. */
  error: string | null;
  /** Whether the first page has arrived (the total is known). */
  ready: boolean;
}

function fresh(gen: number): Store {
  return { gen, total: 0, rows: new Map(), pages: new Set(), error: null, ready: false };
}

export function LogView(props: {
  jobId: number;
  /** Task names by id, for the task column. */
  taskNames: Map<number, string>;
  sink: { current: LogSink | null };
}): JSX.Element {
  const [minSeverity, setMinSeverity] = useState(0);
  const [showAll, setShowAll] = useState(false);
  const [follow, setFollow] = useState(true);
  const [picked, setPicked] = useState<LogEntry | null>(null);
  const [, redraw] = useReducer((x: number) => x + 1, 0);
  const store = useRef<Store>(fresh(0));
  const scroller = useRef<HTMLDivElement>(null);
  const tailTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const filter = useRef({ minSeverity, showAll, follow });
  filter.current = { minSeverity, showAll, follow };

  const loadPage = useCallback(
    async (page: number, pages = 1): Promise<void> => {
      const s = store.current;
      const gen = s.gen;
      for (let p = page; p < page + pages; p++) s.pages.add(p);
      try {
        const reply = await request<LogEntry[]>(
          'GET',
          withQuery(`/logs/${props.jobId}`, {
            offset: page * PAGE,
            limit: PAGE * pages,
            severity: filter.current.minSeverity || undefined,
            show_all: filter.current.showAll ? 1 : undefined,
          }),
        );
        if (store.current.gen !== gen) return;
        const total = Number(reply.headers.get('x-total-count') ?? NaN);
        reply.data.forEach((e, i) => s.rows.set(page * PAGE + i, e));
        if (Number.isFinite(total)) s.total = Math.max(total, page * PAGE + reply.data.length);
        else s.total = Math.max(s.total, page * PAGE + reply.data.length);
        const wasReady = s.ready;
        s.ready = true;
        s.error = null;
        // Following a long log: read its end now rather than after the scroll to it lands.
        if (!wasReady && filter.current.follow && s.total > PAGE) {
          const tail = Math.floor((s.total - 1) / PAGE);
          if (!s.pages.has(tail)) void loadPage(tail);
        }
      } catch (err) {
        if (store.current.gen !== gen) return;
        for (let p = page; p < page + pages; p++) s.pages.delete(p);
        s.error = messageOf(err);
        s.ready = true;
      }
      redraw(0);
    },
    [props.jobId],
  );

  /** Reads the end of the log again (the last page known, and the one after it). */
  const refreshTail = useCallback((): void => {
    if (tailTimer.current) return;
    tailTimer.current = setTimeout(() => {
      tailTimer.current = null;
      const s = store.current;
      const last = Math.max(0, Math.floor(Math.max(0, s.total - 1) / PAGE));
      void loadPage(last, 2);
    }, 300);
  }, [loadPage]);

  // Start again whenever the filter changes.
  useEffect(() => {
    store.current = fresh(store.current.gen + 1);
    setPicked(null);
    redraw(0);
    void loadPage(0);
  }, [minSeverity, showAll, loadPage]);

  useEffect(() => {
    props.sink.current = {
      append(e) {
        const s = store.current;
        const f = filter.current;
        if (!s.ready || e.severity < f.minSeverity || (!e.visible && !f.showAll)) return;
        const lastLoaded = s.total > 0 ? s.rows.get(s.total - 1) : undefined;
        if (s.total === 0 || (lastLoaded && e.id > lastLoaded.id)) {
          s.rows.set(s.total, e);
          s.total += 1;
          s.pages.add(Math.floor((s.total - 1) / PAGE));
          redraw(0);
        } else if (!lastLoaded || e.id < lastLoaded.id) refreshTail();
      },
      refresh: refreshTail,
    };
    return () => {
      props.sink.current = null;
      if (tailTimer.current) clearTimeout(tailTimer.current);
    };
  }, [refreshTail]);

  const s = store.current;
  const virtualizer = useVirtualizer({
    count: s.total,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_H,
    overscan: 20,
  });
  const items = virtualizer.getVirtualItems();

  // Read the pages that came into view.
  const first = items[0]?.index ?? 0;
  const last = items[items.length - 1]?.index ?? 0;
  useEffect(() => {
    if (!s.ready) return;
    for (let p = Math.floor(first / PAGE); p <= Math.floor(last / PAGE); p++)
      if (!s.pages.has(p) && p * PAGE < s.total) void loadPage(p);
  });

  // Follow: keep the newest entry in view.
  useEffect(() => {
    if (follow && s.total > 0) virtualizer.scrollToIndex(s.total - 1, { align: 'end' });
  }, [follow, s.total]);

  const onScroll = (): void => {
    const el = scroller.current;
    if (!el) return;
    const atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - ROW_H * 2;
    if (filter.current.follow && !atEnd && virtualizer.isScrolling) setFollow(false);
    else if (!filter.current.follow && atEnd && virtualizer.isScrolling) setFollow(true);
  };

  return (
    <div class="logs">
      <div class="log-tools">
        <label class="inline">
          Lowest severity
          <select
            name="severity"
            value={String(minSeverity)}
            onChange={(e) => setMinSeverity(Number(e.currentTarget.value))}
          >
            {SEVERITIES.map((name, i) => (
              <option key={name} value={String(i)}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <label class="inline">
          <input
            type="checkbox"
            name="show_all"
            checked={showAll}
            onChange={(e) => setShowAll(e.currentTarget.checked)}
          />
          show hidden (DEBUG) entries
        </label>
        <label class="inline">
          <input
            type="checkbox"
            name="follow"
            checked={follow}
            onChange={(e) => setFollow(e.currentTarget.checked)}
          />
          follow
        </label>
        <span class="muted small" data-testid="log-count">
          {s.ready ? `${s.total.toLocaleString('en-GB')} entries` : 'reading…'}
        </span>
      </div>
      <ErrorBox error={s.error} />
      <div class="log-scroll" ref={scroller} onScroll={onScroll} role="log" aria-label="job log">
        <div style={{ height: `${virtualizer.getTotalSize()}px`, position: 'relative' }}>
          {items.map((item) => {
            const e = s.rows.get(item.index);
            return (
              <div
                key={item.key}
                class={`log-row ${e ? `sev-${e.severity}` : 'placeholder'} ${picked && e && picked.id === e.id ? 'picked' : ''}`}
                style={{ transform: `translateY(${item.start}px)`, height: `${ROW_H}px` }}
                data-index={item.index}
                onClick={() => e && setPicked(e)}
              >
                {e ? (
                  <>
                    <span class="log-time" title={formatTime(e.created_at)}>
                      {formatClock(e.created_at)}
                    </span>
                    <span class="log-sev">{e.severity_description}</span>
                    <span class="log-prog">{e.progname}</span>
                    <span class="log-task">
                      {e.task_id ? (props.taskNames.get(e.task_id) ?? `#${e.task_id}`) : 'job'}
                    </span>
                    <span class="log-msg">{e.message}</span>
                  </>
                ) : (
                  <span class="muted">…</span>
                )}
              </div>
            );
          })}
        </div>
      </div>
      {picked ? (
        <div class="log-detail">
          <div class="muted small">
            #{picked.id} · {formatTime(picked.created_at)} · {picked.severity_description} · {picked.progname}
            {picked.task_id ? ` · task ${props.taskNames.get(picked.task_id) ?? picked.task_id}` : ''}{' '}
            <button type="button" class="link" onClick={() => setPicked(null)}>
              close
            </button>
          </div>
          <pre>{picked.message}</pre>
        </div>
      ) : null}
    </div>
  );
}
