/**
 * The host's registry of running child processes: which engine process started which external
 * program (an `exec` task's program, FFmpeg, ffprobe), kept as one small JSON file per child in a
 * folder on the local disk.
 *
 * Why: a child outlives an engine process killed with SIGKILL (it is reparented to PID 1 and goes
 * on writing its outputs). When that engine's attempt is then recovered and retried, a second copy
 * would run beside the first. So every engine process, before it recovers or runs anything, calls
 * {@link reapOrphanedChildren}: each record whose engine process is gone has its child's process
 * group killed (SIGKILL), then the record is deleted. Records of live engine processes are left
 * alone, so several engine processes (and several data folders) may share one registry.
 *
 * Process identity: a pid alone can be reused, so each record also holds the start time of the
 * engine process and of the child (field 22 of `/proc/<pid>/stat`, clock ticks since boot) and the
 * boot id (`/proc/sys/kernel/random/boot_id`). A process "is" the recorded one only when both
 * pid and start time match on the same boot. The registry needs Linux's `/proc`; elsewhere
 * tracking and reaping do nothing (reaping says so once at debug level).
 *
 * Folder: `<os.tmpdir()>/task-engine-children-<uid>` (mode 0700, must be owned by this user and
 * not writable by others, else it is not used), or the one given to {@link configureChildRegistry}.
 * Its scope is one host (one pid namespace): an engine process on another machine cannot see or
 * kill these children; they are reaped when an engine process next starts on this host.
 */
import { randomBytes } from 'node:crypto';
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** What a registry file holds (JSON), one file per tracked child. */
export interface ChildRecord {
  /** Always 1 for this layout. */
  version: 1;
  /** Boot id of the host when the record was written. */
  bootId: string;
  /** Pid of the engine process that started the child. */
  enginePid: number;
  /** That engine process's start time (clock ticks since boot, `/proc/<pid>/stat` field 22). */
  engineStartTicks: number;
  /** Pid of the child; with `group` true, also its process group id. */
  childPid: number;
  /** The child's start time (clock ticks since boot). */
  childStartTicks: number;
  /** True when the child leads its own process group (spawned `detached`): the whole group is killed. */
  group: boolean;
  /** ISO time the record was written (for people reading the folder). */
  startedAt: string;
}

/** The few logger methods the registry uses (pino's signature). */
export interface ChildRegistryLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Options of {@link configureChildRegistry}. */
export interface ChildRegistryConfig {
  /** The registry folder; `undefined` restores the default (see the module comment). */
  dir?: string | undefined;
}

/** What `/proc/<pid>/stat` says about a process. */
export interface ProcessStat {
  pid: number;
  /** One-letter state; `Z` = zombie (dead, not yet waited for), `X` = dead. */
  state: string;
  /** Parent process id (0 for the first process of a pid namespace). */
  ppid: number;
  /** Process group id. */
  pgid: number;
  /** Session id. */
  sid: number;
  /** Start time, clock ticks since boot. */
  startTicks: number;
}

/** How long {@link reapOrphanedChildren} waits for killed processes to be gone, in ms. */
export const REAP_WAIT_MS = 2_000;
/** A registry file that cannot be parsed and is older than this (ms) is deleted as debris. */
const DEBRIS_AGE_MS = 60_000;

let configuredDir: string | undefined;
let selfIdentity: { bootId: string; startTicks: number } | null | undefined;
let saidUnsupported = false;

/**
 * Sets where the registry lives (for tests, or a deployment that wants it elsewhere). Affects the
 * whole process; call it before any child is started.
 */
export function configureChildRegistry(config: ChildRegistryConfig): void {
  configuredDir = config.dir;
}

/** The registry folder in use: the configured one, else `<os.tmpdir()>/task-engine-children-<uid>`. */
export function childRegistryDir(): string {
  if (configuredDir !== undefined) return configuredDir;
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return path.join(tmpdir(), `task-engine-children-${uid}`);
}

/**
 * Reads `/proc/<pid>/stat`.
 * @returns the process's state, group and start time, or null when there is no such process (or no `/proc`).
 */
export function readProcessStat(pid: number): ProcessStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Field 2 (the command name) is in parentheses and may itself hold spaces and parentheses:
  // the fields after the last ')' start with field 3.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = rest[0] ?? '';
  const ppid = Number(rest[4 - 3]);
  const pgid = Number(rest[5 - 3]);
  const sid = Number(rest[6 - 3]);
  const startTicks = Number(rest[22 - 3]);
  if (!state || ![ppid, pgid, sid, startTicks].every(Number.isFinite)) return null;
  return { pid, state, ppid, pgid, sid, startTicks };
}

/** True when `stat` is a process that still runs (not a zombie waiting to be reaped). */
function running(stat: ProcessStat | null): stat is ProcessStat {
  return stat !== null && stat.state !== 'Z' && stat.state !== 'X';
}

