/**
 * `--follow` (of `submit`, `logs`, `retry`, `rerun`): a job shown live until it ends, from the
 * engine's event stream (`GET /events?job_id=<id>&kinds=job,task,log`, `&show_all=1` for DEBUG
 * lines). Once the stream is open the job and its log are read once (`GET /jobs/<id>`,
 * `GET /logs/<id>`), so nothing that happened before is missed; after that every `task` event
 * moves a bar, every `log` event prints a line, and the `job` event of its end reads the log a
 * last time and ends. A `reset` event (the server could
 * not resume after a reconnection) reads the job again. Log entries are printed once each, by id.
 * An engine without `/events` (404) is followed by reading the job and its log every second.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { JobEventData, TaskEventData } from '../../engine/events/types.js';
import { eventStream, EventStreamRefused } from '../event-stream.js';
import { apiError, authHeaders, callApi, type ApiConnection } from '../http-client.js';
import { CliExit, type CliIO } from '../io.js';
import {
  barDisplay,
  jsonDisplay,
  lineDisplay,
  type FollowDisplay,
  type LogEntry,
  type TaskView,
} from './displays.js';

/** How to follow. */
export interface FollowOptions {
  /** Include DEBUG entries (`show_all=1`). */
  showAll: boolean;
  /** Print each log entry as a line of JSON instead of text, and no progress. */
  json?: boolean;
  /** Plain lines even on a terminal. */
  plain?: boolean;
}

/** How a followed job ended; `interrupted` when the user stopped following first (Ctrl-C). */
export type FollowOutcome =
  { queue_state: string; failed: boolean; interrupted: false } | { interrupted: true };

/** Interval between reads when the engine has no event stream, in milliseconds. */
export const FOLLOW_POLL_MS = 1000;

const FINAL = new Set(['completed', 'broken']);

interface JobSnapshot {
  queue_state: string;
  failed: boolean;
  tasks: TaskView[];
}

/** The last line of a followed job: `job 42 completed (succeeded)`, `job 42 broken`. */
export function jobEndLine(jobId: number, end: { queue_state: string; failed: boolean }): string {
  const how = end.queue_state === 'completed' ? (end.failed ? ' (failed)' : ' (succeeded)') : '';
  return `job ${jobId} ${end.queue_state}${how}`;
}

/**
 * The exit status for a followed job: 0 when it completed without failure, 1 when it failed or
 * was broken, 130 when interrupted.
 */
export function followExitCode(outcome: FollowOutcome): number {
  if (outcome.interrupted) return 130;
  return outcome.queue_state === 'completed' && !outcome.failed ? 0 : 1;
}

/** Picks the display: JSON lines, bars on a terminal, else plain lines. */
function chooseDisplay(io: CliIO, opts: FollowOptions): FollowDisplay {
  if (opts.json) return jsonDisplay(io);
  if (io.terminal && !opts.plain) return barDisplay(io.terminal);
  return lineDisplay(io);
}

/**
 * Shows job `jobId` live until it ends or SIGINT/SIGTERM, then prints its end line (not with
 * `json`).
 * @returns how it ended.
 * @throws {CliError} with the API's message when the job cannot be read (404 …) or the stream is
 * refused.
 */
