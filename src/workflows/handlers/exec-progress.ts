/**
 * Progress of an `exec` program, read from its stdout (the `progress` input of `exec.ts`):
 *
 * - `lines` (the default): a stdout line `::progress <value> [message]` reports progress, the value
 *   a fraction from 0 to 1 (`0.42`) or a percentage (`42%`), the rest of the line the message.
 * - `ffmpeg`: as `lines`, and FFmpeg's `-progress pipe:1` blocks (`key=value` lines) are read as
 *   well: the fraction is `out_time` over the `progress_duration` input, or over the first
 *   `Duration:` FFmpeg prints on stderr; fps, speed and the estimated time left go in the detail.
 * - `none`: stdout is left alone.
 *
 * Such progress lines are taken out of the stream: they are not written to the job log, not kept
 * in `stdout` and not parsed with `output: json`. They are control lines meant for the engine (as
 * CI runners treat `::` workflow commands), and leaving them in would spend the log budget on
 * progress and break JSON output. A malformed `::progress` line is taken out too, with one
 * warning per attempt in the job log.
 */
import { StringDecoder } from 'node:string_decoder';
import { FfmpegProgressParser, reportFfmpegProgress } from '../../media/ffmpeg-progress.js';
import type { HandlerContext } from '../types.js';

/** The `progress` input of `exec`. */
export type ExecProgressMode = 'lines' | 'ffmpeg' | 'none';

/** Values the `progress` input accepts. */
export const EXEC_PROGRESS_MODES: readonly ExecProgressMode[] = ['lines', 'ffmpeg', 'none'];

const PREFIX = '::progress';
/** Longest line read as a progress line, bytes (a longer one is ordinary output). */
const MAX_CONTROL_LINE = 1024;

/** A `::progress` line read: the report, or why it is not one. */
export type ProgressLine = { fraction: number; message: string | null } | { problem: string };

/**
 * Reads one `::progress <value> [message]` line (without its newline).
 * @returns null when `line` is not a progress line at all; else the report, or a problem.
 */
export function parseProgressLine(line: string): ProgressLine | null {
  if (!line.startsWith(PREFIX)) return null;
  const rest = line.slice(PREFIX.length);
  if (rest !== '' && !/^[ \t]/.test(rest)) return null; // `::progressive` is ordinary output
  const m = /^[ \t]*(\S*)[ \t]*(.*)$/.exec(rest)!;
  const token = m[1]!;
  const message = m[2]!.trim() || null;
  const num = /^\+?(\d+(?:\.\d*)?|\.\d+)(%?)$/.exec(token);
  if (!num)
    return {
      problem: `progress line ${JSON.stringify(line.slice(0, 80))} was ignored: write "::progress 0.42 message" (a fraction from 0 to 1) or "::progress 42% message"`,
    };
  const value = Number(num[1]);
  if (num[2] === '%') return { fraction: Math.min(100, value) / 100, message };
  if (value > 1)
    return {
      problem: `progress line ${JSON.stringify(line.slice(0, 80))} was ignored: ${token} is more than 1; a fraction is from 0 to 1 (for a percentage write ${token}%)`,
    };
  return { fraction: value, message };
}

/**
 * Splits a byte stream into lines and takes out the control lines, passing everything else on
 * unchanged (the same bytes, in order). A line that may still turn out to be a control line is held
 * back until its newline; any other line is passed on as it arrives.
 */
export class ControlLineFilter {
  private held: Buffer | null = null;
  /** The current line is ordinary output, partly passed on already. */
  private passing = false;

  /**
   * @param mayBe - whether a line starting with this text (at most 16 characters) may be a control line.
   * @param take - handles a whole line (no newline); true when it was a control line (then it is dropped).
   * @param pass - receives the ordinary output.
   */
  constructor(
    private readonly mayBe: (start: string) => boolean,
    private readonly take: (line: string) => boolean,
    private readonly pass: (chunk: Buffer) => void,
  ) {}