/**
 * True when the process `pid` runs and started at `startTicks` (so it is the process a record
 * names, not a later one that got the same pid). Always false without `/proc`.
 */
export function isSameProcessRunning(pid: number, startTicks: number): boolean {
  const stat = readProcessStat(pid);
  return running(stat) && stat.startTicks === startTicks;
}

function readBootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
}

/** This process's boot id and start time, or null without `/proc`. Read once. */
function self(): { bootId: string; startTicks: number } | null {
  if (selfIdentity === undefined) {
    const stat = readProcessStat(process.pid);
    const bootId = readBootId();
    selfIdentity = stat && bootId ? { bootId, startTicks: stat.startTicks } : null;
  }
  return selfIdentity;
}

/**
 * Opens (creating it if needed) the registry folder and checks that only this user can write it:
 * a folder in a shared temp directory that someone else made, or a symlink, is refused, since
 * records in it decide which processes get killed.
 * @returns the folder, or null when it cannot be used (the reason is in `problem`).
 */
function openDir(create: boolean): { dir: string | null; problem?: string } {
  const dir = childRegistryDir();
  try {
    if (create) mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    if (!st.isDirectory()) return { dir: null, problem: `${dir} is not a folder` };
    const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
    if (st.uid !== uid) return { dir: null, problem: `${dir} belongs to another user (uid ${st.uid})` };
    if ((st.mode & 0o022) !== 0)
      return {
        dir: null,
        problem: `${dir} is writable by other users (mode ${(st.mode & 0o777).toString(8)})`,
      };
    return { dir };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!create && code === 'ENOENT') return { dir: null };
    return { dir: null, problem: `${dir}: ${(err as Error).message}` };
  }
}

function recordFile(dir: string, enginePid: number, childPid: number): string {
  return path.join(dir, `e${enginePid}-c${childPid}.json`);
}

/**
 * Records that this process started the child `pid` (call it right after a successful spawn).
 * Written synchronously and atomically (temp file + rename), so the record exists before the
 * caller goes on. Never throws.
 * @param options.group true (default) when the child was spawned `detached` and so leads its own
 *   process group, which is then what an orphan reap kills; false to kill only the pid.
 * @returns false when nothing was recorded: no `/proc` (not Linux), the child already exited, or
 *   the folder is unusable (the reason is returned in `problem`).
 */
export function trackChild(
  pid: number,
  options: { group?: boolean } = {},
): { tracked: boolean; problem?: string } {
  const me = self();
  if (!me) return { tracked: false };
  const child = readProcessStat(pid);
  if (!running(child)) return { tracked: false };
  const { dir, problem } = openDir(true);
  if (!dir) return { tracked: false, ...(problem ? { problem } : {}) };
  const record: ChildRecord = {
    version: 1,
    bootId: me.bootId,
    enginePid: process.pid,
    engineStartTicks: me.startTicks,
    childPid: pid,
    childStartTicks: child.startTicks,
    group: options.group ?? true,
    startedAt: new Date().toISOString(),
  };
  const file = recordFile(dir, process.pid, pid);
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(record), { mode: 0o600 });
    renameSync(tmp, file);
    return { tracked: true };
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // nothing was written
    }
    return { tracked: false, problem: `${file}: ${(err as Error).message}` };
  }
}

/**
 * Forgets the child `pid` of this process (call it once the child and what it left in its group
 * are gone). Never throws; a missing record is fine.
 */
export function untrackChild(pid: number): void {
  try {
    unlinkSync(recordFile(childRegistryDir(), process.pid, pid));
  } catch {
    // not tracked (no /proc, or the folder was unusable), or already removed
  }
}

function parseRecord(text: string): ChildRecord | null {
  try {
    const r = JSON.parse(text) as Partial<ChildRecord>;
    const ints = [r.enginePid, r.engineStartTicks, r.childPid, r.childStartTicks];
    if (r.version !== 1 || typeof r.bootId !== 'string' || typeof r.group !== 'boolean') return null;
    if (!ints.every((n) => Number.isSafeInteger(n) && (n as number) >= 0)) return null;
    // pid 0 and 1 never name a child; a negative or zero group would signal far too much.
    if ((r.childPid as number) <= 1) return null;
    return r as ChildRecord;
  } catch {
    return null;
  }
}

/** The process groups and sessions of this process and of its ancestors, up to pid 1. */
function ownGroups(): Set<number> {
  const ids = new Set<number>();
  let pid = process.pid;
  for (let depth = 0; pid > 1 && depth < 256; depth++) {
    const stat = readProcessStat(pid);
    if (!stat) break;
    ids.add(stat.pgid).add(stat.sid);
    pid = stat.ppid;
  }
  return ids;
}