export async function followJob(
  io: CliIO,
  conn: ApiConnection,
  jobId: number,
  opts: FollowOptions,
): Promise<FollowOutcome> {
  const display = chooseDisplay(io, opts);
  const seen = new Set<number>();
  const abort = new AbortController();
  const off = io.onSignal(['SIGINT', 'SIGTERM'], () => abort.abort());
  const printLog = (e: LogEntry) => {
    if (seen.has(e.id) || (e.visible === false && !opts.showAll)) return;
    seen.add(e.id);
    display.log(e);
  };
  /** Reads the job and its log, shows what is new; returns the job. */
  const readJob = async (): Promise<JobSnapshot> => {
    const job = await callApi<JobSnapshot>(conn, 'GET', `/jobs/${jobId}`);
    const entries = await callApi<LogEntry[]>(
      conn,
      'GET',
      `/logs/${jobId}${opts.showAll ? '?show_all=1' : ''}`,
    );
    for (const t of job.tasks) display.task(t);
    for (const e of entries) printLog(e);
    return job;
  };
  let end: { queue_state: string; failed: boolean } | null;
  try {
    try {
      end = await followEvents(io, conn, jobId, display, abort.signal, readJob, printLog, opts.showAll);
    } catch (err) {
      if (!(err instanceof EventStreamRefused)) throw err;
      if (err.status !== 404) throw apiError('GET', '/events', err.status, err.body || err.message);
      end = await followByPolling(abort.signal, readJob);
    }
  } finally {
    off();
    display.stop();
  }
  if (!end) return { interrupted: true };
  if (!opts.json) io.out(jobEndLine(jobId, end));
  return { ...end, interrupted: false };
}

/** Follows through the event stream; null when aborted first. */
async function followEvents(
  io: CliIO,
  conn: ApiConnection,
  jobId: number,
  display: FollowDisplay,
  signal: AbortSignal,
  readJob: () => Promise<JobSnapshot>,
  printLog: (e: LogEntry) => void,
  showAll: boolean,
): Promise<{ queue_state: string; failed: boolean } | null> {
  const url = `${conn.url}/events?job_id=${jobId}&kinds=job,task,log${showAll ? '&show_all=1' : ''}`;
  let opened = false;
  const ended = (job: JobSnapshot) => (FINAL.has(job.queue_state) ? job : null);
  for await (const item of eventStream({ url, headers: authHeaders(conn), signal })) {
    if (item.type === 'retrying') {
      display.note(`event stream: ${item.error}; reconnecting in ${Math.ceil(item.delayMs / 1000)} s`);
      continue;
    }
    if (item.type === 'open') {
      if (opened) continue;
      opened = true;
      const done = ended(await readJob());
      if (done) return done;
      continue;
    }
    if (item.event === 'reset') {
      const done = ended(await readJob());
      if (done) return done;
      continue;
    }
    let data: unknown;
    try {
      data = JSON.parse(item.data);
    } catch {
      io.err(`event stream: ignored an event whose data is not JSON (${item.data.slice(0, 80)})`);
      continue;
    }
    if (item.event === 'task') {
      const t = data as TaskEventData;
      if (t.job_id !== jobId) continue;
      display.task({
        id: t.task_id,
        name: t.name,
        state: t.state,
        progress: t.progress,
        progress_message: t.progress_message,
      });
    } else if (item.event === 'log') {
      const e = data as LogEntry;
      if (e.job_id === undefined || e.job_id === jobId) printLog(e);
    } else if (item.event === 'job') {
      const j = data as JobEventData;
      if (j.job_id !== jobId || !FINAL.has(j.queue_state)) continue;
      // Its end is committed: one more read prints every log line written up to it (and shows
      // whether it was already retried since, in which case it goes on).
      const done = ended(await readJob());
      if (done) return done;
    }
  }
  return null;
}

/** Follows by reading the job every {@link FOLLOW_POLL_MS}; null when aborted first. */
async function followByPolling(
  signal: AbortSignal,
  readJob: () => Promise<JobSnapshot>,
): Promise<{ queue_state: string; failed: boolean } | null> {
  while (!signal.aborted) {
    const job = await readJob();
    if (FINAL.has(job.queue_state)) return job;
    try {
      await delay(FOLLOW_POLL_MS, undefined, { signal });
    } catch {
      return null;
    }
  }
  return null;
}

/** Follows the job and ends the command with {@link followExitCode} when that is not 0. */
export async function followJobToExit(
  io: CliIO,
  conn: ApiConnection,
  jobId: number,
  opts: FollowOptions,
): Promise<void> {
  const code = followExitCode(await followJob(io, conn, jobId, opts));
  if (code !== 0) throw new CliExit(code);
}
