/**
 * A tiny HTTP server on 127.0.0.1 that records the callbacks it receives, for tests.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from './wait-for.js';

/**
 * A callback body as the engine sends it (SPEC section 8): the fields tests read, typed; any other
 * field as `unknown`.
 */
export interface CallbackBody {
  job_id?: number;
  task_id?: number;
  task_name?: string;
  /** Task events: `start`, `success`, `fail` … */
  event?: string;
  /** The job-end callback: `completed` or `failed`. */
  status?: string;
  message?: string;
  content_id?: string;
  files?: string[];
  metadata?: Record<string, unknown>;
  [field: string]: unknown;
}

/** One received request. */
export interface ReceivedCallback {
  method: string;
  /** Path with query string, e.g. `/hook?x=1`. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body as text. */
  raw: string;
  /** The body parsed as JSON; `{}` when it is not a JSON object (read `raw` then). */
  body: CallbackBody;
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
      let body: CallbackBody = {};
      try {
        const parsed: unknown = raw ? JSON.parse(raw) : undefined;
        if (typeof parsed === 'object' && parsed !== null) body = parsed as CallbackBody;
      } catch {
        // not JSON: `raw` has it
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
