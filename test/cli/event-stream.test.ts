/**
 * The CLI's Server-Sent Events client (`src/cli/event-stream.ts`) against a small real SSE server
 * on 127.0.0.1: messages arrive in order with their ids, names and (multi-line) data; a dropped
 * connection is opened again with `Last-Event-ID` after the server's `retry:` delay, so nothing is
 * missed or repeated; a 5xx is retried; a 4xx ends the iteration with the reply; an abort or a
 * `break` ends it and closes the connection.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { eventStream, EventStreamRefused, type StreamItem } from '../../src/cli/event-stream.js';
import { waitFor } from '../helpers/wait-for.js';

/** What the server does with one request, by path. */
type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

interface SseServer {
  url: string;
  /** Requests so far, by path: their `last-event-id` header (or null) and headers. */
  requests: { path: string; lastEventId: string | null; headers: IncomingMessage['headers'] }[];
  /** Open responses (to see a client close its connection). */
  open: Set<ServerResponse>;
  close(): Promise<void>;
}

async function startSse(handlers: Record<string, Handler>): Promise<SseServer> {
  const requests: SseServer['requests'] = [];
  const open = new Set<ServerResponse>();
  const counts = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const n = counts.get(path) ?? 0;
    counts.set(path, n + 1);
    const header = req.headers['last-event-id'];
    requests.push({ path, lastEventId: typeof header === 'string' ? header : null, headers: req.headers });
    open.add(res);
    res.on('close', () => open.delete(res));
    const handler = handlers[path];
    if (!handler) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"no such route"}');
      return;
    }
    handler(req, res, n);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    open,
    async close() {
      for (const r of open) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function sseHead(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
}

/** The events 1..10 of a pretend job, as `id`, `event`, `data`. */
const EVENTS = Array.from({ length: 10 }, (_v, i) => ({
  id: String(i + 1),
  event: i % 2 === 0 ? 'task' : 'log',
  data: JSON.stringify({ job_id: 7, n: i + 1 }),
}));

function writeEvent(res: ServerResponse, e: { id: string; event: string; data: string }): void {
  res.write(`id: ${e.id}\nevent: ${e.event}\ndata: ${e.data}\n\n`);
}

/** Collects up to `count` messages (and every other item) from the stream. */
async function collect(
  it: AsyncIterable<StreamItem>,
  count: number,
): Promise<{ items: StreamItem[]; messages: Extract<StreamItem, { type: 'message' }>[] }> {
  const items: StreamItem[] = [];
  const messages: Extract<StreamItem, { type: 'message' }>[] = [];
  for await (const item of it) {
    items.push(item);
    if (item.type === 'message') messages.push(item);
    if (messages.length >= count) break;
  }
  return { items, messages };
}

void describe('CLI event stream client', () => {
  let sse: SseServer;
  before(async () => {
    sse = await startSse({
      // Every event in one connection, then it stays open; data spread over two lines once.
      '/all': (_req, res) => {
        sseHead(res);
        res.write(': a comment, ignored\nretry: 50\n\n');
        for (const e of EVENTS) writeEvent(res, e);
        res.write('event: note\ndata: first line\ndata: second line\n\n');
      },
      // Drops the connection after every third event; resumes after Last-Event-ID.
      '/drops': (req, res) => {
        sseHead(res);
        const after = Number(req.headers['last-event-id'] ?? 0);
        res.write('retry: 30\n\n');
        const next = EVENTS.filter((e) => Number(e.id) > after).slice(0, 3);
        for (const e of next) writeEvent(res, e);
        setTimeout(() => res.destroy(), 10);
      },
      // 503 twice, then the stream.
      '/flaky': (_req, res, n) => {
        if (n < 2) {
          res.writeHead(503).end('busy');
          return;
        }
        sseHead(res);
        writeEvent(res, EVENTS[0]!);
      },
      '/refused': (_req, res) => {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"wrong credentials"}');
      },
      '/not-sse': (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
      },
      '/down': (_req, res) => {
        res.writeHead(503).end();
      },
      '/silent': (_req, res) => {
        sseHead(res);
        res.write(': connected\n\n');
      },
    });
  });
  after(() => sse.close());

  test('messages arrive in order with their ids, names and data; open comes first', async () => {
    const { items, messages } = await collect(
      eventStream({ url: `${sse.url}/all?job_id=7`, headers: { client: 'acme', 'api-key': 'k' } }),
      11,
    );
    assert.deepEqual(items[0], { type: 'open', resumed: false });
    assert.deepEqual(
      messages.slice(0, 10).map((m) => ({ id: m.id, event: m.event, data: m.data })),
      EVENTS,
    );
    assert.deepEqual(messages[10], {
      type: 'message',
      id: undefined,
      event: 'note',
      data: 'first line\nsecond line',
    });
    const req = sse.requests.find((r) => r.path === '/all')!;
    assert.equal(req.headers.client, 'acme');
    assert.equal(req.headers['api-key'], 'k');
    assert.equal(req.headers.accept, 'text/event-stream');
    assert.equal(req.lastEventId, null);
    await waitFor(() => sse.open.size === 0, { what: 'the client to close its connection after break' });
  });

  test('a dropped connection resumes after Last-Event-ID: nothing missed, nothing repeated', async () => {
    const t0 = Date.now();
    const { items, messages } = await collect(eventStream({ url: `${sse.url}/drops` }), 10);
    assert.deepEqual(
      messages.map((m) => m.id),
      EVENTS.map((e) => e.id),
    );
    const asked = sse.requests.filter((r) => r.path === '/drops').map((r) => r.lastEventId);
    assert.deepEqual(asked, [null, '3', '6', '9']);
    const opens = items.filter((i) => i.type === 'open');
    assert.deepEqual(opens, [
      { type: 'open', resumed: false },
      { type: 'open', resumed: true },
      { type: 'open', resumed: true },
      { type: 'open', resumed: true },
    ]);
    const retries = items.filter((i) => i.type === 'retrying');
    assert.equal(retries.length, 3);
    for (const r of retries) assert.equal(r.delayMs, 30, "the server's retry: delay");
    assert.ok(Date.now() - t0 < 10_000);
  });

  test('a 5xx is retried with a growing delay; the stream then flows', async () => {
    const { items, messages } = await collect(eventStream({ url: `${sse.url}/flaky`, retryMs: 20 }), 1);
    assert.equal(messages[0]!.id, '1');
    const retries = items.filter((i) => i.type === 'retrying');
    assert.deepEqual(
      retries.map((r) => r.delayMs),
      [20, 40],
    );
    assert.match(retries[0]!.error, /answered 503/);
  });

  test('a 4xx or a reply that is not an event stream ends the iteration with the reply', async () => {
    await assert.rejects(
      collect(eventStream({ url: `${sse.url}/refused` }), 1),
      (err: unknown) =>
        err instanceof EventStreamRefused &&
        err.status === 401 &&
        err.body === '{"error":"wrong credentials"}',
    );
    await assert.rejects(
      collect(eventStream({ url: `${sse.url}/missing` }), 1),
      (err: unknown) => err instanceof EventStreamRefused && err.status === 404,
    );
    await assert.rejects(
      collect(eventStream({ url: `${sse.url}/not-sse` }), 1),
      (err: unknown) => err instanceof EventStreamRefused && /not an event stream/.test(err.message),
    );
  });

  test('an abort ends the iteration while it waits, and closes the connection', async () => {
    const abort = new AbortController();
    const seen: StreamItem[] = [];
    const done = (async () => {
      for await (const item of eventStream({ url: `${sse.url}/silent`, signal: abort.signal }))
        seen.push(item);
    })();
    await waitFor(() => seen.length > 0, { what: 'the connection to open' });
    assert.equal(sse.open.size, 1);
    abort.abort();
    await done;
    assert.deepEqual(seen, [{ type: 'open', resumed: false }]);
    await waitFor(() => sse.open.size === 0, { what: 'the connection to close' });
  });

  test('an abort during the reconnection delay ends the iteration', async () => {
    const abort = new AbortController();
    const items: StreamItem[] = [];
    const t0 = Date.now();
    for await (const item of eventStream({ url: `${sse.url}/down`, signal: abort.signal, retryMs: 60_000 })) {
      items.push(item);
      if (item.type === 'retrying') abort.abort();
    }
    assert.deepEqual(
      items.map((i) => i.type),
      ['retrying'],
    );
    assert.ok(Date.now() - t0 < 10_000, 'it did not wait out the 60 s delay');
  });
});
