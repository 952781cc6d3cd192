/**
 * FFmpeg's machine-readable progress (`-progress pipe:1 -nostats`): blocks of `key=value` lines,
 * written about twice a second, each ending with `progress=continue` (or `progress=end` for the
 * last). For example (FFmpeg 5.1):
 *
 * ```
 * frame=188
 * fps=238.37
 * bitrate= 555.4kbits/s
 * out_time_us=7552000
 * out_time=00:00:07.552000
 * speed=14.7x
 * progress=continue
 * ```
 *
 * {@link parseProgressBlock} reads one block, {@link FfmpegProgressParser} reads a stream of
 * lines, {@link describeFfmpegProgress} turns a report into a task's progress (fraction of the
 * expected duration, a readable message, and `fps`, `speed`, `eta_seconds` as detail), and
 * {@link reportFfmpegProgress} sends it to a handler's `ctx.progress`.
 */
import type { HandlerContext } from '../workflows/types.js';

/** One progress report parsed from FFmpeg's `-progress` output. */
export interface FfmpegProgress {
  /** Output position reached, in seconds (0 until FFmpeg knows it). */
  outTimeSeconds: number;
  /** The expected output duration the parser was given, seconds, or null. */
  durationSeconds: number | null;
  /** 0–100 when the expected output duration is known, else null (100 on the final block). */
  percent: number | null;
  /** Frames written so far (0 for audio-only output). */
  frame: number;
  /** Frames encoded per second, when FFmpeg states it (it writes 0 for the first second). */
  fps: number | null;
  /** Encoding speed as a multiple of real time (`speed=2.5x` is 2.5), when FFmpeg states it. */
  speed: number | null;
  /** True on the final block (`progress=end`). */
  done: boolean;
}

/** A number FFmpeg wrote (`N/A`, empty or junk → null); `speed` values end in `x`, padded with spaces. */
function readNumber(v: string | undefined, suffix = ''): number | null {
  if (v === undefined) return null;
  let t = v.trim();
  if (suffix && t.endsWith(suffix)) t = t.slice(0, -suffix.length).trim();
  if (t === '' || t === 'N/A') return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}

/** `HH:MM:SS.micro` (FFmpeg's `out_time`) in seconds, or null. */
function clockSeconds(v: string | undefined): number | null {
  const m = /^(-?\d+):(\d+):(\d+(?:\.\d+)?)$/.exec((v ?? '').trim());
  return m ? Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) : null;
}

/**
 * Parses the `key=value` lines of one `-progress` block into a report.
 * `out_time_us` is in microseconds; older builds write `out_time_ms`, which despite its name is
 * microseconds too; `out_time` (`HH:MM:SS.micro`) is the fallback. A position FFmpeg does not
 * know yet (`N/A`) reads as `previousOutTime` (default 0).
 * @param durationSeconds - expected output duration; enables `percent`.
 */
