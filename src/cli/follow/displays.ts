/**
 * How `--follow` shows a job as it runs: on a terminal, one progress bar per task (`cli-progress`)
 * with the job's log lines printed above them; elsewhere (a pipe, a file, `--plain`), plain lines:
 * each log line, a task's state when it changes and its progress every 25 %; with `--json`, each
 * log entry as one line of JSON.
 */
import cliProgress from 'cli-progress';
import type { CliIO } from '../io.js';
import { percent } from '../table.js';

/** A log entry as `GET /logs/<id>` and the `log` events give it. */
export interface LogEntry {
  id: number;
  job_id?: number;
  severity?: number;
  severity_description: string;
  progname: string;
  message: string;
  created_at: string;
  task_id: number;
  visible?: boolean;
}

/** What a display needs of a task: from `GET /jobs/<id>` or a `task` event. */
export interface TaskView {
  id: number;
  name: string;
  state: string;
  /** 0..1, or null before the task reports any. */
  progress: number | null;
  progress_message?: string | null;
}

/** Formats one entry as one line: time, severity, progname, task, message. */
export function formatLogLine(e: LogEntry): string {
  const task = e.task_id ? ` task ${e.task_id}` : '';
  return `${e.created_at}  ${e.severity_description.padEnd(5)}  ${e.progname}${task}: ${e.message}`;
}

/** A live view of a job. */
export interface FollowDisplay {
  /** A new log entry. */
  log(entry: LogEntry): void;
  /** A task's state or progress (repeats are fine). */
  task(task: TaskView): void;
  /** A message about the connection (reconnecting …). */
  note(line: string): void;
  /** Ends the view (draws the bars a last time); the caller prints the job's end after it. */
  stop(): void;
}

/** States in which a task has nothing left to do: its bar is full when it succeeded or was skipped. */
const DONE = new Set(['succeeded', 'skipped']);

/** The fraction a task's bar shows: full once it succeeded or was skipped. */
function shownFraction(t: TaskView): number {
  if (DONE.has(t.state)) return 1;
  return t.progress === null || !Number.isFinite(t.progress) ? 0 : Math.min(1, Math.max(0, t.progress));
}

/** One bar per task on `terminal`; log lines and notes above the bars. */
export function barDisplay(terminal: NodeJS.WriteStream): FollowDisplay {
  const multi = new cliProgress.MultiBar(
    {
      stream: terminal,
      format: ' {name} |{bar}| {pct} {state}{message}',
      barCompleteChar: '\u2588',
      barIncompleteChar: '\u2591',
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      gracefulExit: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<number, cliProgress.SingleBar>();
  let width = 8;
  let stopped = false;
  const write = (line: string) => {
    if (stopped) return;
    if (bars.size === 0) terminal.write(`${line}\n`);
    else multi.log(`${line}\n`);
  };
  return {
    log: (e) => write(formatLogLine(e)),
    note: write,
    task(t) {
      if (stopped) return;
      width = Math.max(width, t.name.length);
      const payload = {
        name: t.name.padEnd(width),
        pct: (DONE.has(t.state) ? '100%' : percent(t.progress)).padStart(4),
        state: t.state,
        message: t.progress_message && t.state === 'running' ? `  ${t.progress_message}` : '',
      };
      const value = Math.round(shownFraction(t) * 1000);
      let bar = bars.get(t.id);
      if (!bar) {
        bar = multi.create(1000, value, payload);
        bars.set(t.id, bar);
      } else bar.update(value, payload);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      // Draw once more so that log lines still buffered are written, then leave the bars as they are.
      if (bars.size > 0) multi.update();
      multi.stop();
    },
  };
}

/** Plain lines: each log line; a task's state when it changes, and every 25 % while it runs. */
export function lineDisplay(io: CliIO): FollowDisplay {
  const last = new Map<number, { state: string; step: number }>();
  return {
    log: (e) => io.out(formatLogLine(e)),
    note: (line) => io.err(line),
    task(t) {
      const prev = last.get(t.id);
      const step = t.progress === null ? -1 : Math.floor(t.progress * 4);
      const running = t.state === 'running' && t.progress !== null;
      const detail = running
        ? ` ${percent(t.progress)}${t.progress_message ? ` ${t.progress_message}` : ''}`
        : '';
      if (!prev || prev.state !== t.state) io.out(`task ${t.name}: ${t.state}${detail}`);
      else if (running && step > prev.step) io.out(`task ${t.name}: ${t.state}${detail}`);
      last.set(t.id, { state: t.state, step: Math.max(step, prev?.state === t.state ? prev.step : -1) });
    },
    stop: () => undefined,
  };
}

/** `--json`: each log entry as one line of JSON, as the API gives it; nothing else. */
export function jsonDisplay(io: CliIO): FollowDisplay {
  return {
    log: (e) => io.out(JSON.stringify(e)),
    note: (line) => io.err(line),
    task: () => undefined,
    stop: () => undefined,
  };
}
