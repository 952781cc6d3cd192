/**
 * A TCP relay in front of a server (PostgreSQL, in the tests and the chaos run), which a test can
 * take down and bring back to play an outage without touching the real server.
 */
import net from 'node:net';

/** A running relay; see {@link startTcpRelay}. */
export interface TcpRelay {
  /** The relay's port on 127.0.0.1; the same across `down()`/`up()`. */
  readonly port: number;
  /**
   * Drops every relayed connection and stops listening, so new connections are refused as from a
   * stopped server. Idempotent. Call it at the end of a test: a listening relay keeps Node running.
   */
  down(): Promise<void>;
  /** Listens again on the same port. Idempotent. */
  up(): Promise<void>;
}

/**
 * Starts a relay on 127.0.0.1 (a free port) to `target` and resolves once it listens.
 *
 * @param target - where relayed connections go: `{ host, port }` (host defaults to 127.0.0.1).
 * @throws when 127.0.0.1 has no free port or listening fails.
 */
export async function startTcpRelay(target: { host?: string; port: number }): Promise<TcpRelay> {
  const host = target.host ?? '127.0.0.1';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, host);
    sockets.add(client).add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  const listen = (port: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(0);
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    async down() {
      if (!server.listening) return;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      sockets.clear();
      await closed;
    },
    async up() {
      if (server.listening) return;
      await listen(port);
    },
  };
}

/**
 * The same database URL, pointing at `relay` instead of its own host and port.
 *
 * @param databaseUrl - a `postgres://` URL.
 */
export function throughRelay(databaseUrl: string, relay: TcpRelay): string {
  const u = new URL(databaseUrl);
  u.hostname = '127.0.0.1';
  u.port = String(relay.port);
  return u.toString();
}
