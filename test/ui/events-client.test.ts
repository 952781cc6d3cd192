/**
 * The console's event-stream client (ui/src/lib/events.ts) in Node against a small SSE server
 * that follows the `GET /events` contract: events arrive in order with their kinds and data, a
 * dropped stream is opened again with `Last-Event-ID` (after the wait the server's `retry:` asks
 * for) and nothing is repeated, a 404 (an engine without `/events`) turns the stream into
 * `polling` and stops asking, and a 401 signs out. The client runs as the browser runs it: fetch,
 * a TextDecoderStream and eventsource-parser; sessionStorage is a Map here.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../helpers/wait-for.js';

interface LiveEvent {
  kind: string;
  id: string | undefined;
  data: Record<string, unknown> | null;
}
interface EventsModule {
  openEventStream(
    query: { job_id?: number; kinds: string; show_all?: boolean },
    onEvent: (e: LiveEvent) => void,
    onStatus: (s: string) => void,
  ): () => void;
}
interface SessionModule {
  setSession(s: { client: string; apiKey: string; admin: boolean } | null): void;
  getSession(): { client: string } | null;
}

/** What the test server should do with the n-th request (0-based). */
type Script = (n: number, req: IncomingMessage, res: ServerResponse) => void;

describe('console event-stream client', () => {
  let server: Server;
  let base = '';
  let script: Script = () => undefined;
  let requests: IncomingMessage[] = [];
  const open = new Set<ServerResponse>();
  let events: EventsModule;
  let session: SessionModule;
  const realFetch = globalThis.fetch;

  before(async () => {
    server = createServer((req, res) => {
      const n = requests.push(req) - 1;
      open.add(res);
      res.on('close', () => open.delete(res));
      script(n, req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const storage = new Map<string, string>();
    Object.assign(globalThis, {
      sessionStorage: {
        getItem: (k: string) => storage.get(k) ?? null,
        setItem: (k: string, v: string) => storage.set(k, v),
        removeItem: (k: string) => storage.delete(k),
      },
    });
    // The console calls its own origin with relative URLs.
    globalThis.fetch = (input, init) =>
      realFetch(
        new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url, base),
        init,
      );
    const lib = (name: string): string =>
      fileURLToPath(new URL(`../../ui/src/lib/${name}.ts`, import.meta.url));
    session = (await import(lib('session'))) as SessionModule;
    events = (await import(lib('events'))) as EventsModule;
  });
  after(async () => {
    globalThis.fetch = realFetch;
    for (const res of open) res.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  const begin = (s: Script): void => {
    requests = [];
    script = s;
    session.setSession({ client: 'acme', apiKey: 'k3y:with:colons', admin: false });
  };
  const sse = (res: ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  };
  const send = (res: ServerResponse, id: number, event: string, data: unknown): void => {
    res.write(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };

  void test('events arrive in order; a dropped stream resumes with Last-Event-ID and misses nothing', async () => {
    begin((n, _req, res) => {
      sse(res);
      if (n === 0) {
        res.write('retry: 500\n\n');
        send(res, 1, 'job', { job_id: 7, queue_state: 'started', failed: false });
        send(res, 2, 'task', { job_id: 7, task_id: 70, name: 'wait', state: 'running', progress: 0.25 });
        // A message split across writes, and a comment line the parser skips.
        res.write(': keep-alive\n\nid: 3\nevent: log\nda');
        setTimeout(() => {
          res.write(`ta: ${JSON.stringify({ id: 99, job_id: 7, message: 'hello' })}\n\n`);
          setTimeout(() => res.destroy(), 50);
        }, 50);
      } else {
        send(res, 4, 'reset', {});
        send(res, 5, 'job', { job_id: 7, queue_state: 'completed', failed: false });
      }
    });
    const got: LiveEvent[] = [];
    const statuses: string[] = [];
    const close = events.openEventStream(
      { job_id: 7, kinds: 'job,task,log', show_all: true },
      (e) => got.push(e),
      (s) => statuses.push(s),
    );
    try {
      await waitFor(() => got.length >= 5 || null, { timeoutMs: 10_000, what: 'five events' });
    } finally {
      close();
    }
    assert.deepEqual(
      got.map((e) => [e.id, e.kind]),
      [
        ['1', 'job'],
        ['2', 'task'],
        ['3', 'log'],
        ['4', 'reset'],
        ['5', 'job'],
      ],
    );
    assert.equal(got[1]!.data!.progress, 0.25);
    assert.equal(got[2]!.data!.message, 'hello');
    assert.equal(requests.length, 2);
    const [first, second] = requests;
    assert.equal(first!.url, '/events?job_id=7&kinds=job%2Ctask%2Clog&show_all=true');
    assert.equal(first!.headers.authorization, 'Bearer acme:k3y:with:colons');
    assert.equal(first!.headers.accept, 'text/event-stream');
    assert.equal(first!.headers['last-event-id'], undefined);
    assert.equal(second!.headers['last-event-id'], '3');
    assert.deepEqual(statuses, ['connecting', 'live', 'reconnecting', 'live']);
  });

  void test('an engine without /events (404) makes the stream report polling and stop asking', async () => {
    begin((_n, _req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'no route GET /events' }));
    });
    const statuses: string[] = [];
    const close = events.openEventStream(
      { kinds: 'job' },
      () => assert.fail('no events expected'),
      (s) => statuses.push(s),
    );
    await waitFor(() => statuses.includes('polling') || null, { timeoutMs: 5_000, what: 'polling' });
    await new Promise((r) => setTimeout(r, 1500));
    close();
    assert.deepEqual(statuses, ['connecting', 'polling']);
    assert.equal(requests.length, 1);
  });

  void test('a server error is retried; a 401 signs out and stops', async () => {
    begin((n, _req, res) => {
      if (n === 0) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"error":"the database cannot be reached"}');
      } else {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end('{"error":"wrong credentials"}');
      }
    });
    const statuses: string[] = [];
    const close = events.openEventStream(
      { kinds: 'job' },
      () => undefined,
      (s) => statuses.push(s),
    );
    try {
      await waitFor(() => (session.getSession() === null ? true : null), {
        timeoutMs: 10_000,
        what: 'sign-out',
      });
    } finally {
      close();
    }
    assert.equal(requests.length, 2);
    assert.equal(statuses[0], 'connecting');
    assert.ok(!statuses.includes('live'));
  });
});
