/**
 * `npm run bench smartcut`: one frame-accurate vodremix clip of a long source, cut (1) by smart
 * cut (`workflows/handlers/lib/smart-cut.ts`: the frames up to the first key frame and from the
 * last one re-encoded, the rest stream-copied, audio re-encoded) and (2) by the whole re-encode
 * the remix task falls back to (the FFmpeg command line of `capture-clips.ts` for one clip:
 * scale/pad/fps, libx264 veryfast, AAC). Interleaved rounds in the same minutes; prints each run's
 * wall time and CPU time (user + sys of the FFmpeg children, from /proc/self/stat once reaped).
 *
 * Environment: `SMARTCUT_BENCH_SECONDS` (source length, 40), `SMARTCUT_BENCH_SIZE` (1280x720),
 * `SMARTCUT_BENCH_ROUNDS` (2).
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runFfmpeg } from '../src/media/ffmpeg.js';
import { smartCut } from '../workflows/handlers/lib/smart-cut.js';

const seconds = Number(process.env.SMARTCUT_BENCH_SECONDS ?? 40);
const size = process.env.SMARTCUT_BENCH_SIZE ?? '1280x720';
const rounds = Number(process.env.SMARTCUT_BENCH_ROUNDS ?? 2);

/** CPU seconds (user + sys) of this process's reaped children. */
function childCpu(): number {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  // Fields 16 and 17 of stat (cutime, cstime) are 14 and 15 after the name.
  return (Number(f[13]) + Number(f[14])) / 100;
}

async function measure(what: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const c0 = childCpu();
  const t0 = performance.now();
  await what();
  return { wall: (performance.now() - t0) / 1000, cpu: childCpu() - c0 };
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'te-smartcut-'));
try {
  const src = path.join(dir, 'source.mp4');
  await runFfmpeg([
    ...['-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=25:duration=${seconds}`],
    ...['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${seconds}`],
    ...['-c:v', 'libx264', '-preset', 'veryfast', '-g', '50', '-keyint_min', '50', '-sc_threshold', '0'],
    ...['-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', src],
  ]);
  const start = 1.52;
  const end = seconds - 1.72;
  const clip = {
    source: 'source.mp4',
    input: src,
    inputArgs: [],
    start,
    duration: end - start,
    has_audio: true,
  };
  const [w, h] = size.split('x');
  const smart = async (): Promise<void> => {
    const r = await smartCut([clip], { staging: dir, name: 'smart', withAudio: true, audioBitrate: 128_000 });
    if (typeof r === 'string') throw new Error(`no smart cut: ${r}`);
    console.log(`  smart cut: ${r.copiedFrames} frames copied, ${r.encodedFrames} re-encoded`);
  };
  const whole = (): Promise<unknown> =>
    runFfmpeg([
      ...['-ss', start.toFixed(3), '-t', clip.duration.toFixed(3), '-i', src],
      '-filter_complex',
      `[0:v:0]setpts=PTS-STARTPTS,scale=${w}:${h}:force_original_aspect_ratio=decrease,pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=25,trim=duration=${clip.duration.toFixed(3)},format=yuv420p[v];` +
        `[0:a:0]asetpts=PTS-STARTPTS,aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,atrim=duration=${clip.duration.toFixed(3)}[a]`,
      ...['-map', '[v]', '-map', '[a]', '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high'],
      ...['-b:v', '2800000', '-force_key_frames', 'expr:gte(t,n_forced*4)', '-sc_threshold', '0'],
      ...['-c:a', 'aac', '-b:a', '128000', '-movflags', '+faststart', '-y', path.join(dir, 'whole.mp4')],
    ]);
  console.log(
    `source ${seconds} s ${size} 25 fps, GOP 2 s; clip ${start} to ${end.toFixed(2)} s (${clip.duration.toFixed(2)} s), load ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const results: { smart: { wall: number; cpu: number }[]; whole: { wall: number; cpu: number }[] } = {
    smart: [],
    whole: [],
  };
  for (let r = 0; r < rounds; r++) {
    results.smart.push(await measure(smart));
    results.whole.push(await measure(whole));
    const s = results.smart.at(-1)!;
    const wh = results.whole.at(-1)!;
    console.log(
      `round ${r + 1}: smart cut ${s.wall.toFixed(2)} s wall ${s.cpu.toFixed(2)} s CPU; whole re-encode ${wh.wall.toFixed(2)} s wall ${wh.cpu.toFixed(2)} s CPU; ratio wall ${(wh.wall / s.wall).toFixed(1)}x CPU ${(wh.cpu / s.cpu).toFixed(1)}x; load ${os.loadavg()[0]!.toFixed(2)}`,
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
