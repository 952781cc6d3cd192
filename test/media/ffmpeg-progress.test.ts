/**
 * FFmpeg's `-progress` output read into task progress, on output captured from real FFmpeg runs
 * (test/media/fixtures/README.md says how each file was made), and on a live run.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runFfmpeg } from '../../src/media/ffmpeg.js';
import {
  clockText,
  describeFfmpegProgress,
  FfmpegProgressParser,
  parseProgressBlock,
  reportFfmpegProgress,
  type FfmpegProgress,
} from '../../src/media/ffmpeg-progress.js';
import { makeTestVideo, tempStorageRoot } from './media-helpers.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** Every report of a captured run, read line by line as `runFfmpeg` reads FFmpeg's stdout. */
function reportsOf(file: string, durationSeconds?: number): FfmpegProgress[] {
  const out: FfmpegProgress[] = [];
  const parser = new FfmpegProgressParser((p) => out.push(p), durationSeconds);
  for (const line of readFileSync(path.join(FIXTURES, file), 'utf8').split('\n')) parser.line(line);
  return out;
}

/** A recording `ctx` for {@link reportFfmpegProgress}. */
function recorder(): {
  ctx: Parameters<typeof reportFfmpegProgress>[0];
  calls: { fraction: number; message?: string; detail?: Record<string, unknown> }[];
  logs: string[];
} {
  const calls: { fraction: number; message?: string; detail?: Record<string, unknown> }[] = [];
  const logs: string[] = [];
  return {
    calls,
    logs,
    ctx: {
      progress: (fraction, message, detail) => calls.push({ fraction, message, detail }),
      log: (m) => logs.push(m),
    },
  };
}

