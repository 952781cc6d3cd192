/**
 * The LISTEN connection of a `pg` executor: one dedicated client for every channel, opened on the
 * first subscription and re-established (with every channel subscribed again) when it drops.
 */
import pg from 'pg';
import { ENGINE_PG_TYPES } from './pg-types.js';

/** Pause before reconnecting a dropped LISTEN connection, in milliseconds (real time: it waits on I/O). */
const RECONNECT_DELAY_MS = 500;

/** What {@link createPgListener} needs. */
export interface PgListenerOptions {
  connectionString: string;
  /** Called with errors of the connection (they must not crash the process). */
  onError: (err: Error) => void;
}

/** The LISTEN side of a `pg` executor. */
export interface PgListener {
  /** Subscribes `onNotify` to `channel`; resolves once LISTEN ran. Returns the unsubscribe function. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  /** Ends the connection and stops reconnecting. Idempotent. */
  close(): Promise<void>;
}

/** Creates the LISTEN connection manager of one executor (no connection until the first listen). */
export function createPgListener(options: PgListenerOptions): PgListener {
  const { connectionString, onError } = options;
  const listeners = new Map<string, Set<(payload: string) => void>>();
  let client: pg.Client | null = null;
  let connecting: Promise<pg.Client> | null = null;
  let closed = false;

  const open = async (): Promise<pg.Client> => {
    const c = new pg.Client({
      connectionString,
      application_name: 'task-engine-listen',
      types: ENGINE_PG_TYPES,
    });
    c.on('error', (err) => {
      onError(err);
    });
    c.on('notification', (msg) => {
      const set = listeners.get(msg.channel);
      if (!set) return;
      for (const fn of set) fn(msg.payload ?? '');
    });
    c.on('end', () => {
      if (client === c) client = null;
      if (!closed && listeners.size > 0) scheduleReconnect();
    });
    await c.connect();
    client = c;
    return c;
  };

  const connect = async (): Promise<pg.Client> => {
    if (client) return client;
    if (connecting) return connecting;
    connecting = open();
    try {
      return await connecting;
    } finally {
      connecting = null;
    }
  };

  // Reconnect after a short pause and re-subscribe to every channel. The timer is the driver's
  // reconnect wait, not engine time, so it stays a real timer (unref'd: it never holds the process).
  const scheduleReconnect = (): void => {
    setTimeout(() => {
      if (closed) return;
      connect()
        .then(async (c) => {
          for (const ch of listeners.keys()) await c.query(`LISTEN ${quoteIdent(ch)}`);
        })
        .catch(onError);
    }, RECONNECT_DELAY_MS).unref();
  };

  return {
    async listen(channel, onNotify) {
      let set = listeners.get(channel);
      const first = !set;
      if (!set) {
        set = new Set();
        listeners.set(channel, set);
      }
      set.add(onNotify);
      if (first) {
        const c = await connect();
        await c.query(`LISTEN ${quoteIdent(channel)}`);
      }
      return async () => {
        const s = listeners.get(channel);
        if (!s) return;
        s.delete(onNotify);
        if (s.size === 0) {
          listeners.delete(channel);
          if (client) await client.query(`UNLISTEN ${quoteIdent(channel)}`).catch(() => undefined);
        }
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      // A connection still being opened is ended once it is up.
      const c = client ?? (await connecting?.catch(() => null)) ?? null;
      client = null;
      if (c) await c.end().catch(() => undefined);
    },
  };
}

/**
 * Quotes a channel name as an SQL identifier (channels are engine constants, never request values).
 * LISTEN and UNLISTEN take an identifier, not a bind parameter, so they are the one place text is
 * built here, and they are not `defineQuery` statements.
 */
function quoteIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`invalid channel name: ${name}`);
  return `"${name}"`;
}
