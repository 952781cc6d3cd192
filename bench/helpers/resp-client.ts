/**
 * A small Redis client (RESP2 over one TCP connection, commands pipelined, replies matched in
 * order) with the shape of Bun's `RedisClient`, so bullmq can drive it through its own adapter
 * (`createBunRedisClient`) when the `ioredis` package, bullmq's usual driver, is not installed.
 * Used only by the peers bench; replies: bulk strings as UTF-8 strings, integers as numbers,
 * nil as null, arrays as arrays, error replies as rejections (inside an array: `Error` values).
 */
import { connect, type Socket } from 'node:net';

type Reply = string | number | null | Error | Reply[];
type Arg = string | number | Buffer;

const INCOMPLETE = Symbol('incomplete');

/** Parses one reply of `buf` at `pos`: the value and the position after it, or INCOMPLETE. */
function parse(buf: Buffer, pos: number): [Reply, number] | typeof INCOMPLETE {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return INCOMPLETE;
  const type = buf[pos] ?? 0;
  const line = buf.toString('utf8', pos + 1, eol);
  switch (type) {
    case 0x2b: // +
      return [line, eol + 2];
    case 0x2d: // -
      return [new Error(line), eol + 2];
    case 0x3a: // :
      return [Number(line), eol + 2];
    case 0x24: {
      // $
      const len = Number(line);
      if (len < 0) return [null, eol + 2];
      if (buf.length < eol + 2 + len + 2) return INCOMPLETE;
      return [buf.toString('utf8', eol + 2, eol + 2 + len), eol + 2 + len + 2];
    }
    case 0x2a: {
      // *
      const n = Number(line);
      if (n < 0) return [null, eol + 2];
      const out: Reply[] = [];
      let p = eol + 2;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, p);
        if (r === INCOMPLETE) return INCOMPLETE;
        out.push(r[0]);
        p = r[1];
      }
      return [out, p];
    }
    default:
      throw new Error(`unexpected Redis reply type ${String.fromCharCode(type ?? 0)}`);
  }
}

function encode(command: string, args: Arg[]): Buffer {
  const parts: Buffer[] = [
    Buffer.from(`*${args.length + 1}\r\n$${Buffer.byteLength(command)}\r\n${command}\r\n`),
  ];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** A Redis connection with the members bullmq's Bun adapter uses. */
export class RespClient {
  connected = false;
  onconnect: (() => void) | null = null;
  onclose: ((err?: Error) => void) | null = null;
  onerror: ((err: Error) => void) | null = null;
  private socket: Socket | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private readonly pending: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];

  constructor(readonly url: string) {}

  /** Opens the connection (resolves once it is up). */
  connect(): Promise<void> {
    const u = new URL(this.url);
    return new Promise((resolve, reject) => {
      const s = connect({ host: u.hostname, port: Number(u.port || 6379) }, () => {
        s.setNoDelay(true);
        this.connected = true;
        this.onconnect?.();
        resolve();
      });
      this.socket = s;
      s.on('data', (d: Buffer) => this.receive(d));
      s.on('error', (err) => {
        if (!this.connected) reject(err);
        this.onerror?.(err);
      });
      s.on('close', () => {
        const was = this.connected;
        this.connected = false;
        const err = new Error('Connection closed');
        for (const p of this.pending.splice(0)) p.reject(err);
        if (was) this.onclose?.();
      });
    });
  }

  private receive(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    let pos = 0;
    for (;;) {
      if (pos >= this.buf.length) break;
      const r = parse(this.buf, pos);
      if (r === INCOMPLETE) break;
      pos = r[1];
      const p = this.pending.shift();
      if (!p) continue;
      if (r[0] instanceof Error) p.reject(r[0]);
      else p.resolve(r[0]);
    }
    this.buf = pos >= this.buf.length ? Buffer.alloc(0) : this.buf.subarray(pos);
  }

  /** Sends one command; resolves with its reply, rejects on an error reply or a closed connection. */
  send<T = Reply>(command: string, args: Arg[]): Promise<T> {
    if (!this.socket || !this.connected) return Promise.reject(new Error('Connection closed'));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ resolve: resolve as (r: Reply) => void, reject });
      this.socket!.write(encode(command, args));
    });
  }

  /** Closes the connection. */
  close(): void {
    this.socket?.end();
  }

  /** A new, unconnected client to the same server. */
  duplicate(): Promise<this> {
    return Promise.resolve(new RespClient(this.url) as this);
  }

  get(key: string): Promise<string | null> {
    return this.send<string | null>('GET', [key]);
  }

  smembers(key: string): Promise<string[]> {
    return this.send<string[]>('SMEMBERS', [key]);
  }

  incr(key: string): Promise<number> {
    return this.send<number>('INCR', [key]);
  }
}