describe('FFmpeg -progress output (captured from real runs)', () => {
  it('reads every block of an encode: position, frames, fps, speed, the end', () => {
    const r = reportsOf('ffmpeg-progress-encode.txt', 30);
    assert.equal(r.length, 9, 'nine blocks in the capture');
    assert.deepEqual(
      r.map((p) => p.outTimeSeconds),
      [0.042667, 6.016, 9.642667, 13.482667, 17.28, 20.437333, 23.168, 26.922667, 30.016],
    );
    assert.deepEqual(
      r.map((p) => p.speed),
      [8.36, 11.9, 9.58, 8.94, 8.6, 8.13, 7.68, 7.65, 7.5],
      'speed=" 8.6x" (padded) reads as 8.6',
    );
    // FFmpeg writes fps=0.00 for the first second: unknown, not zero.
    assert.deepEqual(
      r.map((p) => p.fps),
      [null, null, 238.37, 222.81, 214.59, 202.8, 191.88, 191.04, 187.41],
    );
    assert.equal(r[0]!.frame, 1);
    assert.equal(r.at(-1)!.frame, 750);
    assert.deepEqual(
      r.map((p) => p.done),
      [false, false, false, false, false, false, false, false, true],
    );
    assert.equal(r.at(-1)!.percent, 100);
    assert.ok(r.slice(0, -1).every((p) => p.percent! < 100));
    assert.equal(r[1]!.durationSeconds, 30);
  });

  it('reads odd speeds: 4.42e+03x, "   0x" (unknown) and N/A', () => {
    const hls = reportsOf('ffmpeg-progress-hls-copy.txt', 30);
    assert.deepEqual(
      hls.map((p) => [p.outTimeSeconds, p.speed, p.done]),
      [
        [0, null, false],
        [30.016, 4420, true],
      ],
    );
    const thumb = reportsOf('ffmpeg-progress-thumbnail.txt');
    assert.deepEqual(
      thumb.map((p) => p.speed),
      [null, 1.96],
    );
    assert.equal(thumb[0]!.percent, null, 'no duration given: no percentage');
    const audio = reportsOf('ffmpeg-progress-realtime.txt', 2);
    assert.equal(audio[0]!.speed, null, 'speed=N/A');
    assert.equal(audio[0]!.frame, 0, 'audio only: no frame key');
    assert.equal(audio[0]!.fps, null);
    assert.deepEqual(
      audio.map((p) => p.outTimeSeconds),
      [0.021333, 0.512, 1.024, 1.536, 2],
    );
  });

  it('turns an encode into rising task progress: fraction, readable message, fps, speed, time left', () => {
    const r = reportsOf('ffmpeg-progress-encode.txt', 30);
    const tp = r.map((p) => describeFfmpegProgress(p));
    const fractions = tp.map((t) => t.fraction!);
    assert.ok(
      fractions.every((f, i) => i === 0 || f > fractions[i - 1]!),
      `rising: ${fractions.join(', ')}`,
    );
    assert.equal(fractions.at(-1), 1);
    assert.ok(Math.abs(fractions[3]! - 13.482667 / 30) < 1e-9);
    assert.equal(tp[3]!.message, '00:00:13 of 00:00:30 at 8.9x');
    assert.equal(tp[1]!.message, '00:00:06 of 00:00:30 at 12x', 'speeds of 10x and more are whole');
    assert.deepEqual(tp[3]!.detail, {
      out_time_seconds: 13.483,
      duration_seconds: 30,
      fps: 222.81,
      speed: 8.94,
      eta_seconds: 1.8, // (30 - 13.48) s of output left at 8.94x
      frame: 336,
    });
    assert.equal(tp.at(-1)!.detail.eta_seconds, 0);
    assert.equal(tp.at(-1)!.message, '00:00:30 of 00:00:30 at 7.5x');
    // Without a duration there is no fraction, only the position.
    const bare = describeFfmpegProgress(
      parseProgressBlock(['out_time_us=4000000', 'speed=2.1x', 'progress=continue']),
    );
    assert.equal(bare.fraction, null);
    assert.equal(bare.message, '00:00:04 at 2.1x');
  });

  it('scales a run that is one of several: part 2 of 3 covers 1/3 to 2/3, time left counts the later parts', () => {
    const r = reportsOf('ffmpeg-progress-encode.txt', 30);
    const mid = describeFfmpegProgress(r[4]!, { index: 1, count: 3 });
    assert.ok(Math.abs(mid.fraction! - (1 + 17.28 / 30) / 3) < 1e-9);
    assert.equal(mid.message, 'part 2 of 3: 00:00:17 of 00:00:30 at 8.6x');
    assert.equal(mid.detail.eta_seconds, Math.round(((30 - 17.28 + 30) / 8.6) * 10) / 10);
    assert.ok(Math.abs(describeFfmpegProgress(r.at(-1)!, { index: 1, count: 3 }).fraction! - 2 / 3) < 1e-9);
  });

  it('reportFfmpegProgress sends each block to ctx.progress, never going back, and logs one line at the end', () => {
    const { ctx, calls, logs } = recorder();
    const onProgress = reportFfmpegProgress(ctx, { label: 'rendition 360p' });
    for (const p of reportsOf('ffmpeg-progress-encode.txt', 30)) onProgress(p);
    // A block after the end (a second run with the same callback) is not reported.
    onProgress(parseProgressBlock(['out_time_us=1000000', 'progress=continue'], 30));
    assert.equal(calls.length, 9);
    assert.equal(calls.at(-1)!.fraction, 1);
    assert.equal(calls[3]!.message, 'rendition 360p: 00:00:13 of 00:00:30 at 8.9x');
    assert.deepEqual(logs, ['rendition 360p: 100% (00:00:30 at 7.5x)']);
    // A position that goes back within the run does not lower the fraction.
    const back = recorder();
    const f = reportFfmpegProgress(back.ctx);
    f(parseProgressBlock(['out_time_us=5000000', 'progress=continue'], 10));
    f(parseProgressBlock(['out_time_us=4000000', 'progress=continue'], 10));
    assert.deepEqual(
      back.calls.map((c) => c.fraction),
      [0.5, 0.5],
    );
    assert.deepEqual(back.logs, [], 'no label: no log line');
  });

  it('keeps the last known position when FFmpeg writes out_time_us=N/A', () => {
    const seen: number[] = [];
    const parser = new FfmpegProgressParser((p) => seen.push(p.outTimeSeconds), 10);
    for (const l of [
      'out_time_us=2000000',
      'progress=continue',
      'out_time_us=N/A',
      'out_time=N/A',
      'progress=continue',
    ])
      parser.line(l);
    assert.deepEqual(seen, [2, 2]);
    assert.equal(clockText(3725.9), '01:02:05');
  });
});

describe('FFmpeg progress on a live run', () => {
  let tmp: Awaited<ReturnType<typeof tempStorageRoot>>;
  let video: string;
  before(async () => {
    tmp = await tempStorageRoot();
    video = await makeTestVideo(path.join(tmp.root, 'v.mp4'), { seconds: 4 });
  });
  after(() => tmp.cleanup());

  it('runFfmpeg passes -nostats -progress pipe:1 and the reports rise to 1', async () => {
    const { ctx, calls } = recorder();
    // -re reads the input at its own rate, so FFmpeg writes several blocks.
    await runFfmpeg(['-re', '-i', video, '-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'null', '-'], {
      durationSeconds: 4,
      onProgress: reportFfmpegProgress(ctx),
    });
    const fractions = calls.map((c) => c.fraction);
    assert.ok(fractions.length >= 3, `several reports: ${fractions.join(', ')}`);
    assert.ok(
      fractions.every((f, i) => i === 0 || f >= fractions[i - 1]!),
      `never going back: ${fractions.join(', ')}`,
    );
    assert.ok(
      fractions.some((f) => f > 0 && f < 1),
      'reports on the way',
    );
    assert.equal(fractions.at(-1), 1);
    const last = calls.at(-1)!.detail!;
    assert.equal(last.duration_seconds, 4);
    assert.equal(typeof last.speed, 'number');
  });
});
