/**
 * The attempts of a job on a time axis, one row per task (Gantt-like): each attempt a bar from its
 * start to its end (or to now while it runs), coloured by how it ended, retries side by side.
 * Without `GET /jobs/<id>/attempts` the bars are the tasks' own start and end.
 */
import type { JSX } from 'preact';
import { formatDuration, formatTime } from '../lib/format';
import { useTick } from '../lib/live';
import type { Attempt, TaskRecord } from '../lib/types';

interface Bar {
  task: string;
  label: string;
  state: string;
  start: number;
  end: number;
  running: boolean;
  error: string | null;
}

function barsOf(tasks: TaskRecord[], attempts: Attempt[] | null, now: number): Bar[] {
  if (attempts)
    return attempts
      .filter((a) => a.started_at)
      .map((a) => ({
        task: a.task,
        label: `attempt ${a.number}${a.worker_id ? ` on ${a.worker_id}` : ''}`,
        state: a.state,
        start: new Date(a.started_at!).getTime(),
        end: a.finished_at ? new Date(a.finished_at).getTime() : now,
        running: !a.finished_at,
        error: a.error,
      }));
  return tasks
    .filter((t) => t.started_at)
    .map((t) => ({
      task: t.name,
      label: `${t.attempts} attempt${t.attempts === 1 ? '' : 's'}`,
      state: t.state,
      start: new Date(t.started_at!).getTime(),
      end: t.finished_at ? new Date(t.finished_at).getTime() : now,
      running: !t.finished_at,
      error: t.error,
    }));
}

/** Round steps for the axis, in ms. */
const STEPS = [
  100, 250, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
  1_800_000, 3_600_000, 7_200_000, 21_600_000, 43_200_000, 86_400_000,
];

/** The timeline (see the module comment). */
export function Timeline({
  tasks,
  attempts,
}: {
  tasks: TaskRecord[];
  attempts: Attempt[] | null;
}): JSX.Element {
  const now = Date.now();
  const bars = barsOf(tasks, attempts, now);
  useTick(bars.some((b) => b.running));
  if (bars.length === 0) return <p class="muted">No task has started yet.</p>;
  const t0 = Math.min(...bars.map((b) => b.start));
  const t1 = Math.max(...bars.map((b) => b.end), t0 + 1);
  const span = t1 - t0;
  const step = STEPS.find((s) => span / s <= 6) ?? STEPS[STEPS.length - 1]!;
  const ticks: number[] = [];
  for (let t = 0; t <= span; t += step) ticks.push(t);
  const pct = (t: number): string => `${((t - t0) / span) * 100}%`;
  const rows = tasks.filter((t) => bars.some((b) => b.task === t.name));
  return (
    <div class="timeline" data-testid="timeline">
      <div class="tl-row tl-axis">
        <span class="tl-name muted small">{formatTime(new Date(t0).toISOString())}</span>
        <span class="tl-track">
          {ticks.map((t) => (
            <span key={t} class="tl-tick" style={{ left: `${(t / span) * 100}%` }}>
              +{formatDuration(t)}
            </span>
          ))}
        </span>
      </div>
      {rows.map((task) => (
        <div class="tl-row" key={task.name}>
          <span class="tl-name" title={task.name}>
            {task.name}
          </span>
          <span class="tl-track">
            {bars
              .filter((b) => b.task === task.name)
              .map((b, i) => (
                <span
                  key={i}
                  class={`tl-bar a-${b.state} ${b.running ? 'running' : ''}`}
                  style={{ left: pct(b.start), width: `max(3px, ${((b.end - b.start) / span) * 100}%)` }}
                  title={`${task.name}, ${b.label}: ${b.state}, ${formatDuration(b.end - b.start)}${b.error ? `\n${b.error}` : ''}`}
                />
              ))}
          </span>
        </div>
      ))}
      {attempts ? null : (
        <p class="muted small">
          Attempts are not reported by this engine (GET /jobs/&lt;id&gt;/attempts); each bar is a task's start
          and end.
        </p>
      )}
    </div>
  );
}
