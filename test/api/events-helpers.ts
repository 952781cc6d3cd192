/**
 * A small Server-Sent Events reader over real HTTP for the `/events` tests: `fetch` plus
 * `eventsource-parser`, keeping every message and comment it received.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';

/** One received message, its data parsed as JSON. */
export interface SseEvent {
  id: number | null;
  event: string;
  data: Record<string, unknown>;
}

/** An open (or refused) stream. */
export interface SseStream {
  status: number;
  contentType: string;
  /** The JSON body of a refused request (status other than 200). */
  error: { error: string; id?: number } | null;
  /** Every message so far, in arrival order. */
  events: SseEvent[];
  /** Every comment line so far (without the leading colon). */
  comments: string[];
  /** The `retry:` value the server sent, if any. */
  retry: number | null;
  /** Whether the server ended the stream. */
  readonly ended: boolean;
  /**
   * Waits until `until(events)` holds, and returns the events then.
   * @throws when it does not within `timeoutMs` (naming `what` and what arrived).
   */
  waitFor(until: (events: SseEvent[]) => boolean, what: string, timeoutMs?: number): Promise<SseEvent[]>;
  /** Waits for the server to end the stream. */
  waitForEnd(timeoutMs?: number): Promise<void>;
  /** Closes the connection from the client side. */
  close(): void;
}

/**
 * Opens `GET url` as an event stream with `headers`.
 * @returns once the status line arrived (the stream then fills in the background).
 */
export async function openEventStream(url: string, headers: Record<string, string>): Promise<SseStream> {
  const abort = new AbortController();
  const res = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: abort.signal,
  });
  const contentType = res.headers.get('content-type') ?? '';
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let ended = false;
  let changed: (() => void)[] = [];
  const notify = (): void => {
    const c = changed;
    changed = [];
    for (const fn of c) fn();
  };
  const stream: SseStream = {
    status: res.status,
    contentType,
    error: null,
    events,
    comments,
    retry: null,
    get ended() {
      return ended;
    },
    async waitFor(until, what, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!until(events)) {
        const left = deadline - Date.now();
        if (left <= 0 || ended)
          throw new Error(
            `${ended ? 'the stream ended' : 'timed out'} waiting for ${what}; got ${events.length} events: ${events
              .slice(-20)
              .map((e) => `${e.id}:${e.event}:${JSON.stringify(e.data).slice(0, 120)}`)
              .join(' | ')}`,
          );
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 200));
          changed.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      return events;
    },
    async waitForEnd(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!ended) {
        if (Date.now() > deadline) throw new Error('timed out waiting for the stream to end');
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    close() {
      abort.abort();
    },
  };
  if (res.status !== 200 || !res.body) {
    stream.error = (await res.json()) as SseStream['error'];
    ended = true;
    return stream;
  }
  const parser = createParser({
    onEvent(m: EventSourceMessage) {
      events.push({
        id: m.id === undefined ? null : Number(m.id),
        event: m.event ?? 'message',
        data: JSON.parse(m.data) as Record<string, unknown>,
      });
      notify();
    },
    onComment(c) {
      comments.push(c.trim());
      notify();
    },
    onRetry(ms) {
      stream.retry = ms;
    },
  });
  const decoder = new TextDecoder();
  void (async () => {
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>)
        parser.feed(decoder.decode(chunk, { stream: true }));
    } catch {
      // aborted by close(), or the connection dropped
    } finally {
      ended = true;
      notify();
    }
  })();
  return stream;
}
