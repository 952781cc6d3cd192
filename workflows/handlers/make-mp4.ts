/**
 * `mp4`: the MP4 download of a VOD job — the largest staged rendition (with the shared audio) remuxed (no re-encode) with
 * the index at the front (`+faststart`), named `mp4_filename`. Inputs: `plan`.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { runFfmpeg } from '../../src/media/ffmpeg.js';
import { reportFfmpegProgress } from '../../src/media/ffmpeg-progress.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { rel } from './lib/params.js';
import { readPlan, stagedRenditions } from './lib/vod.js';
import { stagedAudio } from './lib/vod-ladder.js';

/** @returns `{file}` (client-relative). */
export default async function makeMp4(ctx: HandlerContext): Promise<{ file: string }> {
  const plan = readPlan(ctx);
  const top = (await stagedRenditions(ctx, plan))[0]!;
  const out = await ctx.storage.resolve(plan.output_folder);
  await mkdir(out, { recursive: true });
  const file = path.join(out, plan.mp4_filename);
  const audio = await stagedAudio(ctx, plan);
  const inputs = audio
    ? ['-i', top.input, '-i', audio.input, '-map', '0:v:0', '-map', '1:a:0']
    : ['-i', top.input, '-map', '0'];
  await runFfmpeg([...inputs, '-c', 'copy', '-movflags', '+faststart', file], {
    signal: ctx.signal,
    durationSeconds: plan.duration,
    onProgress: reportFfmpegProgress(ctx, { label: 'mp4' }),
  });
  ctx.log(`MP4 written: ${rel(ctx, file)} (${top.name})`);
  return { file: rel(ctx, file) };
}
