/**
 * The engine's live events (`GET /events`, Server-Sent Events), read with fetch so that the
 * request can carry the Authorization header (EventSource cannot), and parsed with
 * eventsource-parser. A dropped stream is opened again with `Last-Event-ID`, so nothing is missed
 * within the engine's resume window; `event: reset` tells the page to read its state again.
 *
 * An engine without `/events` (a 404, or another refusal of the request) makes the stream report
 * `polling`: pages then read their data again on a timer instead.
 */
import { createParser } from 'eventsource-parser';
import { withQuery } from './api';
import { authorization, getSession, setSession } from './session';

/** A job changed state, failed flag, priority or run. */
export interface JobEvent {
  job_id: number;
  client: string;
  workflow: string;
  queue_state: string;
  failed: boolean;
  priority: number;
  run: number;
  previous_state: string | null;
}

/** A task changed state or progress. */
export interface TaskEvent {
  job_id: number;
  task_id: number;
  name: string;
  queue: string;
  state: string;
  previous_state: string | null;
  attempts: number;
  progress: number | null;
  progress_message: string | null;
  progress_detail: Record<string, unknown> | null;
}

/** One message of the stream. */
export type LiveEvent =
  | { kind: 'job'; id: string | undefined; data: JobEvent }
  | { kind: 'task'; id: string | undefined; data: TaskEvent }
  | { kind: 'log'; id: string | undefined; data: import('./types').LogEntry }
  | { kind: 'reset'; id: string | undefined; data: unknown };

/** The state of a stream: receiving, trying to (re)connect, or replaced by polling. */
export type LiveStatus = 'connecting' | 'live' | 'reconnecting' | 'polling';

/** What to read: `job_id` narrows to one job; `kinds` is a comma list of job, task, log. */
export interface StreamQuery {
  job_id?: number;
  kinds: string;
  show_all?: boolean;
}

const KINDS = new Set(['job', 'task', 'log', 'reset']);

/**
 * Opens the stream and keeps it open until the returned function is called.
 * @param onEvent - each event, in order.
 * @param onStatus - each change of {@link LiveStatus}; after `polling` the stream gives up.
 */
export function openEventStream(
  query: StreamQuery,
  onEvent: (e: LiveEvent) => void,
  onStatus: (s: LiveStatus) => void,
): () => void {
  let stopped = false;
  let controller: AbortController | null = null;
  let lastId: string | undefined;
  let retryMs = 1000;
  const url = withQuery('/events', { job_id: query.job_id, kinds: query.kinds, show_all: query.show_all });

  const run = async (): Promise<void> => {
    // The wait before the next try: the server's `retry:` after a stream that was live, doubled
    // (up to 15 s) for each try in a row that fails.
    let failures = 0;
    onStatus('connecting');
    while (!stopped) {
      const session = getSession();
      if (!session) return;
      controller = new AbortController();
      try {
        const headers: Record<string, string> = {
          accept: 'text/event-stream',
          authorization: authorization(session),
        };
        if (lastId !== undefined) headers['last-event-id'] = lastId;
        const res = await fetch(url, { headers, signal: controller.signal, cache: 'no-store' });
        if (res.status === 401) {
          setSession(null, 'The engine no longer accepts these credentials.');
          return;
        }
        // No /events on this engine (404), or it does not take this request: poll instead.
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
          onStatus('polling');
          return;
        }
        if (!res.ok || !res.body) throw new Error(`status ${res.status}`);
        onStatus('live');
        failures = 0;
        const parser = createParser({
          onEvent(message) {
            if (message.id !== undefined) lastId = message.id;
            const kind = message.event ?? 'message';
            if (!KINDS.has(kind)) return;
            let data: unknown;
            try {
              data = message.data ? JSON.parse(message.data) : null;
            } catch {
              return;
            }
            onEvent({ kind, id: message.id, data } as LiveEvent);
          },
          onRetry(ms) {
            retryMs = Math.max(500, Math.min(ms, 30_000));
          },
        });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parser.feed(value);
        }
      } catch {
        if (stopped) return;
      }
      if (stopped) return;
      onStatus('reconnecting');
      await new Promise((r) => setTimeout(r, Math.min(retryMs * 2 ** failures, 15_000)));
      failures += 1;
    }
  };
  void run();
  return () => {
    stopped = true;
    controller?.abort();
  };
}
