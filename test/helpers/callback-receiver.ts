/**
 * A tiny HTTP server on 127.0.0.1 that records the callbacks it receives, for tests.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from './wait-for.js';

/** One received request. */
export interface ReceivedCallback {
  method: string;
  /** Path with query string, e.g. `/hook?x=1`. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body as text. */
  raw: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** `Date.now()` when the body was complete. */
  receivedAt: number;
}

/** A running receiver. */
export interface CallbackReceiver {
  /** Base URL, e.g. `http://127.0.0.1:43123`. */
  readonly base: string;
  /** A full URL on this receiver: `url('/done')`. */
  url(pathname?: string): string;
  /** Everything received so far, in arrival order. */
  readonly requests: ReceivedCallback[];
  /** Requests whose path starts with `pathname`. */
  on(pathname: string): ReceivedCallback[];
  /**
   * Sets how to answer: a status code, or a function of the request returning a status code
   * (and optionally a delay in ms). Default 200.
   */
  respond(answer: number | ((r: ReceivedCallback) => number | { status: number; delayMs?: number })): void;
  /** Waits until `count` requests matched `filter` (default: all); returns them. */
  waitForCount(
    count: number,
    filter?: (r: ReceivedCallback) => boolean,
    timeoutMs?: number,
  ): Promise<ReceivedCallback[]>;
  close(): Promise<void>;
}

/** Starts a receiver on a free port of 127.0.0.1. */
export async function startCallbackReceiver(): Promise<CallbackReceiver> {
  const requests: ReceivedCallback[] = [];
  let answer: number | ((r: ReceivedCallback) => number | { status: number; delayMs?: number }) = 200;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        body = undefined;
      }
      const r: ReceivedCallback = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers: req.headers,
        raw,
        body,
        receivedAt: Date.now(),
      };
      requests.push(r);
      const a = typeof answer === 'function' ? answer(r) : answer;
      const { status, delayMs } = typeof a === 'number' ? { status: a, delayMs: 0 } : a;
      const send = () => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end('{}');
      };
      if (delayMs) setTimeout(send, delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    url: (pathname = '/callback') => `${base}${pathname.startsWith('/') ? '' : '/'}${pathname}`,
    requests,
    on: (pathname) => requests.filter((r) => r.path.startsWith(pathname)),
    respond(a) {
      answer = a;
    },
    async waitForCount(count, filter = () => true, timeoutMs = 10_000) {
      return waitFor(
        () => {
          const got = requests.filter(filter);
          return got.length >= count ? got : null;
        },
        { timeoutMs, what: `${count} callback(s)` },
      );
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