export function parseProgressBlock(
  lines: string[],
  durationSeconds?: number,
  previousOutTime = 0,
): FfmpegProgress {
  const kv = new Map<string, string>();
  for (const line of lines) {
    const i = line.indexOf('=');
    if (i > 0) kv.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  const us = readNumber(kv.get('out_time_us')) ?? readNumber(kv.get('out_time_ms'));
  let outTimeSeconds = us !== null ? us / 1e6 : (clockSeconds(kv.get('out_time')) ?? previousOutTime);
  if (outTimeSeconds < 0) outTimeSeconds = 0;
  const done = kv.get('progress') === 'end';
  const duration = durationSeconds && durationSeconds > 0 ? durationSeconds : null;
  let percent: number | null = null;
  if (duration !== null)
    percent = done ? 100 : Math.min(99.9, Math.max(0, (outTimeSeconds / duration) * 100));
  const fps = readNumber(kv.get('fps'));
  const speed = readNumber(kv.get('speed'), 'x');
  return {
    outTimeSeconds,
    durationSeconds: duration,
    percent,
    frame: readNumber(kv.get('frame')) ?? 0,
    fps: fps !== null && fps > 0 ? fps : null,
    speed: speed !== null && speed > 0 ? speed : null,
    done,
  };
}

/** Reads FFmpeg's `-progress` output line by line and hands on a report per block. */
export class FfmpegProgressParser {
  private block: string[] = [];
  private outTime = 0;

  /**
   * @param onProgress - called once per block.
   * @param durationSeconds - expected output duration, for `percent` and the task fraction; may be
   *   set later (when it is learnt from FFmpeg's own output).
   */
  constructor(
    private readonly onProgress: (p: FfmpegProgress) => void,
    public durationSeconds?: number,
  ) {}

  /** Takes one line (without its newline). */
  line(line: string): void {
    const l = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (l.trim() === '') return;
    this.block.push(l);
    // Every block ends with `progress=continue` or `progress=end`.
    if (l.startsWith('progress=')) {
      const report = parseProgressBlock(this.block, this.durationSeconds, this.outTime);
      this.block = [];
      this.outTime = report.outTimeSeconds;
      this.onProgress(report);
    }
  }

  /** True when `line` is one of FFmpeg's `-progress` lines (`key=value`, key in lower case). */
  static isProgressLine(line: string): boolean {
    return /^[a-z][a-z0-9_]*=/.test(line);
  }
}

/** A task's progress worked out from an FFmpeg report: what `ctx.progress` takes. */
export interface FfmpegTaskProgress {
  /** 0 to 1, or null when the expected duration is unknown (and FFmpeg has not ended). */
  fraction: number | null;
  /** E.g. `00:00:04 of 00:00:10 at 2.1x`. */
  message: string;
  detail: {
    out_time_seconds: number;
    duration_seconds: number | null;
    fps: number | null;
    speed: number | null;
    /** Seconds of wall time left, from the remaining output and the speed; null when unknown. */
    eta_seconds: number | null;
    frame: number;
  };
}

/** Which of several FFmpeg runs of equal length one run is (0-based `index` of `count`). */
export interface FfmpegRunPart {
  index: number;
  count: number;
}

/** Seconds as `HH:MM:SS` (whole seconds, rounded down). */
export function clockText(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const hh = String(Math.floor(s / 3600)).padStart(2, '0');
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return `${hh}:${mm}:${ss}`;
}

/** A speed multiple as FFmpeg writes it, shortened: `2.1x`, `15x`. */
function speedText(speed: number): string {
  return `${speed >= 10 ? Math.round(speed) : Math.round(speed * 10) / 10}x`;
}

/**
 * The task progress for report `p` of an FFmpeg run expected to write `p.durationSeconds` of
 * output: fraction `out_time / duration` (1 on FFmpeg's final block), or, for run `part.index` of
 * `part.count` equal runs, `(index + fraction) / count`; the estimated time left is what remains
 * of the output (of this run and the later ones) divided by the speed.
 */
export function describeFfmpegProgress(p: FfmpegProgress, part?: FfmpegRunPart): FfmpegTaskProgress {
  const duration = p.durationSeconds;
  const within = p.done
    ? 1
    : duration !== null
      ? Math.min(1, Math.max(0, p.outTimeSeconds / duration))
      : null;
  const count = part && part.count > 1 ? part.count : 1;
  const index = count > 1 ? Math.min(Math.max(0, part!.index), count - 1) : 0;
  const fraction = within === null ? null : (index + within) / count;
  let eta: number | null = null;
  if (p.done && index === count - 1) eta = 0;
  else if (duration !== null && p.speed !== null) {
    const left = Math.max(0, duration - p.outTimeSeconds) + (count - index - 1) * duration;
    eta = Math.round((left / p.speed) * 10) / 10;
  }
  const shown = p.done && duration !== null ? Math.max(duration, p.outTimeSeconds) : p.outTimeSeconds;
  const message = [
    count > 1 ? `part ${index + 1} of ${count}:` : null,
    duration !== null ? `${clockText(shown)} of ${clockText(duration)}` : clockText(shown),
    p.speed !== null ? `at ${speedText(p.speed)}` : null,
  ]
    .filter(Boolean)
    .join(' ');
  return {
    fraction,
    message,
    detail: {
      out_time_seconds: Math.round(p.outTimeSeconds * 1000) / 1000,
      duration_seconds: duration,
      fps: p.fps,
      speed: p.speed,
      eta_seconds: eta,
      frame: p.frame,
    },
  };
}

/** Options of {@link reportFfmpegProgress}. */
export interface ReportFfmpegProgressOptions {
  /** Prefix of the message (`rendition 720p`); also names the one job log line written when the run ends. */
  label?: string;
  /** Which of several equal FFmpeg runs of the task this is. */
  part?: FfmpegRunPart;
}

/**
 * A `runFfmpeg` `onProgress` callback that reports the run's progress as the task's progress
 * (`ctx.progress`, throttled by the engine), never going back within the run, and, when `label` is
 * given, writes one job log line when the run ends (`<label>: 100% (00:00:10 at 7.5x)`). The
 * fraction is of the run's `durationSeconds` (give `runFfmpeg` the expected output duration:
 * ffprobe's duration of the input, or the clip length); without it nothing is reported until the
 * run ends.
 */
export function reportFfmpegProgress(
  ctx: Pick<HandlerContext, 'progress' | 'log'>,
  options: ReportFfmpegProgressOptions = {},
): (p: FfmpegProgress) => void {
  let highest = 0;
  let ended = false;
  return (p) => {
    if (ended) return;
    const d = describeFfmpegProgress(p, options.part);
    const message = options.label ? `${options.label}: ${d.message}` : d.message;
    if (d.fraction !== null) {
      highest = Math.max(highest, d.fraction);
      ctx.progress(highest, message, d.detail);
    }
    if (p.done) {
      ended = true;
      if (options.label)
        ctx.log(
          `${options.label}: 100% (${d.detail.duration_seconds !== null ? clockText(Math.max(d.detail.duration_seconds, p.outTimeSeconds)) : clockText(p.outTimeSeconds)}${p.speed !== null ? ` at ${speedText(p.speed)}` : ''})`,
        );
    }
  };
}
