/** Live task progress of the demo: one bar per task (cli-progress) on a terminal, plain lines elsewhere. */
import cliProgress from 'cli-progress';
import type { CliIO } from '../../io.js';
import type { TaskReply } from './types.js';

/** Shows each task's state and percentage as they change. */
export interface ProgressView {
  update(task: TaskReply, percent: number | null): void;
  stop(): void;
}

function stateLabel(state: string): string {
  return state === 'succeeded' ? 'done' : state;
}

/** Bars on a terminal. */
export function barView(): ProgressView {
  const multi = new cliProgress.MultiBar(
    {
      format: ' {task} |{bar}| {percentage}% {state} {message}',
      barCompleteChar: '\u2588',
      barIncompleteChar: '\u2591',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      autopadding: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<number, cliProgress.SingleBar>();
  return {
    update(task, percent) {
      let bar = bars.get(task.id);
      const message = task.state === 'running' ? (task.progress_message ?? '').slice(0, 60) : '';
      const payload = { task: task.name.padEnd(16), state: stateLabel(task.state), message };
      if (!bar) {
        bar = multi.create(100, 0, payload);
        bars.set(task.id, bar);
      }
      const value = task.state === 'succeeded' || task.state === 'skipped' ? 100 : (percent ?? 0);
      bar.update(Math.round(value), payload);
    },
    stop: () => multi.stop(),
  };
}

/** Plain lines: a task's state when it changes, and every 25 % while it runs. */
export function lineView(io: CliIO): ProgressView {
  const last = new Map<number, { state: string; step: number }>();
  return {
    update(task, percent) {
      const prev = last.get(task.id);
      const step = percent === null ? -1 : Math.floor(percent / 25);
      if (!prev || prev.state !== task.state) {
        io.out(
          `  ${task.name.padEnd(16)} ${stateLabel(task.state)}${percent !== null && task.state === 'running' ? ` ${Math.round(percent)}%` : ''}`,
        );
      } else if (task.state === 'running' && step > prev.step && percent !== null) {
        io.out(`  ${task.name.padEnd(16)} ${Math.round(percent)}%`);
      }
      last.set(task.id, { state: task.state, step });
    },
    stop: () => undefined,
  };
}