  /** Takes a chunk of the stream. */
  write(chunk: Buffer): void {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(0x0a, pos);
      const end = nl < 0 ? chunk.length : nl + 1;
      const piece = chunk.subarray(pos, end);
      pos = end;
      if (this.passing) {
        out.push(piece);
        if (nl >= 0) this.passing = false;
        continue;
      }
      const line = this.held ? Buffer.concat([this.held, piece]) : piece;
      this.held = null;
      const candidate =
        line.length <= MAX_CONTROL_LINE + 1 && this.mayBe(line.subarray(0, 16).toString('latin1'));
      if (nl >= 0) {
        if (!(candidate && this.take(lineText(line.subarray(0, line.length - 1))))) out.push(line);
      } else if (candidate) this.held = Buffer.from(line);
      else {
        out.push(line);
        this.passing = true;
      }
    }
    if (out.length > 0) this.pass(out.length === 1 ? out[0]! : Buffer.concat(out));
  }

  /** The stream has ended: a last line without a newline is handled now. */
  end(): void {
    const held = this.held;
    this.held = null;
    if (held && !this.take(lineText(held))) this.pass(held);
  }
}

function lineText(bytes: Buffer): string {
  const s = bytes.toString('utf8');
  return s.endsWith('\r') ? s.slice(0, -1) : s;
}

/** Whether text starting a line may start a `::progress` line. */
function mayBeProgressLine(start: string): boolean {
  return start.length <= PREFIX.length
    ? PREFIX.startsWith(start)
    : start.startsWith(PREFIX) && /^[ \t\r\n]/.test(start.slice(PREFIX.length));
}

/** Whether text starting a line may start one of FFmpeg's `-progress` lines (`key=value`). */
function mayBeFfmpegLine(start: string): boolean {
  return /^[a-z][a-z0-9_]*(=[^]*)?$/.test(start.replace(/\r?\n$/, ''));
}

/** What the `exec` handler needs to read progress from its program. */
export interface ExecProgress {
  /** Wraps the stdout sink: progress lines are taken out, the rest reaches `sink`. */
  stdout(sink: (chunk: Buffer) => void): (chunk: Buffer) => void;
  /** Sees each chunk of stderr (for FFmpeg's `Duration:`). */
  stderr(chunk: Buffer): void;
  /** The streams have closed: handles a last line without a newline. */
  end(): void;
}

/**
 * The progress reading of one `exec` run in `mode` (see the module comment).
 * @param durationSeconds - the `progress_duration` input (FFmpeg mode), if given.
 */
export function execProgress(
  ctx: Pick<HandlerContext, 'progress' | 'log'>,
  mode: ExecProgressMode,
  durationSeconds: number | undefined,
): ExecProgress {
  let filter: ControlLineFilter | null = null;
  let warned = false;
  const warn = (problem: string): void => {
    if (warned) return;
    warned = true;
    ctx.log(`exec: ${problem} (reported once per attempt)`, 2);
  };
  const ffmpeg =
    mode === 'ffmpeg'
      ? new FfmpegProgressParser(
          reportFfmpegProgress({ progress: ctx.progress, log: () => undefined }),
          durationSeconds,
        )
      : null;
  // FFmpeg prints the input's duration on stderr (`  Duration: 00:00:10.00, start: …`).
  let stderrText = '';
  const stderrDecoder = new StringDecoder('utf8');
  const takeLine = (line: string): boolean => {
    const parsed = parseProgressLine(line);
    if (parsed) {
      if ('problem' in parsed) warn(parsed.problem);
      else ctx.progress(parsed.fraction, parsed.message ?? undefined);
      return true;
    }
    if (ffmpeg && FfmpegProgressParser.isProgressLine(line)) {
      ffmpeg.line(line);
      return true;
    }
    return false;
  };
  return {
    stdout(sink) {
      if (mode === 'none') return sink;
      filter = new ControlLineFilter(
        (start) => mayBeProgressLine(start) || (ffmpeg !== null && mayBeFfmpegLine(start)),
        takeLine,
        sink,
      );
      const f = filter;
      return (chunk) => f.write(chunk);
    },
    stderr(chunk) {
      if (!ffmpeg || ffmpeg.durationSeconds !== undefined || stderrText.length > 64 * 1024) return;
      stderrText += stderrDecoder.write(chunk);
      const m = /Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)/.exec(stderrText);
      if (m) {
        const seconds = Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
        if (seconds > 0) ffmpeg.durationSeconds = seconds;
        stderrText = '';
      }
    },
    end() {
      filter?.end();
    },
  };
}
