/** The demo's callback receiver: a tiny HTTP server on 127.0.0.1 that keeps every body it gets. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A running receiver: its URL and the bodies received so far, in arrival order. */
export interface DemoReceiver {
  url: string;
  received: unknown[];
  close(): Promise<void>;
}

/** Starts a callback receiver on a free port of 127.0.0.1. */
export async function startReceiver(): Promise<DemoReceiver> {
  const received: unknown[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        received.push({ unparsed: Buffer.concat(chunks).toString('utf8') });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/callbacks`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