/** Every process on the host (from `/proc`), read once per reap that needs it. */
function allProcesses(): ProcessStat[] {
  const out: ProcessStat[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProcessStat(Number(name));
    if (running(stat)) out.push(stat);
  }
  return out;
}

/**
 * The live processes that belong to the recorded child: with `group`, every member of its process
 * group that started no earlier than the child (the leader may have exited and left members
 * behind); else the child itself. Empty when the child's pid now names a different process.
 */
function survivors(record: ChildRecord, processes: () => ProcessStat[]): ProcessStat[] {
  const leader = readProcessStat(record.childPid);
  // The pid names another process now (running, or a zombie not yet waited for): reused.
  if (leader && leader.startTicks !== record.childStartTicks) return [];
  // Never the group or session of this process or of one of its ancestors (the shell, the service
  // manager, a CI runner that started this engine): whatever the record says, that is not a child.
  if (record.group && ownGroups().has(record.childPid)) return [];
  if (!record.group) return running(leader) ? [leader] : [];
  return processes().filter((p) => p.pgid === record.childPid && p.startTicks >= record.childStartTicks);
}

function kill(pid: number): boolean {
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

/**
 * Kills the children left behind by engine processes of this host that are gone (killed,
 * crashed), so that a recovered attempt never runs beside the program of the attempt it replaces.
 * Call it before recovering attempts. For each registry record whose engine process no longer
 * runs (pid absent, or reused by a process with another start time, or a record from an earlier
 * boot): if the child still runs (same pid and start time) its process group gets SIGKILL — or,
 * when the child itself has exited, the members it left in its group — and the call waits up to
 * {@link REAP_WAIT_MS} for them to be gone; then the record is deleted. Records of live engine
 * processes, this one included, are not touched while anything of their child runs (a record whose
 * child and group are all gone is deleted as debris).
 *
 * Without `/proc` (not Linux) it does nothing and says so once at debug level. Never throws:
 * problems are logged and the rest of the folder is still handled.
 * @returns how many children (process groups) were killed.
 */
export async function reapOrphanedChildren(options: { logger?: ChildRegistryLogger } = {}): Promise<number> {
  const { logger } = options;
  try {
    const me = self();
    if (!me) {
      if (!saidUnsupported)
        logger?.debug({}, 'no /proc on this system: orphaned child processes are not reaped');
      saidUnsupported = true;
      return 0;
    }
    const { dir, problem } = openDir(false);
    if (!dir) {
      if (problem)
        logger?.warn(
          { problem },
          'the child process registry cannot be used; orphaned children are not reaped',
        );
      return 0;
    }
    let processCache: ProcessStat[] | null = null;
    const processes = (): ProcessStat[] => (processCache ??= allProcesses());
    let killed = 0;
    for (const name of readdirSync(dir)) {
      const file = path.join(dir, name);
      try {
        if (name.endsWith('.tmp')) {
          if (Date.now() - lstatSync(file).mtimeMs > DEBRIS_AGE_MS) unlinkSync(file);
          continue;
        }
        if (!name.endsWith('.json')) continue;
        const record = parseRecord(readFileSync(file, 'utf8'));
        if (!record) {
          if (Date.now() - lstatSync(file).mtimeMs > DEBRIS_AGE_MS) unlinkSync(file);
          continue;
        }
        if (record.bootId !== me.bootId) {
          unlinkSync(file); // the machine rebooted since: nothing of it runs
          continue;
        }
        if (isSameProcessRunning(record.enginePid, record.engineStartTicks)) {
          // A live engine's record is its own business, unless nothing of its child is left (the
          // engine aborted it and ended before its kill timer ran): then the record is debris.
          if (
            !isSameProcessRunning(record.childPid, record.childStartTicks) &&
            survivors(record, processes).length === 0
          )
            unlinkSync(file);
          continue;
        }
        const left = survivors(record, processes);
        if (left.length > 0) {
          const signalled = record.group ? kill(-record.childPid) : kill(record.childPid);
          if (signalled) {
            killed++;
            processCache = null;
            logger?.warn(
              { childPid: record.childPid, enginePid: record.enginePid, processes: left.map((p) => p.pid) },
              'killed a child process left running by an engine process that is gone',
            );
            const deadline = Date.now() + REAP_WAIT_MS;
            while (left.some((p) => isSameProcessRunning(p.pid, p.startTicks)) && Date.now() < deadline)
              await new Promise((r) => setTimeout(r, 10));
          }
        }
        unlinkSync(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // another engine reaped it
        logger?.error({ err, file }, 'could not reap a child process record');
      }
    }
    return killed;
  } catch (err) {
    logger?.error({ err }, 'reaping orphaned child processes failed');
    return 0;
  }
}
