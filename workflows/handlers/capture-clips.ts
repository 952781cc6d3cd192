/**
 * vodcapture `capture` (queue `capture`): cuts every clip frame-accurately (decode and re-encode
 * from its start for its duration) to one common size, frame rate and audio format, then joins
 * them without re-encoding into the staged rendition the packaging and MP4 tasks read.
 * Inputs: `plan` (the prepare output, with `clips`).
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import { runFfmpeg, throttleProgress } from '../../src/media/ffmpeg.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import type { CaptureClip } from './capture-prepare.js';
import { progressLine } from './lib/params.js';
import { AUDIO_BITRATE, describeStaged, readPlan, videoBitrateFor } from './lib/vod.js';

/** @returns the staged rendition's description and the clip count. */
export default async function captureClips(ctx: HandlerContext): Promise<unknown> {
  const plan = readPlan(ctx) as ReturnType<typeof readPlan> & { clips?: CaptureClip[] };
  const clips = plan.clips ?? [];
  if (clips.length === 0) throw new PermanentTaskError('the plan lists no clips');
  const staging = await ctx.storage.resolve(plan.staging);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  const fps = plan.fps && plan.fps > 0 && plan.fps <= 120 ? plan.fps : 25;
  const vbr = videoBitrateFor(plan.height);
  const parts: string[] = [];
  for (const [i, c] of clips.entries()) {
    const part = path.join(staging, `clip_${String(i).padStart(3, '0')}.mp4`);
    const w = plan.width;
    const h = plan.height;
    await runFfmpeg(
      [
        '-ss',
        c.start.toFixed(3),
        ...c.inputArgs,
        '-i',
        c.input,
        '-t',
        c.duration.toFixed(3),
        '-map',
        '0:v:0',
        ...(plan.has_audio ? ['-map', '0:a:0'] : []),
        '-vf',
        `scale=${w}:${h}:force_original_aspect_ratio=decrease,pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=${fps}`,
        '-c:v',
        'libx264',
        '-preset',
        'veryfast',
        '-profile:v',
        'high',
        '-pix_fmt',
        'yuv420p',
        '-b:v',
        String(vbr),
        '-force_key_frames',
        `expr:gte(t,n_forced*${plan.segment_duration})`,
        '-sc_threshold',
        '0',
        ...(plan.has_audio ? ['-c:a', 'aac', '-b:a', String(AUDIO_BITRATE), '-ac', '2', '-ar', '48000'] : []),
        part,
      ],
      {
        signal: ctx.signal,
        durationSeconds: c.duration,
        onProgress: throttleProgress(progressLine(ctx, `capture clip ${i + 1}/${clips.length}`), 20),
      },
    );
    parts.push(part);
  }
  const name = `${plan.height}p`;
  const joined = path.join(staging, `${name}.mp4`);
  const list = path.join(staging, 'clips.txt');
  // The concat demuxer's list quotes paths with single quotes; escape any in file names.
  await writeFile(list, parts.map((p) => `file '${p.replace(/'/g, "'\\''")}'`).join('\n') + '\n');
  await runFfmpeg(
    ['-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', '-movflags', '+faststart', joined],
    {
      signal: ctx.signal,
    },
  );
  for (const p of [...parts, list]) await rm(p, { force: true });
  ctx.log(`captured ${clips.length} clip(s), ${plan.duration.toFixed(3)} s, joined into ${name}`);
  const sidecar = await describeStaged(staging, name, joined);
  return { ...sidecar, clips: clips.length };
}
