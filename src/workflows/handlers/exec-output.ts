/**
 * Output capture of the `exec` handler: the tail of each stream for the task output, stdout for
 * `output: json`, and each line written to the job log within the per-attempt budget. Also turns
 * the way the program ended into the handler's result or error.
 */
import { StringDecoder } from 'node:string_decoder';
import type { HandlerContext } from '../types.js';
import { EXEC_LIMITS, type ExecOutput } from './exec-limits.js';
import type { ExecProgress } from './exec-progress.js';

/** How the program ended: its exit code, or the signal that killed it. */
export interface ProgramEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Keeps the last `limit` bytes written to it. */
class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  constructor(private readonly limit: number) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size > this.limit * 2) this.compact();
  }
  private compact(): void {
    const all = Buffer.concat(this.chunks);
    if (all.length > this.limit) this.truncated = true;
    const kept = all.subarray(Math.max(0, all.length - this.limit));
    this.chunks = [kept];
    this.size = kept.length;
  }
  text(): string {
    this.compact();
    const s = (this.chunks[0] ?? Buffer.alloc(0)).toString('utf8');
    // A cut in the middle of a UTF-8 sequence decodes as U+FFFD at the start: drop it.
    return this.truncated ? s.replace(/^\uFFFD+/, '') : s;
  }
}

/** Splits a byte stream into lines and hands them on, within the per-attempt log budget. */
class LineLogger {
  private readonly decoders = new Map<string, StringDecoder>();
  private readonly partial = new Map<string, string>();
  private lines = 0;
  private bytes = 0;
  private stopped = false;
  constructor(private readonly ctx: HandlerContext) {}

  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    if (this.stopped) return;
    let decoder = this.decoders.get(stream);
    if (!decoder) this.decoders.set(stream, (decoder = new StringDecoder('utf8')));
    let text = (this.partial.get(stream) ?? '') + decoder.write(chunk);
    let nl: number;
    while ((nl = text.indexOf('\n')) >= 0 && !this.stopped) {
      this.emit(stream, text.slice(0, nl));
      text = text.slice(nl + 1);
    }
    // A very long line without a newline is logged in pieces rather than held forever.
    while (text.length > EXEC_LIMITS.lineBytes && !this.stopped) {
      this.emit(stream, text.slice(0, EXEC_LIMITS.lineBytes));
      text = text.slice(EXEC_LIMITS.lineBytes);
    }
    this.partial.set(stream, text);
  }

  flush(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = (this.partial.get(stream) ?? '') + (this.decoders.get(stream)?.end() ?? '');
      if (rest.length > 0) this.emit(stream, rest);
      this.partial.set(stream, '');
    }
  }

  private emit(stream: 'stdout' | 'stderr', raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    // A long line is logged in pieces of `lineBytes`, the same whether its newline arrived in the
    // same read or a later one (the split must not depend on how the pipe chunked the output).
    let i = 0;
    do {
      this.emitPiece(stream, line.slice(i, i + EXEC_LIMITS.lineBytes));
      i += EXEC_LIMITS.lineBytes;
    } while (i < line.length && !this.stopped);
  }

  private emitPiece(stream: 'stdout' | 'stderr', cut: string): void {
    if (this.stopped) return;
    const size = Buffer.byteLength(cut) + 1;
    if (this.lines + 1 > EXEC_LIMITS.logLines || this.bytes + size > EXEC_LIMITS.logBytes) {
      this.stopped = true;
      this.ctx.log(
        `output truncated: more than ${EXEC_LIMITS.logLines} lines or ${Math.round(EXEC_LIMITS.logBytes / 1024)} KiB; the rest is not logged (the task output keeps the last ${Math.round(EXEC_LIMITS.captureBytes / 1024)} KiB of each stream)`,
        2,
      );
      return;
    }
    this.lines += 1;
    this.bytes += size;
    this.ctx.log(stream === 'stderr' ? `stderr: ${cut}` : cut, 1);
  }
}

function tail(text: string, chars: number): string {
  const t = text.trimEnd();
  return t.length > chars ? `…${t.slice(t.length - chars)}` : t;
}

/**
 * Everything `exec` keeps of one program's stdout and stderr. Progress lines (`exec-progress.ts`)
 * are taken out of stdout first: they reach neither the tail, nor the JSON, nor the job log.
 */
export class OutputCapture {
  private readonly stdoutTail = new TailBuffer(EXEC_LIMITS.captureBytes);
  private readonly stderrTail = new TailBuffer(EXEC_LIMITS.captureBytes);
  private readonly jsonChunks: Buffer[] = [];
  private jsonBytes = 0;
  private jsonOverflow = false;
  private readonly lines: LineLogger;
  private readonly stdoutSink: (chunk: Buffer) => void;

  constructor(
    ctx: HandlerContext,
    private readonly outputMode: 'text' | 'json',
    private readonly progress: ExecProgress,
  ) {
    this.lines = new LineLogger(ctx);
    this.stdoutSink = progress.stdout((chunk) => this.output(chunk));
  }

  /** Takes a chunk of the program's stdout. */
  stdout(chunk: Buffer): void {
    this.stdoutSink(chunk);
  }

  /** Takes a chunk of stdout that is the program's output (not a progress line). */
  private output(chunk: Buffer): void {
    this.stdoutTail.push(chunk);
    if (this.outputMode === 'json' && !this.jsonOverflow) {
      this.jsonBytes += chunk.length;
      if (this.jsonBytes > EXEC_LIMITS.jsonBytes) this.jsonOverflow = true;
      else this.jsonChunks.push(chunk);
    }
    this.lines.write('stdout', chunk);
  }

  /** Takes a chunk of the program's stderr. */
  stderr(chunk: Buffer): void {
    this.progress.stderr(chunk);
    this.stderrTail.push(chunk);
    this.lines.write('stderr', chunk);
  }

  /** Logs the last lines that had no newline yet (once the streams have closed). */
  flush(): void {
    this.progress.end();
    this.lines.flush();
  }

  /**
   * The handler's output for a program that ended as `ended`.
   * @throws Error when it exited non-zero or was killed (with the tail of stderr, and the output
   *   on the error's `output`), or when `output: json` got too much or non-JSON stdout.
   */
  result(command: string, ended: ProgramEnd): ExecOutput {
    const stdout = this.stdoutTail.text();
    const stderr = this.stderrTail.text();
    if (ended.code !== 0) {
      const how =
        ended.code === null
          ? `was killed by signal ${ended.signal ?? 'unknown'}`
          : `exited with code ${ended.code}`;
      const detail = tail(stderr, 2000) || tail(stdout, 500);
      const err = new Error(`exec: command "${command}" ${how}${detail ? `: ${detail}` : ''}`);
      (err as Error & { output?: ExecOutput }).output = { exit_code: ended.code ?? -1, stdout, stderr };
      throw err;
    }
    const output: ExecOutput = { exit_code: 0, stdout, stderr };
    if (this.outputMode === 'json') {
      if (this.jsonOverflow)
        throw new Error(
          `exec: command "${command}" printed more than ${EXEC_LIMITS.jsonBytes} bytes; too much to parse as JSON`,
        );
      const text = Buffer.concat(this.jsonChunks).toString('utf8');
      try {
        output.json = JSON.parse(text);
      } catch (err) {
        throw new Error(
          `exec: command "${command}" printed stdout that is not JSON (${(err as Error).message}): ${tail(text, 300)}`,
          {
            cause: err,
          },
        );
      }
    }
    return output;
  }
}
