/**
 * generate_gif: an animated GIF of `duration` seconds of `source` from `start_at`, at `fps`, scaled
 * to `width`/`height` (-1 keeps the aspect ratio; 480 lines high when neither is given), looping
 * `playback_loop` times (0 = for ever, -1 = play once), optionally reversed and sped up or slowed
 * down by `playback_speed`. Uses a palette made from the clip itself (palettegen/paletteuse).
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import { runFfmpeg } from '../../src/media/ffmpeg.js';
import { reportFfmpegProgress } from '../../src/media/ffmpeg-progress.js';
import { formatSeconds } from '../../src/media/timecode.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { fileName, optBool, optNumber, outputFolder, reqString, reqTime, rel } from './lib/params.js';
import { placeTime, resolveSource } from './lib/source.js';

/** @returns `{message, files, metadata: {frames, fps, duration}}`. */
export default async function generateGif(ctx: HandlerContext): Promise<unknown> {
  const p = ctx.parameters;
  const name = fileName(p, 'gif_filename', undefined, '.gif');
  const fps = optNumber(p, 'fps', 12, { min: 1, max: 50 });
  const width = optNumber(p, 'width', -1, { min: -1, max: 4096, integer: true });
  const height = optNumber(p, 'height', -1, { min: -1, max: 4096, integer: true });
  if (width === 0 || height === 0)
    throw new PermanentTaskError('parameters.width and height must be -1 or at least 1');
  const loop = optNumber(p, 'playback_loop', 0, { min: -1, max: 65535, integer: true });
  const reverse = optBool(p, 'reverse', false);
  const speed = optNumber(p, 'playback_speed', 1, { min: 0.1, max: 10 });
  const duration = optNumber(p, 'duration', 0, { min: 0.05, max: 60 });
  const out = await ctx.storage.resolve(outputFolder(p));
  const src = await resolveSource(ctx, reqString(p, 'source'));
  const start = placeTime(src, reqTime(p, 'start_at'), 'start_at');
  const available = src.info.durationSeconds - start;
  const clip = Math.min(duration, available);
  const scale = width === -1 && height === -1 ? 'scale=-2:480' : `scale=${width}:${height}`;
  // Pick frames in source time (fps / speed apart), then retime them: the result plays at `fps`.
  // The output rate is also forced (-r), since setpts leaves the link's declared rate stale.
  const filters = [
    ...(reverse ? ['reverse'] : []),
    `fps=${fps / speed}`,
    `setpts=(PTS-STARTPTS)/${speed}`,
    `${scale}:flags=lanczos`,
    'split[a][b]',
  ].join(',');
  const graph = `[0:v]${filters};[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=bayer:bayer_scale=5`;
  await mkdir(out, { recursive: true });
  const file = path.join(out, name);
  await runFfmpeg(
    [
      '-ss',
      start.toFixed(3),
      '-t',
      clip.toFixed(3),
      ...src.inputArgs,
      '-i',
      src.input,
      '-filter_complex',
      graph,
      '-an',
      '-r',
      String(fps),
      '-loop',
      String(loop),
      '-f',
      'gif',
      file,
    ],
    {
      signal: ctx.signal,
      durationSeconds: clip / speed,
      onProgress: reportFfmpegProgress(ctx, { label: 'gif' }),
    },
  );
  const frames = Math.round((clip / speed) * fps);
  ctx.log(
    `GIF of ${formatSeconds(clip)} from ${formatSeconds(start)} at ${fps} fps${reverse ? ', reversed' : ''}${speed !== 1 ? `, ${speed}x` : ''}: ${rel(ctx, file)}`,
  );
  return {
    message: rel(ctx, file),
    files: [rel(ctx, file)],
    metadata: { frames, fps, duration: clip / speed },
  };
}
