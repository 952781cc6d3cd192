/**
 * A client of a Server-Sent Events endpoint (the engine's `GET /events`) as an async iterator:
 * `fetch` for the connection, `eventsource-parser` for the wire format. A dropped connection is
 * opened again after a delay (the server's `retry:` field, else one second, doubling while the
 * engine stays away, up to a cap) with the `Last-Event-ID` header, so that the server can send
 * what was missed; iteration ends when the caller's signal aborts or the caller stops iterating.
 *
 * What the iterator yields besides the server's messages: `open` on every connection (the caller
 * reads the current state after the first one, so nothing falls between its read and the stream)
 * and `retrying` before each reconnection (to tell the user).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { EventSourceParserStream } from 'eventsource-parser/stream';

/** One item of the stream. */
export type StreamItem =
  /** A connection was opened; `resumed` when it asked to resume after `Last-Event-ID`. */
  | { type: 'open'; resumed: boolean }
  /** A message: its `id:` (if any), its `event:` name (`message` when none) and its `data:` text. */
  | { type: 'message'; id: string | undefined; event: string; data: string }
  /** The connection failed or dropped; the next attempt starts after `delayMs`. */
  | { type: 'retrying'; error: string; delayMs: number };

/** Options of {@link eventStream}. */
export interface EventStreamOptions {
  /** The endpoint with its query, e.g. `http://127.0.0.1:3000/events?job_id=42`. */
  url: string;
  /** Request headers (credentials). */
  headers?: Record<string, string>;
  /** Ends the iteration (and the connection) when aborted. */
  signal?: AbortSignal;
  /** Resume after this event id from the first connection on. */
  lastEventId?: string;
  /** First reconnection delay in ms, until the server sends `retry:`; default 1000. */
  retryMs?: number;
  /** Longest reconnection delay in ms while connections keep failing; default 15 000. */
  maxRetryMs?: number;
}

/** A reply that is not an event stream and will not become one by trying again (a 4xx, a wrong type). */
export class EventStreamRefused extends Error {
  constructor(
    readonly status: number,
    /** The reply's body text (the API's JSON error). */
    readonly body: string,
    message: string,
  ) {
    super(message);
    this.name = 'EventStreamRefused';
  }
}

/** Whether `err` is the abort of our own signal. */
function isAbort(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted || (err instanceof Error && err.name === 'AbortError');
}

function reason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return (err.cause as Error | undefined)?.message ?? err.message;
}

/**
 * Streams the events of `opts.url`, reconnecting with `Last-Event-ID` after a drop, until
 * `opts.signal` aborts (the iteration then simply ends) or the caller breaks out of its loop.
 * A 5xx reply or a network error is retried like a drop.
 * @throws {@link EventStreamRefused} on a 4xx reply (credentials, a bad query, an engine without
 * the endpoint) or a 2xx reply that is not `text/event-stream`.
 */
export async function* eventStream(opts: EventStreamOptions): AsyncGenerator<StreamItem, void, undefined> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  if (opts.signal?.aborted) return;
  opts.signal?.addEventListener('abort', stop, { once: true });
  const { signal } = controller;
  let lastId = opts.lastEventId;
  let retryMs = opts.retryMs ?? 1000;
  const maxRetryMs = opts.maxRetryMs ?? 15_000;
  let failures = 0;
  try {
    while (!signal.aborted) {
      let problem: string;
      try {
        const headers: Record<string, string> = {
          ...opts.headers,
          accept: 'text/event-stream',
          'cache-control': 'no-cache',
        };
        if (lastId !== undefined) headers['last-event-id'] = lastId;
        const res = await fetch(opts.url, { headers, signal });
        if (!res.ok || !res.body) {
          const body = await res.text().catch(() => '');
          if (res.status < 500)
            throw new EventStreamRefused(res.status, body, `${opts.url} answered ${res.status}`);
          throw new Error(`${opts.url} answered ${res.status}`);
        }
        const type = res.headers.get('content-type') ?? '';
        if (!type.startsWith('text/event-stream')) {
          await res.body.cancel().catch(() => undefined);
          throw new EventStreamRefused(
            res.status,
            '',
            `${opts.url} is not an event stream (content-type ${type || 'none'})`,
          );
        }
        failures = 0;
        yield { type: 'open', resumed: lastId !== undefined };
        const messages = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(
          new EventSourceParserStream({
            onRetry: (ms) => {
              retryMs = ms;
            },
          }),
        );
        for await (const m of messages) {
          if (m.id !== undefined) lastId = m.id;
          yield { type: 'message', id: m.id, event: m.event ?? 'message', data: m.data };
        }
        problem = 'the server closed the stream';
      } catch (err) {
        if (err instanceof EventStreamRefused) throw err;
        if (isAbort(err, signal)) return;
        problem = reason(err);
      }
      const wait = Math.min(maxRetryMs, retryMs * 2 ** failures);
      failures++;
      yield { type: 'retrying', error: problem, delayMs: wait };
      try {
        await delay(wait, undefined, { signal });
      } catch {
        return;
      }
    }
  } finally {
    opts.signal?.removeEventListener('abort', stop);
    controller.abort();
  }
}
