/**
 * The embedded data folder's lock: one process at a time opens an embedded (PGlite) database.
 * PGlite has no server and no locking of its own; two processes writing one folder would
 * corrupt it. The holder writes `<dataDir>/task-engine.lock` (JSON: pid, host, start time and,
 * once listening, the API URL); a second process reads it and refuses with a clear message.
 * A lock left by a process that no longer runs (after a crash, even one not yet reaped by its
 * parent) is taken over.
 */
import { hostname } from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

/** File name of the lock inside the data folder. */
export const LOCK_FILE_NAME = 'task-engine.lock';

/** What the lock file holds. */
export interface DataDirLockInfo {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  started_at: string;
  /** What holds it, e.g. `serve` or `clients add`. */
  purpose: string;
  /** The API URL of the holder, once it listens. */
  url?: string;
  /**
   * The holder's start time in clock ticks since boot (Linux `/proc/<pid>/stat` field 22), so a
   * later process that happens to get the same pid is not taken for the holder. Absent where
   * `/proc` is not readable.
   */
  proc_start?: number;
}

/** Thrown when another live process holds the data folder. */
export class DataDirInUseError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: DataDirLockInfo,
  ) {
    super(
      `the data folder ${dataDir} is in use by process ${holder.pid} on ${holder.host} (${holder.purpose}, since ${holder.started_at})` +
        (holder.url ? `; it serves the API at ${holder.url}` : '') +
        '. Stop that process first, or talk to it over the API' +
        (holder.url ? ` (e.g. task-engine submit … --url ${holder.url})` : '') +
        ` — a second process must not open the embedded database. (If no such process runs, delete ${path.join(dataDir, LOCK_FILE_NAME)}.)`,
    );
    this.name = 'DataDirInUseError';
  }
}

/** A held lock. */
export interface DataDirLock {
  readonly file: string;
  /** Records the API URL in the lock, so that other commands can point at it. */
  setUrl(url: string): Promise<void>;
  /** Removes the lock file (only if it is still ours). Idempotent. */
  release(): Promise<void>;
}

/**
 * What Linux says of a process: its state letter and start time (`/proc/<pid>/stat` fields 3
 * and 22), or null where `/proc` cannot be read (another system, or the process is gone).
 */
function procStat(pid: number): { state: string; start: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] ?? '', start: Number(rest[19]) };
  } catch {
    return null;
  }
}

/**
 * Whether the process that wrote `holder` still runs on this host. `kill(pid, 0)` alone is not
 * enough: it succeeds for a zombie (killed, not yet reaped by its parent: what a supervisor that
 * restarts at once after `kill -9` sees), for a process that reused the pid since, and — in a new
 * container whose engine is PID 1 again — for ourselves.
 */
function holderAlive(holder: DataDirLockInfo): boolean {
  if (holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(holder.pid);
  if (stat === null) return true;
  if (stat.state === 'Z' || stat.state === 'X') return false;
  if (holder.proc_start !== undefined && Number.isFinite(stat.start) && stat.start !== holder.proc_start)
    return false;
  return true;
}

/**
 * {@link holderAlive}, asked again for a short while before saying yes: a process that was sent
 * SIGKILL a moment ago may still be tearing down (its memory being freed) before it turns zombie.
 */
async function holderStillAlive(holder: DataDirLockInfo): Promise<boolean> {
  for (let i = 0; i < HOLDER_CHECKS; i++) {
    if (!holderAlive(holder)) return false;
    if (i < HOLDER_CHECKS - 1) await delay(HOLDER_CHECK_INTERVAL_MS);
  }
  return true;
}

/** A live-looking holder is checked this many times, this far apart, before a refusal (1 s). */
const HOLDER_CHECKS = 6;
const HOLDER_CHECK_INTERVAL_MS = 200;

async function readLock(file: string): Promise<DataDirLockInfo | null> {
  try {
    const info = JSON.parse(await readFile(file, 'utf8')) as DataDirLockInfo;
    return typeof info.pid === 'number' ? info : null;
  } catch {
    return null;
  }
}

/**
 * Reads who holds the data folder, if a live process does.
 * @returns the holder, or null when the folder is free (no lock, or a stale one).
 */
export async function readDataDirHolder(dataDir: string): Promise<DataDirLockInfo | null> {
  const info = await readLock(path.join(dataDir, LOCK_FILE_NAME));
  if (!info) return null;
  if (info.host === hostname() && !holderAlive(info)) return null;
  return info;
}

/**
 * Takes the data folder's lock (creating the folder).
 * @param purpose - what the process is doing, shown to a process that is refused.
 * @throws {@link DataDirInUseError} when a live process holds it. A lock of a process on another
 * host is treated as live (the folder may be shared; a person must decide).
 */
export async function acquireDataDirLock(dataDir: string, purpose: string): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true });
  const file = path.join(dataDir, LOCK_FILE_NAME);
  const info: DataDirLockInfo = {
    pid: process.pid,
    host: hostname(),
    started_at: new Date().toISOString(),
    purpose,
  };
  const own = procStat(process.pid);
  if (own && Number.isFinite(own.start)) info.proc_start = own.start;
  for (let tries = 0; ; tries++) {
    try {
      await writeFile(file, JSON.stringify(info), { flag: 'wx', mode: 0o644 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || tries >= 2) throw err;
      const holder = await readLock(file);
      if (holder && (holder.host !== info.host || (await holderStillAlive(holder))))
        throw new DataDirInUseError(dataDir, holder);
      // Stale (its process is gone, or a zombie) or unreadable (a crash mid-write): take it over.
      await unlink(file).catch(() => undefined);
    }
  }
  let released = false;
  return {
    file,
    async setUrl(url) {
      if (released) return;
      info.url = url;
      await writeFile(file, JSON.stringify(info));
    },
    async release() {
      if (released) return;
      released = true;
      const current = await readLock(file);
      if (current && current.pid === info.pid && current.host === info.host)
        await unlink(file).catch(() => undefined);
    },
  };
}
