/**
 * A real HTTP server on 127.0.0.1 that records every request, for callback and semaphore tests.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as received. */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** The raw body bytes as text (UTF-8). */
  raw: string;
  /** `Date.now()` when the body had arrived. */
  at: number;
}

/** What to answer: a status (default 200), after `delayMs`, or never (`hang`). */
export interface Reply {
  status?: number;
  delayMs?: number;
  hang?: boolean;
  headers?: Record<string, string>;
}

/** A running receiver. */
export interface Receiver {
  /** `http://127.0.0.1:<port>` */
  url: string;
  requests: ReceivedRequest[];
  /** Requests to one path, in arrival order. */
  on(path: string): ReceivedRequest[];
  close(): Promise<void>;
}

/**
 * Starts a receiver. `reply` decides each answer from the request and how many requests that path
 * had before it (0 for the first).
 */
export async function startReceiver(
  reply: (req: ReceivedRequest, countOnPath: number) => Reply = () => ({}),
): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: ReceivedRequest = {
        method: req.method ?? '',
        path: (req.url ?? '/').split('?')[0]!,
        headers: req.headers,
        raw: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      };
      const count = requests.filter((x) => x.path === r.path).length;
      requests.push(r);
      const answer = reply(r, count);
      if (answer.hang) return;
      const send = (): void => {
        res.writeHead(answer.status ?? 200, { 'content-type': 'application/json', ...answer.headers });
        res.end('{"ok":true}');
      };
      if (answer.delayMs) setTimeout(send, answer.delayMs);
      else send();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    on: (path) => requests.filter((r) => r.path === path),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
